using static Hal.Backends.Cpu.Tests.FusedTestSupport;

namespace Hal.Backends.Cpu.Tests;

// Embedding and rotary kernels. Legend: V vocabulary, C channels, N tokens; x [B, T, H, D], cos/sin [Tmax, D/2].
public sealed class FusedEmbeddingTests(FusedFixture fx) : IClassFixture<FusedFixture>
{
    public static TheoryData<int, DType, DType> Cases()
    {
        var data = new TheoryData<int, DType, DType>();
        foreach (int c in new[] { 1, 7, 8, 9, 31, 33, 64, 65 })
        {
            data.Add(c, DType.F32, c % 2 == 0 ? DType.I32 : DType.I64);
            data.Add(c, DType.F64, DType.I64);
        }
        data.Add(33, DType.BF16, DType.I32);
        data.Add(9, DType.F16, DType.I64);
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void EmbeddingCopiesRowsAndBackwardSumsThem(int c, DType dtype, DType indexType)
    {
        int seed = 500 + c;
        const int v = 10;
        long[] ids = [3, 0, 9, 3, 3, 7, 0];
        int n = ids.Length;
        var weight = Quantize(RandomArray(seed, (long)v * c), dtype);
        using var tw = fx.Ops.FromArray(weight, new Shape(v, c), dtype);
        using var tid = fx.Ops.FromArray(ids, new Shape(n), indexType);
        using var ty = fx.Ops.Empty(new Shape(n, c), dtype);
        fx.Kernels.Embedding(tw, tid, ty);
        var y = fx.Ops.ToDoubleArray(ty);
        for (int t = 0; t < n; t++)
        {
            for (int i = 0; i < c; i++)
            {
                // A lookup copies bits: exact.
                Assert.True(weight[(ids[t] * c) + i] == y[(t * c) + i], $"embedding C={c} {dtype}: y[{t},{i}] (seed {seed})");
            }
        }

        var dy = Quantize(RandomArray(seed + 1, (long)n * c), dtype);
        using var tdy = fx.Ops.FromArray(dy, new Shape(n, c), dtype);
        using var tdw = fx.Ops.FromArray(RandomArray(seed + 2, (long)v * c), new Shape(v, c), dtype);
        fx.Kernels.EmbeddingBackward(tdy, tid, tdw);
        var expected = new double[v * c];
        for (int t = 0; t < n; t++)
        {
            for (int i = 0; i < c; i++)
            {
                expected[(ids[t] * c) + i] += dy[(t * c) + i];
            }
        }
        // At most 3 tokens (|dy| ≤ 2) share a row: two additions err by ε·Σ|dy| ≤ 6ε absolute (the sum may cancel),
        // then the storage rounding relative to the result; untouched rows are exactly 0.
        AssertClose(expected, fx.Ops.ToDoubleArray(tdw), 2 * StorageRounding(dtype), 12 * ComputeEpsilon(dtype), $"embedding backward C={c} {dtype} seed={seed}");
    }

    [Fact]
    public void EmbeddingBackwardMatchesFiniteDifferencesInF64()
    {
        const int seed = 550, v = 6, c = 5;
        long[] ids = [1, 5, 1, 0];
        var weight = RandomArray(seed, v * c);
        var dy = RandomArray(seed + 1, ids.Length * c);
        using var tid = fx.Ops.FromArray(ids, new Shape(ids.Length), DType.I64);
        double Loss(double[] w)
        {
            using var tw = fx.Ops.FromArray(w, new Shape(v, c), DType.F64);
            using var ty = fx.Ops.Empty(new Shape(ids.Length, c), DType.F64);
            fx.Kernels.Embedding(tw, tid, ty);
            return Weighted(dy, fx.Ops.ToDoubleArray(ty));
        }
        using var tdy = fx.Ops.FromArray(dy, new Shape(ids.Length, c), DType.F64);
        using var tdw = fx.Ops.Empty(new Shape(v, c), DType.F64);
        fx.Kernels.EmbeddingBackward(tdy, tid, tdw);
        // The loss is linear in the weights: central differences are exact up to rounding, ε·|L|/h ≈ 1e-10 with h = 1e-5.
        AssertClose(NumericGradient(Loss, weight, 1e-5), fx.Ops.ToDoubleArray(tdw), 0, 1e-9, $"embedding backward seed={seed}");
    }

    /// <summary>cos/sin tables as a model builds them (F32): angle(p, i) = p·10000^(−2i/D).</summary>
    private static (double[] Cos, double[] Sin) Tables(int positions, int d)
    {
        int half = d / 2;
        var cos = new double[positions * half];
        var sin = new double[positions * half];
        for (int p = 0; p < positions; p++)
        {
            for (int i = 0; i < half; i++)
            {
                double angle = p * Math.Pow(10000, -2.0 * i / d);
                cos[(p * half) + i] = (float)Math.Cos(angle);
                sin[(p * half) + i] = (float)Math.Sin(angle);
            }
        }
        return (cos, sin);
    }

    private double[] RunRotary(double[] x, Shape shape, DType dtype, int offset, bool backward)
    {
        int d = shape[3];
        var (cos, sin) = Tables(offset + shape[1] + 2, d);
        using var tc = fx.Ops.FromArray(cos, new Shape(offset + shape[1] + 2, d / 2), DType.F32);
        using var ts = fx.Ops.FromArray(sin, new Shape(offset + shape[1] + 2, d / 2), DType.F32);
        using var tx = fx.Ops.FromArray(x, shape, dtype);
        using var ty = fx.Ops.Empty(shape, dtype);
        if (backward)
        {
            fx.Kernels.RotaryBackward(tx, tc, ts, offset, ty);
        }
        else
        {
            fx.Kernels.Rotary(tx, tc, ts, offset, ty);
        }
        return fx.Ops.ToDoubleArray(ty);
    }

    [Theory]
    [InlineData(2, DType.F32)]
    [InlineData(8, DType.F32)]
    [InlineData(16, DType.F64)]
    [InlineData(18, DType.F32)]
    [InlineData(34, DType.F64)]
    [InlineData(64, DType.F32)]
    [InlineData(66, DType.F64)]
    [InlineData(16, DType.BF16)]
    [InlineData(34, DType.F16)]
    public void RotaryMatchesReferenceAndBackwardInvertsIt(int d, DType dtype)
    {
        int seed = 600 + d;
        const int offset = 3;
        var shape = new Shape(2, 5, 3, d);
        var x = Quantize(RandomArray(seed, shape.ElementCount), dtype);
        var (cos, sin) = Tables(offset + 7, d);
        int half = d / 2;
        var expected = new double[x.Length];
        for (long r = 0; r < shape.ElementCount / d; r++)
        {
            long p = offset + ((r / 3) % 5);
            for (int i = 0; i < half; i++)
            {
                double c = cos[(p * half) + i], s = sin[(p * half) + i];
                double a = x[(r * d) + i], b = x[(r * d) + i + half];
                expected[(r * d) + i] = (a * c) - (b * s);
                expected[(r * d) + i + half] = (b * c) + (a * s);
            }
        }
        var y = RunRotary(x, shape, dtype, offset, backward: false);
        // Two products and a sum of values ≤ 2: a few ULP of the compute dtype absolute, plus the storage rounding.
        double atol = 8 * ComputeEpsilon(dtype);
        AssertClose(expected, y, 2 * StorageRounding(dtype), atol, $"rotary D={d} {dtype} seed={seed}");
        // cos² + sin² = 1 up to the F32 table rounding (≈ 1e-7), so the backward undoes the forward to that, plus the
        // storage rounding of y (|y| ≤ 2√2) carried through the rotation and the rounding of the result.
        var back = RunRotary(Quantize(y, dtype), shape, dtype, offset, backward: true);
        AssertClose(x, back, 2 * StorageRounding(dtype), 4e-7 + (4 * atol) + (6 * StorageRounding(dtype)), $"rotary backward∘forward D={d} {dtype} seed={seed}");
    }

    [Fact]
    public void RotaryBackwardMatchesFiniteDifferencesInF64()
    {
        const int seed = 650, offset = 2;
        var shape = new Shape(1, 4, 2, 6);
        var x = RandomArray(seed, shape.ElementCount);
        var w = RandomArray(seed + 1, shape.ElementCount);
        var dx = RunRotary(w, shape, DType.F64, offset, backward: true);
        // Linear in x: central differences exact up to rounding (≈ 1e-10 with h = 1e-5).
        var numeric = NumericGradient(v => Weighted(w, RunRotary(v, shape, DType.F64, offset, backward: false)), x, 1e-5);
        AssertClose(numeric, dx, 0, 1e-9, $"rotary backward seed={seed}");
    }
}
