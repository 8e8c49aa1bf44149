using Hal.Backends.Cpu;
using Hal.Models.Optim;
using Hal.Models.Training;

namespace Hal.Models.Tests;

// Shapes: every operand is a flat fp32 run [n]; on the device side the same values live in F32 tensors [n].
// Lengths sweep around the vector widths (4, 8, 16 floats) and cross the parallel threshold (256 Ki) once.

/// <summary>The host (CPU SIMD) optimizer kernels against the CPU backend's fused kernels, the device-side Optimizer and plain loops.</summary>
public sealed class HostOptimizerTests
{
    /// <summary>Consecutive AdamW steps compared after each one: covers steps 1, 2 and 10 of the bias correction.</summary>
    private const int AdamSteps = 10;

    public static TheoryData<int, bool> LengthsAndDecay()
    {
        var data = new TheoryData<int, bool>();
        foreach (int n in new[] { 0, 1, 7, 15, 16, 17, 63, 64, 65, 1000, 300_000 })
        {
            data.Add(n, false);
            data.Add(n, true);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(LengthsAndDecay))]
    public void AdamWEqualsTheCpuKernelBitForBit(int n, bool decay)
    {
        int seed = 100 + n + (decay ? 1 : 0);
        var random = new Random(seed);
        var config = new AdamWConfig(LearningRate: 1e-2, Beta1: 0.9, Beta2: 0.999, Epsilon: 1e-8, WeightDecay: decay ? 0.1 : 0);
        float[] p = Normal(random, n, 1), m = new float[n], v = new float[n];
        using var device = new CpuBackend().Open(0);
        var ops = new Ops(device);
        var shape = new Shape(n);
        using var tp = ops.FromArray(p, shape);
        using var tm = ops.FromArray(m, shape);
        using var tv = ops.FromArray(v, shape);
        for (int step = 1; step <= AdamSteps; step++)
        {
            float[] g = Normal(random, n, 0.5);
            using var tg = ops.FromArray(g, shape);
            ops.AdamW(tp, tg, tm, tv, config, step);
            HostOptimizer.AdamW(p, g, m, v, config, step);
            // Same constants, same fused multiply-adds, same order: no tolerance.
            string what = $"seed {seed} n {n} decay {decay} step {step}";
            AssertBitsEqual(ops.ToFloatArray(tp), p, what + " param");
            AssertBitsEqual(ops.ToFloatArray(tm), m, what + " exp_avg");
            AssertBitsEqual(ops.ToFloatArray(tv), v, what + " exp_avg_sq");
        }
    }

    [Theory]
    [InlineData(17, false)]
    [InlineData(65, true)]
    [InlineData(1000, true)]
    [InlineData(300_000, true)]
    public void AdamWMatchesTheFormulaInDouble(int n, bool decay)
    {
        int seed = 200 + n;
        var random = new Random(seed);
        const double lr = 1e-2, b1 = 0.9, b2 = 0.999, eps = 1e-8;
        double wd = decay ? 0.1 : 0;
        var config = new AdamWConfig(lr, b1, b2, eps, wd);
        float[] p = Normal(random, n, 1), m = new float[n], v = new float[n];
        double[] rp = Array.ConvertAll(p, x => (double)x), rm = new double[n], rv = new double[n];
        for (int step = 1; step <= 3; step++)
        {
            float[] g = Normal(random, n, 0.5);
            HostOptimizer.AdamW(p, g, m, v, config, step);
            for (int i = 0; i < n; i++)
            {
                rm[i] = (b1 * rm[i]) + ((1 - b1) * g[i]);
                rv[i] = (b2 * rv[i]) + ((1 - b2) * g[i] * g[i]);
                double mHat = rm[i] / (1 - Math.Pow(b1, step));
                double vHat = rv[i] / (1 - Math.Pow(b2, step));
                rp[i] -= lr * ((mHat / (Math.Sqrt(vHat) + eps)) + (wd * rp[i]));
            }
            // Float state rounds once per operation (6e-8 relative) and m, v, p carry it over 3 steps: 1e-6 relative,
            // plus 1e-6 absolute for values that cancel towards 0 (m is a difference of O(0.5) terms).
            string what = $"seed {seed} n {n} decay {decay} step {step}";
            OptimTestData.AssertClose(rp, ToDouble(p), 1e-6, 1e-6, what + " param");
            OptimTestData.AssertClose(rm, ToDouble(m), 1e-6, 1e-6, what + " exp_avg");
            OptimTestData.AssertClose(rv, ToDouble(v), 1e-9, 1e-6, what + " exp_avg_sq");
        }
    }

