using static Hal.Backends.Cpu.Tests.FusedTestSupport;

namespace Hal.Backends.Cpu.Tests;

// AdamW, LAMB and LARS run for several steps against the formulas in double.
public sealed class FusedOptimizerTests(FusedFixture fx) : IClassFixture<FusedFixture>
{
    private const int Steps = 5;

    public static TheoryData<int, DType> Cases() => new()
    {
        { 1, DType.F32 },
        { 33, DType.F32 },
        { 65, DType.F64 },
        { 40000, DType.F32 },
        { 64, DType.BF16 },
        { 9, DType.F16 },
    };

    private static double[] Gradient(int seed, int step, int n) => RandomArray(seed + (17 * step), n, -1, 1);

    /// <summary>AdamW (lamb false) or LAMB in double, states kept in double.</summary>
    private static double[] AdamReference(double[] p0, int seed, AdamWConfig c, bool lamb)
    {
        var p = (double[])p0.Clone();
        var m = new double[p.Length];
        var v = new double[p.Length];
        for (int t = 1; t <= Steps; t++)
        {
            var g = Gradient(seed, t, p.Length);
            var u = new double[p.Length];
            double pn = 0, un = 0;
            for (int i = 0; i < p.Length; i++)
            {
                m[i] = (c.Beta1 * m[i]) + ((1 - c.Beta1) * g[i]);
                v[i] = (c.Beta2 * v[i]) + ((1 - c.Beta2) * g[i] * g[i]);
                double mhat = m[i] / (1 - Math.Pow(c.Beta1, t)), vhat = v[i] / (1 - Math.Pow(c.Beta2, t));
                u[i] = (mhat / (Math.Sqrt(vhat) + c.Epsilon)) + (c.WeightDecay * p[i]);
                pn += p[i] * p[i];
                un += u[i] * u[i];
            }
            double ratio = lamb && pn > 0 && un > 0 ? Math.Sqrt(pn) / Math.Sqrt(un) : 1;
            for (int i = 0; i < p.Length; i++)
            {
                p[i] -= c.LearningRate * ratio * u[i];
            }
        }
        return p;
    }

    private static double[] LarsReference(double[] p0, int seed, LarsConfig c)
    {
        var p = (double[])p0.Clone();
        var buf = new double[p.Length];
        for (int t = 1; t <= Steps; t++)
        {
            var g = Gradient(seed, t, p.Length);
            double pn = Math.Sqrt(p.Sum(x => x * x)), gn = Math.Sqrt(g.Sum(x => x * x));
            double local = pn > 0 && gn > 0 ? c.TrustCoefficient * pn / (gn + (c.WeightDecay * pn) + c.Epsilon) : 1;
            for (int i = 0; i < p.Length; i++)
            {
                buf[i] = (c.Momentum * buf[i]) + (local * (g[i] + (c.WeightDecay * p[i])));
                p[i] -= c.LearningRate * buf[i];
            }
        }
        return p;
    }

    private double[] Run(double[] p0, int seed, DType dtype, Action<Tensor, Tensor, Tensor, Tensor, long> step)
    {
        int n = p0.Length;
        using var p = fx.Ops.FromArray(p0, new Shape(n), dtype);
        using var m = fx.Ops.FromArray(new double[n], new Shape(n), DType.F32);
        using var v = fx.Ops.FromArray(new double[n], new Shape(n), DType.F32);
        for (int t = 1; t <= Steps; t++)
        {
            using var g = fx.Ops.FromArray(Quantize(Gradient(seed, t, n), dtype), new Shape(n), dtype);
            step(p, g, m, v, t);
        }
        return fx.Ops.ToDoubleArray(p);
    }

    /// <summary>
    /// Each step moves p by at most lr·(1 + wd·|p|)·ratio; the F32 states add 2^-24 relative to that move, and the
    /// stored parameter is rounded every step (half an ULP of its dtype, relative to |p| ≤ 2 + the moves):
    /// Steps·(1e-6·move + 2·half-ULP) absolute plus Steps·2·half-ULP relative bounds the drift from the double run.
    /// </summary>
    private static void AssertTrajectory(double[] expected, double[] got, DType dtype, double lrScale, string what) =>
        AssertClose(expected, got, Steps * 2 * StorageRounding(dtype), Steps * ((1e-6 * lrScale) + (2 * StorageRounding(dtype))), what);

