namespace Hal.Abstractions.Tests;

// Shapes: param, grad, m, v, momentum buffer [n] (states F32, or F64 with F64 params).
public sealed class CompositeOptimizerTests : CompositeTestBase
{
    private const int Steps = 4;

    /// <summary>The AdamW update u = m̂/(√v̂ + eps) + wd·p, updating m and v (double reference).</summary>
    private static double[] AdamUpdateReference(double[] p, double[] g, double[] m, double[] v, AdamWConfig cfg, long step)
    {
        var u = new double[p.Length];
        for (int i = 0; i < p.Length; i++)
        {
            m[i] = (cfg.Beta1 * m[i]) + ((1 - cfg.Beta1) * g[i]);
            v[i] = (cfg.Beta2 * v[i]) + ((1 - cfg.Beta2) * g[i] * g[i]);
            double mHat = m[i] / (1 - Math.Pow(cfg.Beta1, step));
            double vHat = v[i] / (1 - Math.Pow(cfg.Beta2, step));
            u[i] = (mHat / (Math.Sqrt(vHat) + cfg.Epsilon)) + (cfg.WeightDecay * p[i]);
        }
        return u;
    }

    private static double Norm(double[] a) => Math.Sqrt(a.Sum(x => x * x));

    public static TheoryData<int, DType, bool> Cases() => new()
    {
        { 1, DType.F32, false },
        { 7, DType.F32, true },
        { 33, DType.F32, false },
        { 5, DType.F64, true },
        { 17, DType.F64, false },
    };

    /// <summary>Per-step agreement: F64 states and params keep ≈ 1e-15; F32 a few ulps of 2^-23 on values ≈ 1.</summary>
    private static double Tolerance(DType dtype) => dtype == DType.F64 ? 1e-12 : 2e-6;

    [Theory]
    [MemberData(nameof(Cases))]
    public void AdamWAndLambMatchReferenceOverSeveralSteps(int n, DType dtype, bool weightDecay)
    {
        foreach (bool lamb in new[] { false, true })
        {
            int seed = (n * 10) + (weightDecay ? 1 : 0) + (lamb ? 5 : 0);
            var cfg = new AdamWConfig(LearningRate: 0.01, WeightDecay: weightDecay ? 0.1 : 0);
            var p = Rounded(RandomValues(seed, n), dtype);
            var m = new double[n];
            var v = new double[n];
            var stateType = dtype == DType.F64 ? DType.F64 : DType.F32;
            using var pT = Upload(p, dtype, n);
            using var mT = Ops.Zeros(new Shape(n), stateType);
            using var vT = Ops.Zeros(new Shape(n), stateType);
            for (long step = 1; step <= Steps; step++)
            {
                var g = Rounded(RandomValues(seed + (int)step, n), dtype);
                using var gT = Upload(g, dtype, n);
                var u = AdamUpdateReference(p, g, m, v, cfg, step);
                double ratio = 1;
                if (lamb)
                {
                    double pn = Norm(p), un = Norm(u);
                    ratio = pn > 0 && un > 0 ? pn / un : 1;
                    Ops.Lamb(pT, gT, mT, vT, cfg, step);
                }
                else
                {
                    Ops.AdamW(pT, gT, mT, vT, cfg, step);
                }
                for (int i = 0; i < n; i++)
                {
                    p[i] -= cfg.LearningRate * ratio * u[i];
                }
                string what = $"{(lamb ? "lamb" : "adamw")} {dtype} n={n} wd={cfg.WeightDecay} step {step} seed {seed}";
                double tol = Tolerance(dtype);
                AssertClose(p, Download(pT), tol, tol, what + " param");
                AssertClose(m, Download(mT), tol, tol, what + " m");
                AssertClose(v, Download(vT), tol, tol, what + " v");
                // Continue from the device's values so the comparison stays per step.
                p = Download(pT);
                m = Download(mT);
                v = Download(vT);
            }
        }
    }

    [Fact]
    public void LambUsesRatioOneWhenParamNormIsZero()
    {
        // ‖p‖ = 0 makes the trust ratio 1, so LAMB's first step equals AdamW's.
        const int n = 4;
        var cfg = new AdamWConfig(0.1);
        var g = RandomValues(3, n);
        using var p1 = Ops.Zeros(new Shape(n), DType.F64);
        using var p2 = Ops.Zeros(new Shape(n), DType.F64);
        using var gT = Upload(g, DType.F64, n);
        using var m1 = Ops.Zeros(new Shape(n), DType.F64);
        using var v1 = Ops.Zeros(new Shape(n), DType.F64);
        using var m2 = Ops.Zeros(new Shape(n), DType.F64);
        using var v2 = Ops.Zeros(new Shape(n), DType.F64);
        Ops.Lamb(p1, gT, m1, v1, cfg, 1);
        Ops.AdamW(p2, gT, m2, v2, cfg, 1);
        var expected = Download(p2);
        Assert.All(expected, x => Assert.NotEqual(0.0, x));
        AssertClose(expected, Download(p1), 1e-15, 1e-15, "lamb with ‖p‖ = 0, seed 3"); // same operations
    }

