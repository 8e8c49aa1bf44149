using System.Runtime.InteropServices;
using Hal.Numerics;

namespace Hal.Abstractions.Tests;

public sealed class HostConvertTests
{
    private static double RoundTrip(double v, DType dtype)
    {
        var bytes = new byte[dtype.SizeInBytes()];
        HostConvert.FromDoubles([v], dtype, bytes);
        var back = new double[1];
        HostConvert.ToDoubles(bytes, dtype, back);
        return back[0];
    }

    [Theory]
    [InlineData(DType.I32, 3.9, 3)]
    [InlineData(DType.I32, -3.9, -3)]
    [InlineData(DType.I32, 1e10, int.MaxValue)]
    [InlineData(DType.I32, -1e10, int.MinValue)]
    [InlineData(DType.I32, double.NaN, 0)]
    [InlineData(DType.I64, 1e30, long.MaxValue)]
    [InlineData(DType.I64, double.NegativeInfinity, long.MinValue)]
    [InlineData(DType.I8, 200, 127)]
    [InlineData(DType.I8, -200, -128)]
    [InlineData(DType.U8, -5, 0)]
    [InlineData(DType.U8, 255.9, 255)]
    [InlineData(DType.Bool, 0.1, 1)]
    [InlineData(DType.Bool, double.NaN, 1)]
    [InlineData(DType.Bool, -0.0, 0)]
    public void IntegerTargetsTruncateAndSaturate(DType dtype, double v, double want)
    {
        Assert.Equal(want, RoundTrip(v, dtype));
    }

    [Fact]
    public void DoubleToFloatTargetsRoundOnce()
    {
        var rng = new Random(2024);
        for (int i = 0; i < 200_000; i++)
        {
            // Random doubles across the bf16/f16 ranges, plus exact midpoints nudged by one double ulp either way,
            // which a detour through F32 rounds wrongly.
            double v = Math.ScaleB(rng.NextDouble() + 1, rng.Next(-30, 20)) * (rng.Next(2) == 0 ? 1 : -1);
            double mid = HalfConvertTests.RoundToFormat(v, 7, -126, 127) + Math.ScaleB(Math.Sign(v), Math.ILogB(Math.Abs(v)) - 8);
            foreach (double x in new[] { v, mid, Math.BitIncrement(mid), Math.BitDecrement(mid) })
            {
                Assert.True(RoundTrip(x, DType.BF16) == HalfConvertTests.RoundToFormat(x, 7, -126, 127), $"bf16 seed=2024 i={i}: {x:R}");
                Assert.True(RoundTrip(x, DType.F16) == HalfConvertTests.RoundToFormat(x, 10, -14, 15), $"f16 seed=2024 i={i}: {x:R}");
                Assert.True(RoundTrip(x, DType.F32) == HalfConvertTests.RoundToFormat(x, 23, -126, 127), $"f32 seed=2024 i={i}: {x:R}");
            }
        }
    }

    [Fact]
    public void SpecialsAndSizesAreChecked()
    {
        Assert.True(double.IsNaN(RoundTrip(double.NaN, DType.BF16)));
        Assert.Equal(double.NegativeInfinity, RoundTrip(double.NegativeInfinity, DType.F16));
        Assert.Equal(double.PositiveInfinity, RoundTrip(1e300, DType.BF16));
        Assert.Equal(double.PositiveInfinity, RoundTrip(1e300, DType.F32));
        Assert.Throws<ArgumentException>(() => HostConvert.FromDoubles([1, 2], DType.F32, new byte[4]));
        Assert.Throws<ArgumentException>(() => HostConvert.ToDoubles(new byte[3], DType.F16, new double[2]));
        var bytes = new byte[16];
        HostConvert.FromDoubles([-1, 9007199254740993.0], DType.I64, bytes);
        Assert.Equal(new long[] { -1, 9007199254740992 }, MemoryMarshal.Cast<byte, long>(bytes).ToArray());
    }
}
