using static Hal.Backends.Cpu.Tests.FusedTestSupport;

namespace Hal.Backends.Cpu.Tests;

// Layer norm and RMS norm kernels against plain double loops and finite differences.
// Legend: N rows, C the normalised axis; weight, bias [C]; mean, rstd [N] F32.
public sealed class FusedNormTests(FusedFixture fx) : IClassFixture<FusedFixture>
{
    private const double Eps = 1e-5;

    public static TheoryData<int, DType> Sizes()
    {
        var data = new TheoryData<int, DType>();
        foreach (int c in new[] { 1, 7, 8, 9, 31, 33, 64, 65 })
        {
            data.Add(c, DType.F32);
            data.Add(c, DType.F64);
        }
        data.Add(33, DType.BF16);
        data.Add(64, DType.F16);
        return data;
    }

    /// <summary>Layer norm (rms false) or RMS norm (rms true) in double: y, mean, rstd.</summary>
    private static (double[] Y, double[] Mean, double[] Rstd) Reference(double[] x, double[] w, double[]? b, int c, bool rms)
    {
        int n = x.Length / c;
        var y = new double[x.Length];
        var mean = new double[n];
        var rstd = new double[n];
        for (int r = 0; r < n; r++)
        {
            double mu = 0;
            for (int i = 0; i < c && !rms; i++)
            {
                mu += x[(r * c) + i] / c;
            }
            double variance = 0;
            for (int i = 0; i < c; i++)
            {
                variance += (x[(r * c) + i] - mu) * (x[(r * c) + i] - mu) / c;
            }
            double inv = 1 / Math.Sqrt(variance + Eps);
            for (int i = 0; i < c; i++)
            {
                y[(r * c) + i] = ((x[(r * c) + i] - mu) * inv * w[i]) + (b is null ? 0 : b[i]);
            }
            mean[r] = mu;
            rstd[r] = inv;
        }
        return (y, mean, rstd);
    }

    private (double[] Y, double[] Mean, double[] Rstd) Run(double[] x, double[] w, double[]? b, int c, DType dtype, bool rms)
    {
        int n = x.Length / c;
        using var tx = fx.Ops.FromArray(x, new Shape(n, c), dtype);
        using var tw = fx.Ops.FromArray(w, new Shape(c), dtype);
        using var tb = b is null ? null : fx.Ops.FromArray(b, new Shape(c), dtype);
        using var ty = fx.Ops.Empty(new Shape(n, c), dtype);
        using var mean = fx.Ops.Empty(new Shape(n), DType.F32);
        using var rstd = fx.Ops.Empty(new Shape(n), DType.F32);
        if (rms)
        {
            fx.Ops.Upload(new double[n], mean);
            fx.Kernels.RmsNorm(tx, tw, Eps, ty, rstd);
        }
        else
        {
            fx.Kernels.LayerNorm(tx, tw, tb, Eps, ty, mean, rstd);
        }
        return (fx.Ops.ToDoubleArray(ty), fx.Ops.ToDoubleArray(mean), fx.Ops.ToDoubleArray(rstd));
    }

