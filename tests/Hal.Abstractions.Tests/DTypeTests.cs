namespace Hal.Abstractions.Tests;

public sealed class DTypeTests
{
    [Theory]
    [InlineData(DType.F32, 4, "f32")]
    [InlineData(DType.F64, 8, "f64")]
    [InlineData(DType.F16, 2, "f16")]
    [InlineData(DType.BF16, 2, "bf16")]
    [InlineData(DType.I32, 4, "i32")]
    [InlineData(DType.I64, 8, "i64")]
    [InlineData(DType.I8, 1, "i8")]
    [InlineData(DType.U8, 1, "u8")]
    [InlineData(DType.Bool, 1, "bool")]
    public void SizeNameAndParseRoundTrip(DType dtype, int size, string name)
    {
        Assert.Equal(size, dtype.SizeInBytes());
        Assert.Equal(name, dtype.Name());
        Assert.Equal(dtype, DTypeInfo.Parse(name));
        Assert.Equal(dtype, DTypeInfo.Parse(" " + name.ToUpperInvariant() + " "));
    }

    [Fact]
    public void ClassificationAndEpsilon()
    {
        Assert.Equal(9, DTypeInfo.All.Count);
        Assert.Equal(4, DTypeInfo.All.Count(d => d.IsFloatingPoint()));
        Assert.True(DType.BF16.Is16Bit() && !DType.F32.Is16Bit());
        Assert.True(DType.U8.IsInteger() && !DType.Bool.IsInteger());
        Assert.True(DType.I32.IsIndex() && !DType.I8.IsIndex());
        Assert.Equal(Math.Pow(2, -7), DType.BF16.Epsilon());
        Assert.Equal(Math.Pow(2, -10), DType.F16.Epsilon());
        Assert.Throws<ArgumentOutOfRangeException>(() => DType.I32.Epsilon());
        Assert.Equal(DType.BF16, DTypeInfo.Parse("bfloat16"));
        Assert.Equal(DType.F16, DTypeInfo.Parse("half"));
    }

    [Fact]
    public void ParseErrorListsTheValidNames()
    {
        var e = Assert.Throws<ArgumentException>(() => DTypeInfo.Parse("f8"));
        Assert.Contains("'f8'", e.Message);
        Assert.Contains("bf16", e.Message);
        Assert.Throws<ArgumentNullException>(() => DTypeInfo.Parse(null!));
        Assert.Throws<ArgumentOutOfRangeException>(() => ((DType)99).SizeInBytes());
    }
}