    [Theory]
    [InlineData(0, 0.0)]
    [InlineData(1, 0.1)]
    [InlineData(7, 0.0)]
    [InlineData(16, 0.1)]
    [InlineData(17, 0.1)]
    [InlineData(65, 0.0)]
    [InlineData(1000, 0.1)]
    [InlineData(300_000, 0.1)]
    public void SgdMomentumEqualsAFloatLoopInTheOptimizersOrder(int n, double weightDecay)
    {
        int seed = 300 + n;
        var random = new Random(seed);
        const double lr = 0.05, mu = 0.8;
        float[] p = Normal(random, n, 1), buf = new float[n];
        float[] rp = (float[])p.Clone(), rbuf = new float[n];
        for (int step = 1; step <= 3; step++)
        {
            float[] g = Normal(random, n, 0.5);
            HostOptimizer.SgdMomentum(p, g, buf, lr, mu, weightDecay);
            for (int i = 0; i < n; i++)
            {
                // Optimizer.SgdUpdate: buf·μ, + g, + (p·wd) when wd ≠ 0, then p − buf·lr; each op rounded to float.
                float b = rbuf[i] * (float)mu;
                b += g[i];
                if (weightDecay != 0)
                {
                    b += rp[i] * (float)weightDecay;
                }
                rbuf[i] = b;
                rp[i] -= b * (float)lr;
            }
            string what = $"seed {seed} n {n} wd {weightDecay} step {step}";
            AssertBitsEqual(rp, p, what + " param");
            AssertBitsEqual(rbuf, buf, what + " momentum_buffer");
        }
    }

    [Theory]
    [InlineData(65, true)]
    [InlineData(65, false)]
    [InlineData(1000, true)]
    public void SgdMomentumEqualsTheDeviceOptimizer(int n, bool decay)
    {
        int seed = 400 + n + (decay ? 1 : 0);
        var random = new Random(seed);
        const double lr = 0.05;
        var options = new OptimizerOptions { Kind = OptimizerKind.Sgd, Momentum = 0.8, WeightDecay = 0.1, Clip = 0 };
        // Rank 2 is decayed and rank 1 is not by the store's default rule; the host call passes wd 0 for the latter.
        int[] dims = decay ? [5, n / 5] : [n];
        using var h = new OptimHarness([("w", dims)]);
        int count = dims.Aggregate(1, (a, b) => a * b);
        float[] p = Normal(random, count, 1), buf = new float[count];
        h.SetParams([ToDouble(p)]);
        using var optimizer = new Optimizer(h.Ops, h.Store, options);
        for (int step = 1; step <= 3; step++)
        {
            float[] g = Normal(random, count, 0.5);
            h.SetGrads([ToDouble(g)]);
            Assert.False(optimizer.Step(lr, step).Skipped);
            HostOptimizer.SgdMomentum(p, g, buf, lr, options.Momentum, decay ? options.WeightDecay : 0);
            string what = $"seed {seed} n {count} decay {decay} step {step}";
            AssertBitsEqual(Array.ConvertAll(h.Param(0), x => (float)x), p, what + " param");
            var deviceBuffer = optimizer.StateTensors.Single(s => s.Name == "w.momentum_buffer").Tensor;
            AssertBitsEqual(h.Ops.ToFloatArray(deviceBuffer), buf, what + " momentum_buffer");
        }
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(7)]
    [InlineData(16)]
    [InlineData(17)]
    [InlineData(65)]
    [InlineData(1000)]
    [InlineData(65_537)]
    [InlineData(300_000)]
    public void SumOfSquaresMatchesADoubleLoop(int n)
    {
        int seed = 500 + n;
        float[] x = Normal(new Random(seed), n, 3);
        double expected = 0;
        foreach (float xi in x)
        {
            expected += (double)xi * xi;
        }
        double actual = HostOptimizer.SumOfSquares(x);
        // Exact squares summed in double in another order: n·2⁻⁵³ ≈ 3e-11 relative at worst for 300 000 terms, far
        // less in practice (random rounding errors cancel); 1e-12 holds with a wide margin for these seeds.
        Assert.True(Math.Abs(actual - expected) <= 1e-12 * expected, $"seed {seed} n {n}: {actual:R} vs {expected:R}");
        // Fixed blocks added in block order: the same bits on every call, parallel or not.
        Assert.Equal(BitConverter.DoubleToInt64Bits(actual), BitConverter.DoubleToInt64Bits(HostOptimizer.SumOfSquares(x)));
    }

