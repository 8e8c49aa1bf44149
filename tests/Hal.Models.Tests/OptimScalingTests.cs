using Hal.Models.Optim;
using Hal.Models.Training;
using Hal.Numerics;

namespace Hal.Models.Tests;

// Shapes: one or two small parameters, flat [n] or [4, 4]; the slab is their concatenation.
// SGD with momentum 0 and lr 1 makes the applied (unscaled, clipped) gradient visible: p_after = p_before − g'.

/// <summary>Global-norm clipping, the finite check, dynamic loss scaling, and fp32 master weights.</summary>
public sealed class OptimScalingTests
{
    private static readonly OptimizerOptions PlainSgd = new() { Kind = OptimizerKind.Sgd, Momentum = 0, Clip = 0 };

    public static TheoryData<int> Sizes => [1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 1000];

    [Theory]
    [MemberData(nameof(Sizes))]
    public void ClippingReturnsTheNormBeforeAndAppliesTheClippedGradient(int n)
    {
        int seed = 100 + n;
        var g = OptimTestData.AsFloat(OptimTestData.Normal(new Random(seed), n));
        double norm = OptimTestData.Norm(g);
        foreach (int chunk in new[] { Optimizer.DefaultNormChunkElements, 8 })
        {
            foreach (double clip in new[] { 0.25 * norm, 4 * norm, 0 })
            {
                using var h = new OptimHarness([("p", [n])]);
                h.SetParams([new double[n]]);
                h.SetGrads([g]);
                using var optimizer = new Optimizer(h.Ops, h.Store, PlainSgd with { Clip = clip }, chunk);
                var outcome = optimizer.Step(1.0, 1);
                // A float32 sum of n squares: relative error ≤ n·2^-24 in the worst case, far less in practice; 1e-6 covers n ≤ 1000.
                Assert.True(Math.Abs(outcome.GradNorm - norm) <= 1e-6 * norm, $"seed {seed} n {n} chunk {chunk}: {outcome.GradNorm:R} vs {norm:R}");
                // PyTorch's factor min(1, clip/(norm + 1e-6)); 0 turns clipping off.
                double factor = clip > 0 ? Math.Min(1, clip / (norm + 1e-6)) : 1;
                var expected = g.Select(v => -v * factor).ToArray();
                // One float32 multiply and subtract from 0: 2 ULP of |g| (2.4e-7 relative).
                OptimTestData.AssertClose(expected, h.Param(0), 0, 2.4e-7, $"seed {seed} n {n} clip {clip} chunk {chunk}");
            }
        }
    }

    [Theory]
    [InlineData(double.PositiveInfinity)]
    [InlineData(double.NegativeInfinity)]
    [InlineData(double.NaN)]
    public void ANonFiniteGradientSkipsTheStepInFloat32(double bad)
    {
        foreach (int n in new[] { 1, 17, 65 })
        {
            using var h = new OptimHarness([("w", [n]), ("b", [3])]);
            var p = new[] { OptimTestData.Normal(new Random(n), n), [1.0, 2.0, 3.0] };
            h.SetParams(p);
            using var optimizer = new Optimizer(h.Ops, h.Store, new OptimizerOptions { Kind = OptimizerKind.AdamW }, normChunkElements: 8);
            var before = h.AllParams();
            var g = new double[n];
            g[n - 1] = bad;
            h.SetGrads([g, [0.5, 0.5, 0.5]]);
            var outcome = optimizer.Step(0.1, 1);
            Assert.True(outcome.Skipped, $"n {n} gradient {bad}");
            Assert.False(double.IsFinite(outcome.GradNorm));
            Assert.Equal(1.0, outcome.LossScale);
            Assert.Equal(before, h.AllParams());
            Assert.All(optimizer.StateTensors, s => Assert.All(h.Ops.ToDoubleArray(s.Tensor), v => Assert.Equal(0.0, v)));
        }
    }

    [Fact]
    public void DenormalGradientsAreAppliedNotSkipped()
    {
        // 1e-40 is a float32 denormal; its square underflows to 0, so the norm reads 0 and nothing is clipped.
        var g = Enumerable.Repeat((double)(float)1e-40, 9).ToArray();
        using var h = new OptimHarness([("p", [9])]);
        h.SetParams([new double[9]]);
        h.SetGrads([g]);
        using var optimizer = new Optimizer(h.Ops, h.Store, PlainSgd with { Clip = 1 });
        var outcome = optimizer.Step(1.0, 1);
        Assert.False(outcome.Skipped);
        Assert.True(outcome.GradNorm < 1e-30, $"norm {outcome.GradNorm}");
        Assert.Equal(g.Select(v => -v).ToArray(), h.Param(0));
    }

