namespace Hal.Abstractions.Tests;

// Shapes: x, y [N, C]; weight, bias [C]; mean, rstd [N] (F32).
public sealed class CompositeNormTests : CompositeTestBase
{
    private const double Eps = 1e-5;

    // mean and rstd are saved in F32 (the contract), so F64 gradients carry their 2^-24 ≈ 6e-8 relative error,
    // summed over up to C ≈ 10 terms; finite-difference error itself (h = 1e-6) is ≈ 1e-9.
    private const double FdTolerance = 2e-6;

    public static TheoryData<int, int, DType> Shapes()
    {
        var data = new TheoryData<int, int, DType>();
        foreach (var (n, c) in new[] { (1, 1), (1, 8), (4, 1), (3, 7), (5, 16), (2, 33), (3, 65) })
        {
            data.Add(n, c, DType.F32);
            data.Add(n, c, DType.F64);
        }
        data.Add(3, 17, DType.BF16);
        return data;
    }

    private static (double[] Y, double[] Mean, double[] Rstd) LayerNormReference(double[] x, double[] w, double[]? b, int n, int c)
    {
        var y = new double[x.Length];
        var mean = new double[n];
        var rstd = new double[n];
        for (int r = 0; r < n; r++)
        {
            double m = 0;
            for (int j = 0; j < c; j++)
            {
                m += x[(r * c) + j];
            }
            m /= c;
            double var = 0;
            for (int j = 0; j < c; j++)
            {
                var += (x[(r * c) + j] - m) * (x[(r * c) + j] - m);
            }
            var /= c;
            double rs = 1 / Math.Sqrt(var + Eps);
            mean[r] = m;
            rstd[r] = rs;
            for (int j = 0; j < c; j++)
            {
                y[(r * c) + j] = ((x[(r * c) + j] - m) * rs * w[j]) + (b is null ? 0 : b[j]);
            }
        }
        return (y, mean, rstd);
    }

