namespace Hal.Abstractions.Tests;

// Shapes: x [N, C] (rows, last-axis channels); cross-entropy logits [N, V], targets [N].
public sealed class CompositeSoftmaxTests : CompositeTestBase
{
    // Central differences with h = 1e-6 in F64: rounding ≈ 2^-52·|L|/h ≈ 1e-9 for |L| ≈ 10, truncation ≈ h² ≈ 1e-12.
    private const double FdTolerance = 1e-7;

    // Cross-entropy saves lse in F32 (the contract): the backward carries its 2^-24 ≈ 6e-8 relative error.
    private const double FdToleranceF32Lse = 2e-6;

    public static TheoryData<int, int, DType> Shapes()
    {
        var data = new TheoryData<int, int, DType>();
        foreach (var (n, c) in new[] { (1, 1), (1, 7), (3, 1), (3, 8), (5, 17), (2, 33), (4, 65) })
        {
            data.Add(n, c, DType.F32);
            data.Add(n, c, DType.F64);
        }
        data.Add(3, 9, DType.BF16);
        return data;
    }

    private static double[] SoftmaxReference(double[] x, int n, int c, bool log)
    {
        var y = new double[x.Length];
        for (int r = 0; r < n; r++)
        {
            double max = double.NegativeInfinity;
            for (int j = 0; j < c; j++)
            {
                max = Math.Max(max, x[(r * c) + j]);
            }
            double sum = 0;
            for (int j = 0; j < c; j++)
            {
                sum += Math.Exp(x[(r * c) + j] - max);
            }
            for (int j = 0; j < c; j++)
            {
                double z = x[(r * c) + j] - max;
                y[(r * c) + j] = log ? z - Math.Log(sum) : Math.Exp(z) / sum;
            }
        }
        return y;
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void SoftmaxAndLogSoftmaxMatchReference(int n, int c, DType dtype)
    {
        int seed = (n * 1000) + c;
        var values = Rounded(RandomValues(seed, n * c, 4), dtype);
        using var x = Upload(values, dtype, n, c);
        using var y = Ops.Empty(new Shape(n, c), dtype);
        var (abs, rel) = ForwardTolerance(dtype);

        Ops.Softmax(x, y);
        AssertClose(SoftmaxReference(values, n, c, log: false), Download(y), abs, rel, $"softmax {dtype} [{n}, {c}] seed {seed}");
        Ops.LogSoftmax(x, y);
        AssertClose(SoftmaxReference(values, n, c, log: true), Download(y), abs, rel, $"log-softmax {dtype} [{n}, {c}] seed {seed}");
    }

    [Fact]
    public void SoftmaxWorksOnLeadingDimsAndLargeValues()
    {
        // Rows of a [2, 3, 5] tensor; values near 1000 would overflow exp without the max shift.
        var values = RandomValues(7, 30, 3).Select(v => v + 1000).ToArray();
        using var x = Upload(values, DType.F64, 2, 3, 5);
        using var y = Ops.Empty(new Shape(2, 3, 5), DType.F64);
        Ops.Softmax(x, y);
        AssertClose(SoftmaxReference(values, 6, 5, log: false), Download(y), 1e-12, 1e-12, "softmax [2, 3, 5] seed 7");
    }

    [Theory]
    [InlineData(1, 1)]
    [InlineData(3, 5)]
    [InlineData(2, 9)]
    public void SoftmaxBackwardMatchesFiniteDifferences(int n, int c)
    {
        int seed = 100 + (n * c);
        var x0 = RandomValues(seed, n * c, 2);
        var weights = RandomValues(seed + 1, n * c);
        foreach (bool log in new[] { false, true })
        {
            double[] Forward(double[] xv)
            {
                using var x = Upload(xv, DType.F64, n, c);
                using var y = Ops.Empty(new Shape(n, c), DType.F64);
                if (log)
                {
                    Ops.LogSoftmax(x, y);
                }
                else
                {
                    Ops.Softmax(x, y);
                }
                return Download(y);
            }
            using var yT = Upload(Forward(x0), DType.F64, n, c);
            using var dy = Upload(weights, DType.F64, n, c);
            using var dx = Ops.Empty(new Shape(n, c), DType.F64);
            if (log)
            {
                Ops.LogSoftmaxBackward(yT, dy, dx);
            }
            else
            {
                Ops.SoftmaxBackward(yT, dy, dx);
            }
            AssertClose(NumericGradient(x0, Forward, weights), Download(dx), FdTolerance, FdTolerance, $"{(log ? "log-" : "")}softmax backward [{n}, {c}] seed {seed}");
        }
    }

    [Fact]
    public void SoftmaxBackwardBf16MatchesReference()
    {
        const int n = 3, c = 9;
        var y = Rounded(SoftmaxReference(RandomValues(11, n * c), n, c, log: false), DType.BF16);
        var dy = Rounded(RandomValues(12, n * c), DType.BF16);
        using var yT = Upload(y, DType.BF16, n, c);
        using var dyT = Upload(dy, DType.BF16, n, c);
        using var dx = Ops.Empty(new Shape(n, c), DType.BF16);
        Ops.SoftmaxBackward(yT, dyT, dx);
        var expected = new double[n * c];
        for (int r = 0; r < n; r++)
        {
            double dot = 0;
            for (int j = 0; j < c; j++)
            {
                dot += dy[(r * c) + j] * y[(r * c) + j];
            }
            for (int j = 0; j < c; j++)
            {
                expected[(r * c) + j] = y[(r * c) + j] * (dy[(r * c) + j] - dot);
            }
        }
        var (abs, rel) = ForwardTolerance(DType.BF16);
        AssertClose(expected, Download(dx), abs, rel, "softmax backward bf16 seeds 11/12");
    }

    private static (double[] Losses, double[] Lse) CrossEntropyReference(double[] logits, long[] targets, int v)
    {
        int n = targets.Length;
        var losses = new double[n];
        var lse = new double[n];
        for (int r = 0; r < n; r++)
        {
            double max = double.NegativeInfinity;
            for (int j = 0; j < v; j++)
            {
                max = Math.Max(max, logits[(r * v) + j]);
            }
            double sum = 0;
            for (int j = 0; j < v; j++)
            {
                sum += Math.Exp(logits[(r * v) + j] - max);
            }
            lse[r] = max + Math.Log(sum);
            losses[r] = targets[r] < 0 ? 0 : lse[r] - logits[(r * v) + targets[r]];
        }
        return (losses, lse);
    }

    [Theory]
    [InlineData(1, 1, DType.F32, DType.I64)]
    [InlineData(4, 7, DType.F32, DType.I32)]
    [InlineData(5, 17, DType.F64, DType.I64)]
    [InlineData(3, 33, DType.F64, DType.I32)]
    [InlineData(4, 9, DType.BF16, DType.I64)]
    public void CrossEntropyMatchesReferenceWithIgnoredTargets(int n, int v, DType dtype, DType indexType)
    {
        int seed = (n * 100) + v;
        var logits = Rounded(RandomValues(seed, n * v, 3), dtype);
        var rng = new Random(seed);
        // Every other row from the second is ignored (−1 or −100) when there are several rows.
        var targets = Enumerable.Range(0, n).Select(r => n > 1 && r % 2 == 1 ? (r % 4 == 1 ? -1L : -100L) : rng.Next(v)).ToArray();
        using var x = Upload(logits, dtype, n, v);
        using var t = UploadIndices(targets, indexType, n);
        using var losses = Ops.Empty(new Shape(n), DType.F32);
        using var lse = Ops.Empty(new Shape(n), DType.F32);
        Ops.CrossEntropy(x, t, losses, lse);

        var (refLosses, refLse) = CrossEntropyReference(logits, targets, v);
        // Outputs are F32 whatever the input dtype: F32 rounding of the result (2^-24) plus F32 arithmetic.
        double tol = dtype == DType.F64 ? 1e-7 : 2e-5;
        AssertClose(refLosses, Download(losses), tol, tol, $"cross-entropy losses {dtype}/{indexType} [{n}, {v}] seed {seed}");
        AssertClose(refLse, Download(lse), tol, tol, $"cross-entropy lse {dtype}/{indexType} [{n}, {v}] seed {seed}");
        for (int r = 0; r < n; r++)
        {
            if (targets[r] < 0)
            {
                Assert.Equal(0.0, Download(losses)[r]);
            }
        }
    }

    [Theory]
    [InlineData(1, 1)]
    [InlineData(4, 5)]
    [InlineData(3, 8)]
    public void CrossEntropyBackwardMatchesFiniteDifferencesAndZeroesIgnoredRows(int n, int v)
    {
        int seed = 300 + (n * v);
        var x0 = RandomValues(seed, n * v, 2);
        var targets = Enumerable.Range(0, n).Select(r => r == 1 ? -1L : (r * 3) % v).ToArray();
        var dlosses = RandomValues(seed + 1, n);

        double[] Forward(double[] xv)
        {
            using var x = Upload(xv, DType.F64, n, v);
            using var t = UploadIndices(targets, DType.I64, n);
            using var losses = Ops.Empty(new Shape(n), DType.F32);
            using var lse = Ops.Empty(new Shape(n), DType.F32);
            Ops.CrossEntropy(x, t, losses, lse);
            return Download(losses);
        }

        // The losses are stored in F32, so the finite differences come from the double reference instead.
        double[] ForwardReference(double[] xv) => CrossEntropyReference(xv, targets, v).Losses;
        AssertClose(ForwardReference(x0), Forward(x0), 1e-7, 1e-7, $"cross-entropy F64 forward seed {seed}"); // F32 outputs
        using var xT = Upload(x0, DType.F64, n, v);
        using var tT = UploadIndices(targets, DType.I64, n);
        using var lseT = Upload(CrossEntropyReference(x0, targets, v).Lse, DType.F32, n);
        using var dl = Upload(dlosses, DType.F32, n);
        using var dx = Ops.Empty(new Shape(n, v), DType.F64);
        Ops.CrossEntropyBackward(xT, tT, lseT, dl, dx);
        var dlossesStored = Rounded(dlosses, DType.F32);
        var grad = Download(dx);
        AssertClose(NumericGradient(x0, ForwardReference, dlossesStored), grad, FdToleranceF32Lse, FdToleranceF32Lse, $"cross-entropy backward [{n}, {v}] seed {seed}");
        if (n > 1)
        {
            Assert.All(grad.Skip(v).Take(v), g => Assert.Equal(0.0, g));
        }
    }

    [Fact]
    public void CrossEntropyBackwardF32MatchesReference()
    {
        const int n = 3, v = 10;
        var logits = Rounded(RandomValues(21, n * v, 3), DType.F32);
        long[] targets = [4, -1, 9];
        var dlosses = Rounded(RandomValues(22, n), DType.F32);
        var (_, lse) = CrossEntropyReference(logits, targets, v);
        using var x = Upload(logits, DType.F32, n, v);
        using var t = UploadIndices(targets, DType.I32, n);
        using var lseT = Upload(lse, DType.F32, n);
        using var dl = Upload(dlosses, DType.F32, n);
        using var dx = Ops.Empty(new Shape(n, v), DType.F32);
        Ops.CrossEntropyBackward(x, t, lseT, dl, dx);
        var expected = new double[n * v];
        for (int r = 0; r < n; r++)
        {
            for (int j = 0; j < v; j++)
            {
                double p = Math.Exp(logits[(r * v) + j] - lse[r]) - (j == targets[r] ? 1 : 0);
                expected[(r * v) + j] = targets[r] < 0 ? 0 : p * dlosses[r];
            }
        }
        // F32 arithmetic plus the F32 rounding of lse (2^-24 relative): well under 1e-5.
        AssertClose(expected, Download(dx), 1e-5, 1e-5, "cross-entropy backward f32 seeds 21/22");
    }
}
