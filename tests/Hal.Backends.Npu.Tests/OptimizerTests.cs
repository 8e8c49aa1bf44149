namespace Hal.Backends.Npu.Tests;

/// <summary>The fused AdamW step on npu:0 against the CPU backend's, over several steps with a changing learning rate.</summary>
[Collection("npu")]
public sealed class OptimizerTests(NpuFixture f)
{
    private const ulong Seed = 89;

    [Theory]
    [InlineData(DType.F32, 33)]
    [InlineData(DType.BF16, 17)]
    public void AdamWMatchesCpuOverThreeSteps(DType dtype, int n)
    {
        var (pn, pc) = Kit.Both(f, Kit.Random(n, Seed), new Shape(n), dtype);
        var (mn, mc) = Kit.Both(f, new double[n], new Shape(n), DType.F32);
        var (vn, vc) = Kit.Both(f, new double[n], new Shape(n), DType.F32);
        int sessionsAfterFirstStep = 0;
        for (int step = 1; step <= 3; step++)
        {
            var (gn, gc) = Kit.Both(f, Kit.Random(n, Seed + (ulong)step), new Shape(n), dtype);
            var config = new AdamWConfig(LearningRate: 0.01 / step, WeightDecay: 0.1);
            f.NpuOps.AdamW(pn, gn, mn, vn, config, step);
            f.CpuOps.AdamW(pc, gc, mc, vc, config, step);
            gn.Dispose();
            gc.Dispose();
            if (step == 1)
            {
                sessionsAfterFirstStep = f.Npu.SessionCacheStats.Sessions;
            }
        }
        // A new learning rate each step reuses the session: the hyper-parameters are an input, not constants.
        Assert.Equal(sessionsAfterFirstStep, f.Npu.SessionCacheStats.Sessions);
        Assert.Equal(KernelPath.Fused, f.NpuOps.PathFor(FusedOp.AdamW, dtype));
        // Both update in F32 with the same formula; the states differ by F32 rounding order only. 16-bit params round
        // each step: two storage ulps after three steps.
        double tol = dtype == DType.F32 ? 1e-6 : 2 * dtype.Epsilon();
        Kit.Close(f.CpuOps.ToDoubleArray(pc), f.NpuOps.ToDoubleArray(pn), tol, tol, $"adamw param {dtype.Name()} seed={Seed}");
        Kit.Close(f.CpuOps.ToDoubleArray(mc), f.NpuOps.ToDoubleArray(mn), 1e-6, 1e-7, $"adamw m seed={Seed}");
        Kit.Close(f.CpuOps.ToDoubleArray(vc), f.NpuOps.ToDoubleArray(vn), 1e-6, 1e-7, $"adamw v seed={Seed}");
        foreach (var t in new[] { pn, pc, mn, mc, vn, vc })
        {
            t.Dispose();
        }
    }
}