    [Fact]
    public void Fp16ScalingUnscalesSkipsAndHalvesOnOverflowAndGrowsAfterCleanSteps()
    {
        const double scale = 1024;
        var options = new OptimizerOptions
        {
            Kind = OptimizerKind.Sgd,
            Momentum = 0.5,
            Clip = 0,
            Precision = Precision.Fp16,
            InitialLossScale = scale,
            LossScaleGrowthInterval = 3,
        };
        using var h = new OptimHarness([("w", [4, 4])], DType.F16);
        // Multiples of 1/8 and of 1/64: exact in fp16 before and after scaling by 1024.
        var p0 = Enumerable.Range(0, 16).Select(i => (i - 8) / 8.0).ToArray();
        var g = Enumerable.Range(0, 16).Select(i => (i % 5 - 2) / 64.0).ToArray();
        h.SetParams([p0]);
        using var optimizer = new Optimizer(h.Ops, h.Store, options);
        Assert.Equal(scale, optimizer.LossScale);

        h.SetGrads([g.Select(v => v * scale).ToArray()]);
        var first = optimizer.Step(0.1, 1);
        Assert.False(first.Skipped);
        // The gradients and their sum of squares are exact in float32; only the square root rounds.
        Assert.Equal(OptimTestData.Norm(g), first.GradNorm, 1e-7);
        Assert.Equal(scale, first.LossScale);
        var master = optimizer.StateTensors.Single(s => s.Name == "w.master").Tensor;
        // Master = p − 0.1·g in float32: one rounding of O(1) values (6e-8).
        OptimTestData.AssertClose(p0.Zip(g, (p, d) => p - (0.1 * d)).ToArray(), h.Ops.ToDoubleArray(master), 1e-7, 0, "master after step 1");
        Assert.Equal(h.Ops.ToDoubleArray(master).Select(v => (double)HalfConvert.RoundToF16((float)v)), h.Param(0));

        var stateBefore = optimizer.StateTensors.Select(s => h.Ops.ToDoubleArray(s.Tensor)).ToArray();
        var paramsBefore = h.AllParams();
        // 100·1024 exceeds fp16's maximum (65504): the scaled gradient overflowed to Inf in the store.
        var overflow = (double[])g.Clone();
        overflow[5] = 100 * scale;
        h.SetGrads([overflow]);
        Assert.True(double.IsInfinity(h.Ops.ToDoubleArray(h.Store.Grads)[5]));
        var skipped = optimizer.Step(0.1, 2);
        Assert.True(skipped.Skipped);
        Assert.Equal(scale / 2, skipped.LossScale);
        Assert.Equal(scale / 2, optimizer.LossScale);
        Assert.Equal(0, optimizer.CleanSteps);
        Assert.Equal(paramsBefore, h.AllParams());
        Assert.Equal(stateBefore, optimizer.StateTensors.Select(s => h.Ops.ToDoubleArray(s.Tensor)).ToArray());

        var nan = (double[])g.Clone();
        nan[0] = double.NaN;
        h.SetGrads([nan]);
        Assert.True(optimizer.Step(0.1, 2).Skipped);
        Assert.Equal(scale / 4, optimizer.LossScale);

        for (int clean = 1; clean <= 3; clean++)
        {
            h.SetGrads([g.Select(v => v * optimizer.LossScale).ToArray()]);
            var outcome = optimizer.Step(0.1, 1 + clean);
            Assert.False(outcome.Skipped);
            // The same gradient whatever the scale: the unscaled norm does not change.
            Assert.Equal(first.GradNorm, outcome.GradNorm, 1e-7);
            Assert.Equal(clean < 3 ? scale / 4 : scale / 2, outcome.LossScale);
            Assert.Equal(clean < 3 ? clean : 0, optimizer.CleanSteps);
        }
    }