    [Theory]
    [MemberData(nameof(Cases))]
    public void AdamWMatchesReference(int n, DType dtype)
    {
        int seed = 800 + n;
        var config = new AdamWConfig(LearningRate: 1e-2, WeightDecay: 0.1);
        var p0 = Quantize(RandomArray(seed, n), dtype);
        var got = Run(p0, seed, dtype, (p, g, m, v, t) => fx.Kernels.AdamW(p, g, m, v, config, t));
        AssertTrajectory(AdamReference(p0, seed, config, lamb: false), got, dtype, config.LearningRate, $"AdamW n={n} {dtype} seed={seed}");
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void LambMatchesReference(int n, DType dtype)
    {
        int seed = 900 + n;
        var config = new AdamWConfig(LearningRate: 1e-2, WeightDecay: 0.01);
        var p0 = Quantize(RandomArray(seed, n), dtype);
        var got = Run(p0, seed, dtype, (p, g, m, v, t) => fx.Kernels.Lamb(p, g, m, v, config, t));
        // The trust ratio ‖p‖/‖u‖ is ≈ 1 here (|p|, |u| ~ 1), and its norms are reduced in double.
        AssertTrajectory(AdamReference(p0, seed, config, lamb: true), got, dtype, config.LearningRate, $"LAMB n={n} {dtype} seed={seed}");
    }

    [Fact]
    public void LambWithZeroParametersUsesRatioOne()
    {
        const int seed = 950, n = 17;
        var config = new AdamWConfig(LearningRate: 1e-2);
        var p0 = new double[n];
        using var p = fx.Ops.FromArray(p0, new Shape(n), DType.F64);
        using var m = fx.Ops.FromArray(new double[n], new Shape(n), DType.F32);
        using var v = fx.Ops.FromArray(new double[n], new Shape(n), DType.F32);
        using var g = fx.Ops.FromArray(Gradient(seed, 1, n), new Shape(n), DType.F64);
        fx.Kernels.Lamb(p, g, m, v, config, 1);
        var expected = new double[n];
        var grad = Gradient(seed, 1, n);
        for (int i = 0; i < n; i++)
        {
            // Step 1: m̂ = g and v̂ = g² (g rounded to the F32 states), so u = g/(|g| + eps) and ‖p‖ = 0 gives ratio 1.
            double gf = (float)grad[i], g2 = (float)((1 - config.Beta2) * grad[i] * grad[i]) / (1 - config.Beta2);
            expected[i] = -config.LearningRate * (gf / (Math.Sqrt(g2) + config.Epsilon));
        }
        AssertClose(expected, fx.Ops.ToDoubleArray(p), 1e-7, 0, $"LAMB at p = 0 seed={seed}");
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void LarsMatchesReference(int n, DType dtype)
    {
        int seed = 1100 + n;
        var config = new LarsConfig(LearningRate: 0.5, WeightDecay: 1e-2, TrustCoefficient: 0.02);
        var p0 = Quantize(RandomArray(seed, n), dtype);
        var got = Run(p0, seed, dtype, (p, g, buf, _, _) => fx.Kernels.Lars(p, g, buf, config));
        // local_lr ≈ 0.02·‖p‖/‖g‖ ≈ 0.04; lr·local_lr·|g| per step is the move size.
        AssertTrajectory(LarsReference(p0, seed, config), got, dtype, config.LearningRate * 0.1, $"LARS n={n} {dtype} seed={seed}");
    }

    [Fact]
    public void LarsWithZeroGradientUsesLocalRateOne()
    {
        const int n = 9;
        var config = new LarsConfig(LearningRate: 0.1, WeightDecay: 0.5);
        var p0 = RandomArray(1150, n);
        using var p = fx.Ops.FromArray(p0, new Shape(n), DType.F64);
        using var buf = fx.Ops.FromArray(new double[n], new Shape(n), DType.F64);
        using var g = fx.Ops.FromArray(new double[n], new Shape(n), DType.F64);
        fx.Kernels.Lars(p, g, buf, config);
        // ‖g‖ = 0: local_lr = 1, buf = wd·p, p −= lr·wd·p.
        AssertClose(p0.Select(x => x - (0.1 * 0.5 * x)).ToArray(), fx.Ops.ToDoubleArray(p), 1e-15, 0, "LARS at g = 0 seed=1150");
    }
}