    [Fact]
    public void AdamWBf16ParamKeepsF32States()
    {
        const int n = 9;
        var cfg = new AdamWConfig(0.05, WeightDecay: 0.01);
        var p = Rounded(RandomValues(51, n), DType.BF16);
        var g = Rounded(RandomValues(52, n), DType.BF16);
        using var pT = Upload(p, DType.BF16, n);
        using var gT = Upload(g, DType.BF16, n);
        using var mT = Ops.Zeros(new Shape(n), DType.F32);
        using var vT = Ops.Zeros(new Shape(n), DType.F32);
        Ops.AdamW(pT, gT, mT, vT, cfg, 1);
        var m = new double[n];
        var v = new double[n];
        var u = AdamUpdateReference(p, g, m, v, cfg, 1);
        var expected = p.Select((x, i) => x - (cfg.LearningRate * u[i])).ToArray();
        // The parameter is rounded back to bf16 (2^-8 relative); the F32 states stay within F32 rounding.
        AssertClose(expected, Download(pT), 1e-2, Math.Pow(2, -8), "adamw bf16 param seeds 51/52");
        AssertClose(m, Download(mT), 1e-6, 1e-6, "adamw bf16 m seeds 51/52");
        AssertClose(v, Download(vT), 1e-6, 1e-6, "adamw bf16 v seeds 51/52");
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void LarsMatchesReferenceOverSeveralSteps(int n, DType dtype, bool weightDecay)
    {
        int seed = 200 + (n * 10) + (weightDecay ? 1 : 0);
        var cfg = new LarsConfig(LearningRate: 0.1, WeightDecay: weightDecay ? 0.01 : 0, TrustCoefficient: 0.02);
        var p = Rounded(RandomValues(seed, n), dtype);
        var buf = new double[n];
        var stateType = dtype == DType.F64 ? DType.F64 : DType.F32;
        using var pT = Upload(p, dtype, n);
        using var bufT = Ops.Zeros(new Shape(n), stateType);
        for (int step = 1; step <= Steps; step++)
        {
            var g = Rounded(RandomValues(seed + step, n), dtype);
            using var gT = Upload(g, dtype, n);
            double pn = Norm(p), gn = Norm(g);
            double local = pn > 0 && gn > 0 ? cfg.TrustCoefficient * pn / (gn + (cfg.WeightDecay * pn) + cfg.Epsilon) : 1;
            for (int i = 0; i < n; i++)
            {
                buf[i] = (cfg.Momentum * buf[i]) + (local * (g[i] + (cfg.WeightDecay * p[i])));
                p[i] -= cfg.LearningRate * buf[i];
            }
            Ops.Lars(pT, gT, bufT, cfg);
            string what = $"lars {dtype} n={n} wd={cfg.WeightDecay} step {step} seed {seed}";
            double tol = Tolerance(dtype);
            AssertClose(p, Download(pT), tol, tol, what + " param");
            AssertClose(buf, Download(bufT), tol, tol, what + " buffer");
            p = Download(pT);
            buf = Download(bufT);
        }
    }

    [Fact]
    public void LarsUsesLocalRateOneWhenGradientIsZero()
    {
        // ‖g‖ = 0 makes local_lr 1: buf = wd·p, p −= lr·wd·p.
        var cfg = new LarsConfig(LearningRate: 0.5, Momentum: 0.9, WeightDecay: 0.1);
        using var p = Upload([1, -2, 3], DType.F64, 3);
        using var g = Ops.Zeros(new Shape(3), DType.F64);
        using var buf = Ops.Zeros(new Shape(3), DType.F64);
        Ops.Lars(p, g, buf, cfg);
        AssertClose([0.1, -0.2, 0.3], Download(buf), 1e-15, 1e-15, "lars buffer with ‖g‖ = 0"); // one rounding per op
        AssertClose([0.95, -1.9, 2.85], Download(p), 1e-15, 1e-15, "lars param with ‖g‖ = 0");
    }
}