    private static (double[] Y, double[] Rstd) RmsNormReference(double[] x, double[] w, int n, int c)
    {
        var y = new double[x.Length];
        var rstd = new double[n];
        for (int r = 0; r < n; r++)
        {
            double ms = 0;
            for (int j = 0; j < c; j++)
            {
                ms += x[(r * c) + j] * x[(r * c) + j];
            }
            double rs = 1 / Math.Sqrt((ms / c) + Eps);
            rstd[r] = rs;
            for (int j = 0; j < c; j++)
            {
                y[(r * c) + j] = x[(r * c) + j] * rs * w[j];
            }
        }
        return (y, rstd);
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void LayerNormMatchesReference(int n, int c, DType dtype)
    {
        int seed = (n * 1000) + c;
        var x = Rounded(RandomValues(seed, n * c, 3).Select(v => v + 1).ToArray(), dtype);
        var w = Rounded(RandomValues(seed + 1, c), dtype);
        var b = Rounded(RandomValues(seed + 2, c), dtype);
        using var xT = Upload(x, dtype, n, c);
        using var wT = Upload(w, dtype, c);
        using var bT = Upload(b, dtype, c);
        using var y = Ops.Empty(new Shape(n, c), dtype);
        using var mean = Ops.Empty(new Shape(n), DType.F32);
        using var rstd = Ops.Empty(new Shape(n), DType.F32);
        var (abs, rel) = ForwardTolerance(dtype);
        var (ry, rmean, rrstd) = LayerNormReference(x, w, b, n, c);

        Ops.LayerNorm(xT, wT, bT, Eps, y, mean, rstd);
        string what = $"layer-norm {dtype} [{n}, {c}] seed {seed}";
        // A row of one element has var = 0 and rstd = 1/√eps ≈ 316, so its y is bias-dominated; scale abs by rstd.
        AssertClose(ry, Download(y), abs * 10, rel * 10, what + " y");
        // Statistics are F32: 2^-24 relative rounding on top of the compute error.
        AssertClose(rmean, Download(mean), Math.Max(abs, 1e-7), Math.Max(rel, 1e-7), what + " mean");
        AssertClose(rrstd, Download(rstd), Math.Max(abs, 1e-7), Math.Max(rel, 1e-7) * 10, what + " rstd");

        Ops.LayerNorm(xT, wT, null, Eps, y, mean, rstd);
        AssertClose(LayerNormReference(x, w, null, n, c).Y, Download(y), abs * 10, rel * 10, what + " without bias");
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void RmsNormMatchesReference(int n, int c, DType dtype)
    {
        int seed = (n * 1000) + c + 7;
        var x = Rounded(RandomValues(seed, n * c, 3), dtype);
        var w = Rounded(RandomValues(seed + 1, c), dtype);
        using var xT = Upload(x, dtype, n, c);
        using var wT = Upload(w, dtype, c);
        using var y = Ops.Empty(new Shape(n, c), dtype);
        using var rstd = Ops.Empty(new Shape(n), DType.F32);
        var (abs, rel) = ForwardTolerance(dtype);
        var (ry, rrstd) = RmsNormReference(x, w, n, c);
        Ops.RmsNorm(xT, wT, Eps, y, rstd);
        AssertClose(ry, Download(y), abs, rel, $"rms-norm {dtype} [{n}, {c}] seed {seed} y");
        // F32 statistic: 2^-24 relative rounding on top of the compute error.
        AssertClose(rrstd, Download(rstd), Math.Max(abs, 1e-7), Math.Max(rel, 1e-7), $"rms-norm {dtype} [{n}, {c}] seed {seed} rstd");
    }

    [Theory]
    [InlineData(1, 1)]
    [InlineData(1, 6)]
    [InlineData(3, 5)]
    [InlineData(4, 9)]
    public void LayerNormBackwardMatchesFiniteDifferences(int n, int c)
    {
        int seed = 500 + (n * c);
        var x0 = RandomValues(seed, n * c, 2);
        var w0 = RandomValues(seed + 1, c);
        var b0 = RandomValues(seed + 2, c);
        var dyv = RandomValues(seed + 3, n * c);

        double[] Forward(double[] xv, double[] wv, double[] bv)
        {
            using var x = Upload(xv, DType.F64, n, c);
            using var w = Upload(wv, DType.F64, c);
            using var b = Upload(bv, DType.F64, c);
            using var y = Ops.Empty(new Shape(n, c), DType.F64);
            using var mean = Ops.Empty(new Shape(n), DType.F32);
            using var rstd = Ops.Empty(new Shape(n), DType.F32);
            Ops.LayerNorm(x, w, b, Eps, y, mean, rstd);
            return Download(y);
        }

        using var xT = Upload(x0, DType.F64, n, c);
        using var wT = Upload(w0, DType.F64, c);
        using var bT = Upload(b0, DType.F64, c);
        using var yT = Ops.Empty(new Shape(n, c), DType.F64);
        using var meanT = Ops.Empty(new Shape(n), DType.F32);
        using var rstdT = Ops.Empty(new Shape(n), DType.F32);
        Ops.LayerNorm(xT, wT, bT, Eps, yT, meanT, rstdT);
        using var dy = Upload(dyv, DType.F64, n, c);
        using var dx = Ops.Empty(new Shape(n, c), DType.F64);
        using var dw = Ops.Empty(new Shape(c), DType.F64);
        using var db = Ops.Empty(new Shape(c), DType.F64);
        Ops.LayerNormBackward(dy, xT, wT, meanT, rstdT, dx, dw, db);

        string what = $"layer-norm backward [{n}, {c}] seed {seed}";
        // rstd of a one-element row is 1/√eps ≈ 316: its saved F32 value carries 316·6e-8 absolute error.
        double tol = c == 1 ? 1e-4 : FdTolerance;
        AssertClose(NumericGradient(x0, xv => Forward(xv, w0, b0), dyv), Download(dx), tol, tol, what + " dx");
        AssertClose(NumericGradient(w0, wv => Forward(x0, wv, b0), dyv), Download(dw), tol, tol, what + " dweight");
        AssertClose(NumericGradient(b0, bv => Forward(x0, w0, bv), dyv), Download(db), tol, tol, what + " dbias");
    }

    [Theory]
    [InlineData(1, 1)]
    [InlineData(3, 5)]
    [InlineData(2, 8)]
    public void RmsNormBackwardMatchesFiniteDifferences(int n, int c)
    {
        int seed = 700 + (n * c);
        var x0 = RandomValues(seed, n * c, 2);
        var w0 = RandomValues(seed + 1, c);
        var dyv = RandomValues(seed + 3, n * c);

        double[] Forward(double[] xv, double[] wv)
        {
            using var x = Upload(xv, DType.F64, n, c);
            using var w = Upload(wv, DType.F64, c);
            using var y = Ops.Empty(new Shape(n, c), DType.F64);
            using var rstd = Ops.Empty(new Shape(n), DType.F32);
            Ops.RmsNorm(x, w, Eps, y, rstd);
            return Download(y);
        }

        using var xT = Upload(x0, DType.F64, n, c);
        using var wT = Upload(w0, DType.F64, c);
        using var yT = Ops.Empty(new Shape(n, c), DType.F64);
        using var rstdT = Ops.Empty(new Shape(n), DType.F32);
        Ops.RmsNorm(xT, wT, Eps, yT, rstdT);
        using var dy = Upload(dyv, DType.F64, n, c);
        using var dx = Ops.Empty(new Shape(n, c), DType.F64);
        using var dw = Ops.Empty(new Shape(c), DType.F64);
        Ops.RmsNormBackward(dy, xT, wT, rstdT, dx, dw);

        string what = $"rms-norm backward [{n}, {c}] seed {seed}";
        AssertClose(NumericGradient(x0, xv => Forward(xv, w0), dyv), Download(dx), FdTolerance, FdTolerance, what + " dx");
        AssertClose(NumericGradient(w0, wv => Forward(x0, wv), dyv), Download(dw), FdTolerance, FdTolerance, what + " dweight");
    }

    [Fact]
    public void LayerNormBackwardBf16MatchesF64()
    {
        const int n = 3, c = 8;
        var x = Rounded(RandomValues(41, n * c, 2), DType.BF16);
        var w = Rounded(RandomValues(42, c), DType.BF16);
        var dyv = Rounded(RandomValues(43, n * c), DType.BF16);
        double[][] Run(DType dtype)
        {
            using var xT = Upload(x, dtype, n, c);
            using var wT = Upload(w, dtype, c);
            using var y = Ops.Empty(new Shape(n, c), dtype);
            using var mean = Ops.Empty(new Shape(n), DType.F32);
            using var rstd = Ops.Empty(new Shape(n), DType.F32);
            Ops.LayerNorm(xT, wT, null, Eps, y, mean, rstd);
            using var dy = Upload(dyv, dtype, n, c);
            using var dx = Ops.Empty(new Shape(n, c), dtype);
            using var dw = Ops.Empty(new Shape(c), dtype);
            Ops.LayerNormBackward(dy, xT, wT, mean, rstd, dx, dw, null);
            return [Download(dx), Download(dw)];
        }
        var reference = Run(DType.F64);
        var bf16 = Run(DType.BF16);
        var (abs, rel) = ForwardTolerance(DType.BF16);
        // The F64 run is checked by finite differences above; bf16 differs by its output rounding (2^-8) on values ≈ 1–3.
        AssertClose(reference[0], bf16[0], abs * 2, rel, "layer-norm backward bf16 dx seeds 41–43");
        AssertClose(reference[1], bf16[1], abs * 2, rel, "layer-norm backward bf16 dweight seeds 41–43");
    }
}
