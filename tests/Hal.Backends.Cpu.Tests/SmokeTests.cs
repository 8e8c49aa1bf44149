namespace Hal.Backends.Cpu.Tests;

public sealed class SmokeTests(CpuFixture fx) : IClassFixture<CpuFixture>
{
    [Fact]
    public void AddBroadcastRowAndReduceSum()
    {
        var ops = fx.Ops;
        using var a = ops.FromArray(new double[] { 1, 2, 3, 4, 5, 6 }, new Shape(2, 3));
        using var b = ops.FromArray(new double[] { 10, 20, 30 }, new Shape(3));
        using var y = ops.Empty(new Shape(2, 3));
        ops.Binary(BinaryOp.Add, a, b, y);
        Assert.Equal(new double[] { 11, 22, 33, 14, 25, 36 }, ops.ToDoubleArray(y));
        using var s = ops.Empty(new Shape(1, 3));
        ops.Reduce(ReduceOp.Sum, y, 0, s);
        Assert.Equal(new double[] { 25, 47, 69 }, ops.ToDoubleArray(s));
        using var s1 = ops.Empty(new Shape(2, 1));
        ops.Reduce(ReduceOp.Max, y, 1, s1);
        Assert.Equal(new double[] { 33, 36 }, ops.ToDoubleArray(s1));
    }
}
