using static Hal.Backends.Cpu.Tests.FusedTestSupport;

namespace Hal.Backends.Cpu.Tests;

// Symmetric per-row int8 quantisation. Legend: R rows, C columns; scale [R] F32.
public sealed class FusedQuantTests(FusedFixture fx) : IClassFixture<FusedFixture>
{
    [Theory]
    [InlineData(1, DType.F32)]
    [InlineData(7, DType.F32)]
    [InlineData(33, DType.F64)]
    [InlineData(65, DType.F32)]
    [InlineData(64, DType.BF16)]
    [InlineData(9, DType.F16)]
    public void QuantizeMatchesReferenceAndDequantizeInvertsIt(int c, DType dtype)
    {
        int seed = 1200 + c;
        const int r = 4;
        var x = Quantize(RandomArray(seed, (long)r * c, -3, 3), dtype);
        // Row 2 is all zeros: scale 1, levels 0.
        Array.Clear(x, 2 * c, c);
        using var tx = fx.Ops.FromArray(x, new Shape(r, c), dtype);
        using var tq = fx.Ops.Empty(new Shape(r, c), DType.I8);
        using var ts = fx.Ops.Empty(new Shape(r), DType.F32);
        fx.Kernels.QuantizeInt8(tx, tq, ts);
        var q = fx.Ops.ToDoubleArray(tq);
        var scale = fx.Ops.ToDoubleArray(ts);
        for (int row = 0; row < r; row++)
        {
            double maxAbs = 0;
            for (int i = 0; i < c; i++)
            {
                maxAbs = Math.Max(maxAbs, Math.Abs(x[(row * c) + i]));
            }
            double expectedScale = maxAbs == 0 ? 1 : (float)(maxAbs / 127);
            Assert.Equal(expectedScale, scale[row]);
            for (int i = 0; i < c; i++)
            {
                double level = Math.Clamp(Math.Round(x[(row * c) + i] / expectedScale, MidpointRounding.ToEven), -127, 127);
                Assert.True(level == q[(row * c) + i], $"C={c} {dtype}: q[{row},{i}] = {q[(row * c) + i]}, expected {level} (seed {seed})");
            }
        }
        using var ty = fx.Ops.Empty(new Shape(r, c), dtype);
        fx.Kernels.DequantizeInt8(tq, ts, ty);
        var expectedY = new double[x.Length];
        for (int i = 0; i < x.Length; i++)
        {
            expectedY[i] = q[i] * scale[i / c];
        }
        // level·scale is exact in double; the only error is rounding to the output dtype (F32 or narrower).
        AssertClose(Quantize(expectedY, dtype == DType.F64 ? DType.F64 : dtype), fx.Ops.ToDoubleArray(ty), 0, 0, $"dequantize C={c} {dtype} seed={seed}");
    }

    [Fact]
    public void TiesRoundToEven()
    {
        // max |x| = 127 gives scale 1, so each x is its own level: ties go to the even neighbour.
        double[] x = [127, 0.5, 1.5, 2.5, -0.5, -2.5, -126.5, 3.49];
        using var tx = fx.Ops.FromArray(x, new Shape(1, x.Length), DType.F32);
        using var tq = fx.Ops.Empty(new Shape(1, x.Length), DType.I8);
        using var ts = fx.Ops.Empty(new Shape(1), DType.F32);
        fx.Kernels.QuantizeInt8(tx, tq, ts);
        Assert.Equal([127, 0, 2, 2, 0, -2, -126, 3], fx.Ops.ToArray<sbyte>(tq));
        Assert.Equal(1.0, fx.Ops.ToDoubleArray(ts)[0]);
    }
}
