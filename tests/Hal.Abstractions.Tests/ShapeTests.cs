namespace Hal.Abstractions.Tests;

public sealed class ShapeTests
{
    [Theory]
    [InlineData(new[] { 2, 3 }, new[] { 3 }, new[] { 2, 3 })]
    [InlineData(new[] { 2, 1 }, new[] { 1, 3 }, new[] { 2, 3 })]
    [InlineData(new int[0], new[] { 4, 5 }, new[] { 4, 5 })]
    [InlineData(new[] { 3, 1, 5 }, new[] { 4, 1 }, new[] { 3, 4, 5 })]
    [InlineData(new[] { 2, 0 }, new[] { 1 }, new[] { 2, 0 })]
    [InlineData(new[] { 0 }, new[] { 1 }, new[] { 0 })]
    public void BroadcastFollowsNumPy(int[] a, int[] b, int[] want)
    {
        Assert.Equal(new Shape(want), Shape.Broadcast(new Shape(a), new Shape(b)));
        Assert.Equal(new Shape(want), Shape.Broadcast(new Shape(b), new Shape(a)));
    }

    [Theory]
    [InlineData(new[] { 2, 3 }, new[] { 2 })]
    [InlineData(new[] { 2, 0 }, new[] { 2 })]
    [InlineData(new[] { 4, 3 }, new[] { 2, 2, 3 })]
    public void IncompatibleShapesDoNotBroadcast(int[] a, int[] b)
    {
        Assert.Null(Shape.Broadcast(new Shape(a), new Shape(b)));
    }

    [Fact]
    public void CountsStridesAndAxes()
    {
        var s = new Shape(2, 3, 4);
        Assert.Equal(24, s.ElementCount);
        Assert.Equal(new long[] { 12, 4, 1 }, s.Strides());
        Assert.Equal(4, s[-1]);
        Assert.Equal(12, s.Product(1, 3));
        Assert.Equal(new Shape(2, 1, 4), s.With(-2, 1));
        Assert.Equal("[2, 3, 4]", s.ToString());
        Assert.Equal(1, Shape.Scalar.ElementCount);
        Assert.Equal(0, new Shape(3, 0).ElementCount);
        Assert.True(new Shape(2, 3) == new int[] { 2, 3 });
        Assert.Equal(new Shape(2, 3).GetHashCode(), new Shape(2, 3).GetHashCode());
    }

    [Fact]
    public void BadDimensionsAndAxesRaise()
    {
        var e = Assert.Throws<ArgumentException>(() => new Shape(2, -1));
        Assert.Contains("[2, -1]", e.Message);
        var s = new Shape(2, 3);
        Assert.Throws<ArgumentOutOfRangeException>(() => s[2]);
        Assert.Throws<ArgumentOutOfRangeException>(() => s.NormalizeAxis(-3));
        Assert.Throws<ArgumentOutOfRangeException>(() => s.With(5, 1));
        Assert.Throws<OverflowException>(() => new Shape(int.MaxValue, int.MaxValue, int.MaxValue));
    }
}