    [Theory]
    [MemberData(nameof(Sizes))]
    public void ForwardMatchesReference(int c, DType dtype)
    {
        int seed = 100 + c;
        const int n = 5;
        var x = Quantize(RandomArray(seed, (long)n * c, -3, 5), dtype);
        var w = Quantize(RandomArray(seed + 1, c, 0.5, 1.5), dtype);
        var b = Quantize(RandomArray(seed + 2, c), dtype);
        foreach (bool rms in new[] { false, true })
        {
            var expected = Reference(x, w, rms ? null : b, c, rms);
            var got = Run(x, w, rms ? null : b, c, dtype, rms);
            // Sums of C terms in 16 lanes: (C/16 + 4) ULP of the compute dtype relative to Σ|x|, and x̂ = (x − μ)·rstd
            // is bounded by √C: (C + 8)·ε·√C·|w| (|w| ≤ 1.5, |x| ≤ 5 around a mean within 5) absolute, plus the
            // storage rounding of y relative to |y|. Statistics are stored in F32 (half-ULP relative).
            double atol = ComputeEpsilon(dtype) * (c + 8) * Math.Sqrt(c) * 16;
            string what = $"{(rms ? "rms" : "layer")} norm C={c} {dtype} seed={seed}";
            AssertClose(expected.Y, got.Y, 2 * StorageRounding(dtype), atol, what + " y");
            AssertClose(expected.Rstd, got.Rstd, 6e-8 + (ComputeEpsilon(dtype) * (c + 8)), 0, what + " rstd");
            if (!rms)
            {
                AssertClose(expected.Mean, got.Mean, 6e-8, ComputeEpsilon(dtype) * (c + 8) * 5, what + " mean");
            }
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(9)]
    [InlineData(33)]
    public void BackwardMatchesFiniteDifferencesInF64(int c)
    {
        int seed = 200 + c;
        const int n = 3;
        var x = RandomArray(seed, (long)n * c, -2, 3);
        var w = RandomArray(seed + 1, c, 0.5, 1.5);
        var b = RandomArray(seed + 2, c);
        var dy = RandomArray(seed + 3, (long)n * c);
        foreach (bool rms in new[] { false, true })
        {
            var bias = rms ? null : b;
            var fwd = Run(x, w, bias, c, DType.F64, rms);
            using var tdy = fx.Ops.FromArray(dy, new Shape(n, c), DType.F64);
            using var tx = fx.Ops.FromArray(x, new Shape(n, c), DType.F64);
            using var tw = fx.Ops.FromArray(w, new Shape(c), DType.F64);
            using var mean = fx.Ops.FromArray(fwd.Mean, new Shape(n), DType.F32);
            using var rstd = fx.Ops.FromArray(fwd.Rstd, new Shape(n), DType.F32);
            using var tdx = fx.Ops.Empty(new Shape(n, c), DType.F64);
            // Stale values in the gradient outputs: the kernel must overwrite them, not add to them.
            using var tdw = fx.Ops.FromArray(RandomArray(seed + 4, c), new Shape(c), DType.F64);
            using var tdb = fx.Ops.FromArray(RandomArray(seed + 5, c), new Shape(c), DType.F64);
            if (rms)
            {
                fx.Kernels.RmsNormBackward(tdy, tx, tw, rstd, tdx, tdw);
            }
            else
            {
                fx.Kernels.LayerNormBackward(tdy, tx, tw, mean, rstd, tdx, tdw, tdb);
            }
            // The backward takes the statistics as saved in F32 (2^-24 relative), so the analytic gradient is that of a
            // point 2^-24 away: ≈ 1e-7 relative to |dx| ≲ 10 and rstd up to 316 (C = 1). Central differences with
            // h = 1e-6 add h²·|f'''| ≈ 1e-11 and ε·|L|/h ≈ 1e-9.
            double atol = c == 1 ? 1e-4 : 5e-6;
            string what = $"{(rms ? "rms" : "layer")} norm backward C={c} seed={seed}";
            var numericX = NumericGradient(v => Weighted(dy, Run(v, w, bias, c, DType.F64, rms).Y), (double[])x.Clone(), 1e-6);
            AssertClose(numericX, fx.Ops.ToDoubleArray(tdx), 0, atol, what + " dx");
            var numericW = NumericGradient(v => Weighted(dy, Run(x, v, bias, c, DType.F64, rms).Y), (double[])w.Clone(), 1e-6);
            AssertClose(numericW, fx.Ops.ToDoubleArray(tdw), 0, atol, what + " dweight");
            if (!rms)
            {
                var numericB = NumericGradient(v => Weighted(dy, Run(x, w, v, c, DType.F64, rms).Y), (double[])b.Clone(), 1e-6);
                AssertClose(numericB, fx.Ops.ToDoubleArray(tdb), 0, atol, what + " dbias");
            }
        }
    }

    [Theory]
    [InlineData(65, DType.F32, 4)]
    [InlineData(31, DType.F32, 40)]
    [InlineData(64, DType.BF16, 3)]
    [InlineData(7, DType.F16, 5)]
    [InlineData(1000, DType.F32, 70)]
    public void BackwardMatchesAnalyticReference(int c, DType dtype, int n)
    {
        int seed = 300 + c;
        var x = Quantize(RandomArray(seed, (long)n * c, -2, 3), dtype);
        var w = Quantize(RandomArray(seed + 1, c, 0.5, 1.5), dtype);
        var dy = Quantize(RandomArray(seed + 3, (long)n * c), dtype);
        var stats = Reference(x, w, null, c, rms: false);
        var mean = Array.ConvertAll(stats.Mean, v => (double)(float)v);
        var rstd = Array.ConvertAll(stats.Rstd, v => (double)(float)v);
        using var tdy = fx.Ops.FromArray(dy, new Shape(n, c), dtype);
        using var tx = fx.Ops.FromArray(x, new Shape(n, c), dtype);
        using var tw = fx.Ops.FromArray(w, new Shape(c), dtype);
        using var tm = fx.Ops.FromArray(mean, new Shape(n), DType.F32);
        using var tr = fx.Ops.FromArray(rstd, new Shape(n), DType.F32);
        using var tdx = fx.Ops.Empty(new Shape(n, c), dtype);
        using var tdw = fx.Ops.Empty(new Shape(c), dtype);
        using var tdb = fx.Ops.Empty(new Shape(c), dtype);
        fx.Kernels.LayerNormBackward(tdy, tx, tw, tm, tr, tdx, tdw, tdb);
        // The textbook gradient, from the same (F32) statistics the kernel reads.
        var dx = new double[x.Length];
        var dw = new double[c];
        var db = new double[c];
        for (int r = 0; r < n; r++)
        {
            double sumG = 0, sumGx = 0;
            for (int i = 0; i < c; i++)
            {
                double xhat = (x[(r * c) + i] - mean[r]) * rstd[r];
                sumG += dy[(r * c) + i] * w[i];
                sumGx += dy[(r * c) + i] * w[i] * xhat;
                dw[i] += dy[(r * c) + i] * xhat;
                db[i] += dy[(r * c) + i];
            }
            for (int i = 0; i < c; i++)
            {
                double xhat = (x[(r * c) + i] - mean[r]) * rstd[r];
                dx[(r * c) + i] = rstd[r] * ((dy[(r * c) + i] * w[i]) - (sumG / c) - (xhat * sumGx / c));
            }
        }
        // Row sums of C terms of size ≤ 3·|x̂| (|x̂| ≤ √C): C·ε·3√C relative to rstd ≤ 3; column sums over n rows: n·ε·3√C.
        double eps = ComputeEpsilon(dtype);
        string what = $"layer norm backward C={c} N={n} {dtype} seed={seed}";
        AssertClose(dx, fx.Ops.ToDoubleArray(tdx), 2 * StorageRounding(dtype), eps * (c + 8) * 9 * Math.Sqrt(c), what + " dx");
        AssertClose(dw, fx.Ops.ToDoubleArray(tdw), 2 * StorageRounding(dtype), eps * (n + 8) * 3 * Math.Sqrt(c), what + " dweight");
        AssertClose(db, fx.Ops.ToDoubleArray(tdb), 2 * StorageRounding(dtype), eps * (n + 8) * 3, what + " dbias");
    }

    [Fact]
    public void NaNPropagatesToItsRowOnly()
    {
        const int c = 17, n = 3;
        var x = RandomArray(400, n * c);
        x[(2 * c) + 16] = double.NaN;
        var w = RandomArray(401, c);
        foreach (var dtype in new[] { DType.F32, DType.F64 })
        {
            foreach (bool rms in new[] { false, true })
            {
                var (y, _, rstd) = Run(x, w, null, c, dtype, rms);
                for (int i = 0; i < y.Length; i++)
                {
                    Assert.True(double.IsNaN(y[i]) == (i / c == 2), $"{dtype} rms={rms}: y[{i}] = {y[i]}");
                }
                Assert.True(double.IsNaN(rstd[2]) && !double.IsNaN(rstd[0]) && !double.IsNaN(rstd[1]), $"{dtype} rms={rms}: rstd");
            }
        }
    }
}