    [Fact]
    public void SumOfSquaresKeepsDenormalsExact()
    {
        // Each square of a float is exact in double, so denormal inputs still count: 3 · (2⁻¹⁴⁹)² + 2 · (2⁻¹²⁶)².
        float tiny = float.Epsilon, smallestNormal = BitConverter.Int32BitsToSingle(0x00800000);
        float[] x = [tiny, smallestNormal, -tiny, 0f, -smallestNormal, tiny, 0f, 0f, 0f];
        double expected = (3 * Math.Pow(2, -298)) + (2 * Math.Pow(2, -252));
        Assert.Equal(expected, HostOptimizer.SumOfSquares(x));
    }

    [Theory]
    [InlineData(17, 3, float.NaN)]
    [InlineData(17, 16, float.PositiveInfinity)]
    [InlineData(65, 64, float.NegativeInfinity)]
    [InlineData(300_000, 299_999, float.NaN)]
    [InlineData(300_000, 131_072, float.NegativeInfinity)]
    public void SumOfSquaresPropagatesNaNAndInfinity(int n, int at, float bad)
    {
        float[] x = Normal(new Random(600 + n), n, 1);
        x[at] = bad;
        double actual = HostOptimizer.SumOfSquares(x);
        // (±Inf)² = +Inf and squares are never negative, so one Inf gives +Inf; NaN stays NaN.
        Assert.Equal(float.IsNaN(bad) ? double.NaN : double.PositiveInfinity, actual);
        x[0] = float.NaN;
        Assert.True(double.IsNaN(HostOptimizer.SumOfSquares(x)), $"n {n}: NaN with {bad} elsewhere must give NaN");
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(7)]
    [InlineData(15)]
    [InlineData(16)]
    [InlineData(17)]
    [InlineData(63)]
    [InlineData(64)]
    [InlineData(65)]
    [InlineData(300_000)]
    public void ScaleAndAddAreOneFloatOperationPerElement(int n)
    {
        int seed = 700 + n;
        var random = new Random(seed);
        float[] x = WithSpecials(Normal(random, n, 2)), src = WithSpecials(Normal(random, n, 2));
        float[] scaled = (float[])x.Clone(), summed = (float[])x.Clone();
        const float factor = 0.37f;
        HostOptimizer.Scale(scaled, factor);
        HostOptimizer.Add(src, summed);
        float[] expectedScaled = new float[n], expectedSummed = new float[n];
        for (int i = 0; i < n; i++)
        {
            expectedScaled[i] = x[i] * factor;
            expectedSummed[i] = x[i] + src[i];
        }
        AssertBitsEqual(expectedScaled, scaled, $"seed {seed} n {n} scale");
        AssertBitsEqual(expectedSummed, summed, $"seed {seed} n {n} add");
    }

    [Fact]
    public void MismatchedLengthsAndStepZeroAreRejected()
    {
        float[] four = new float[4], five = new float[5];
        var config = new AdamWConfig(1e-3);
        Assert.Throws<ArgumentException>(() => HostOptimizer.AdamW(four, four, four, five, config, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => HostOptimizer.AdamW(four, four, four, four, config, 0));
        Assert.Throws<ArgumentException>(() => HostOptimizer.SgdMomentum(four, five, four, 0.1, 0.9, 0));
        Assert.Throws<ArgumentException>(() => HostOptimizer.Add(five, four));
    }

    private static float[] Normal(Random random, int n, double scale) =>
        Array.ConvertAll(OptimTestData.Normal(random, n, scale), x => (float)x);

    private static double[] ToDouble(float[] values) => Array.ConvertAll(values, x => (double)x);

    /// <summary>Puts NaN, ±Inf, a denormal and −0 at the front (where the arrays are long enough).</summary>
    private static float[] WithSpecials(float[] values)
    {
        float[] specials = [float.NaN, float.PositiveInfinity, float.NegativeInfinity, 1e-40f, -0f];
        for (int i = 0; i < Math.Min(specials.Length, values.Length); i++)
        {
            values[i] = specials[i];
        }
        return values;
    }

    private static void AssertBitsEqual(float[] expected, float[] actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
        {
            if (BitConverter.SingleToInt32Bits(expected[i]) != BitConverter.SingleToInt32Bits(actual[i]))
            {
                Assert.Fail($"{what}[{i}]: expected {expected[i]:R}, got {actual[i]:R}");
            }
        }
    }
}