    [Fact]
    public void TheDefaultGrowthIntervalIs2000CleanSteps()
    {
        var options = new OptimizerOptions { Kind = OptimizerKind.Sgd, Precision = Precision.Fp16, InitialLossScale = 8 };
        Assert.Equal(2000, options.LossScaleGrowthInterval);
        using var h = new OptimHarness([("w", [1])], DType.F16);
        h.SetParams([[0.5]]);
        using var optimizer = new Optimizer(h.Ops, h.Store, options);
        optimizer.LoadScalarState(new Dictionary<string, double> { ["clean_steps"] = 1998 });
        h.SetGrads([[0.0]]);
        Assert.Equal(8, optimizer.Step(0.0, 1999).LossScale);
        Assert.Equal(16, optimizer.Step(0.0, 2000).LossScale);
        Assert.Equal(0, optimizer.CleanSteps);
    }

    [Fact]
    public void Bf16KeepsAScaleOfOneAndSkipsOnlyRealNonFiniteGradients()
    {
        var options = new OptimizerOptions { Kind = OptimizerKind.AdamW, Precision = Precision.Bf16, DynamicLossScaling = true };
        using var h = new OptimHarness([("w", [3, 3])], DType.BF16);
        h.SetParams([Enumerable.Range(0, 9).Select(i => i / 4.0).ToArray()]);
        using var optimizer = new Optimizer(h.Ops, h.Store, options);
        Assert.Equal(1.0, optimizer.LossScale);
        var before = h.AllParams();
        var g = new double[9];
        g[4] = double.PositiveInfinity;
        h.SetGrads([g]);
        var outcome = optimizer.Step(0.01, 1);
        Assert.True(outcome.Skipped);
        Assert.Equal(1.0, outcome.LossScale);
        Assert.Equal(before, h.AllParams());

        h.SetGrads([Enumerable.Repeat(0.25, 9).ToArray()]);
        outcome = optimizer.Step(0.01, 1);
        Assert.False(outcome.Skipped);
        Assert.Equal(0.75, outcome.GradNorm, 1e-12); // √(9 · 0.25²), exact in float32
        Assert.Equal(1.0, outcome.LossScale);
    }

    [Fact]
    public void Bf16MasterWeightsAccumulateUpdatesBelowBf16Resolution()
    {
        // bf16 spacing at 1.0 is 2^-7 ≈ 0.0078; each update is ~1e-4, under half a spacing, so a bf16-only update
        // would round back to 1.0 every step. The fp32 master accumulates them.
        using var h = new OptimHarness([("w", [2, 8])], DType.BF16);
        h.SetParams([Enumerable.Repeat(1.0, 16).ToArray()]);
        using var optimizer = new Optimizer(h.Ops, h.Store, PlainSgd with { Precision = Precision.Bf16 });
        double g = HalfConvert.Bf16ToFloat(HalfConvert.DoubleToBf16(1e-4));
        h.SetGrads([Enumerable.Repeat(g, 16).ToArray()]);
        for (int step = 1; step <= 100; step++)
        {
            Assert.False(optimizer.Step(1.0, step).Skipped);
        }
        var master = h.Ops.ToDoubleArray(optimizer.StateTensors.Single(s => s.Name == "w.master").Tensor);
        // 100 float32 subtractions near 1: ≤ 100 half-ULPs (100 × 6e-8).
        OptimTestData.AssertClose(Enumerable.Repeat(1 - (100 * g), 16).ToArray(), master, 6e-6, 0, "master after 100 steps");
        Assert.All(h.Param(0), v => Assert.True(v < 1.0, $"param {v} stayed at 1"));
        Assert.Equal(master.Select(v => (double)HalfConvert.RoundToBf16((float)v)), h.Param(0));
    }

    [Fact]
    public void SyncMasterFromParamsRefreshesTheMasterCopy()
    {
        using var h = new OptimHarness([("w", [5])], DType.BF16);
        h.SetParams([[1, 2, 3, 4, 5]]);
        using var optimizer = new Optimizer(h.Ops, h.Store, PlainSgd with { Precision = Precision.Bf16 });
        var master = optimizer.StateTensors.Single(s => s.Name == "w.master").Tensor;
        Assert.Equal([1.0, 2, 3, 4, 5], h.Ops.ToDoubleArray(master));
        h.SetParams([[-1, 0.5, 0.25, 8, 16]]);
        optimizer.SyncMasterFromParams();
        Assert.Equal([-1.0, 0.5, 0.25, 8, 16], h.Ops.ToDoubleArray(master));
    }
}
