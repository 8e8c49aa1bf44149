using Hal.Backends.Cpu;
using Hal.Conformance.Kernels;

namespace Hal.Conformance.Tests;

/// <summary>The catalogue's shape and the runner's judgement of planted faults (the whole catalogue on the CPU runs in <see cref="CpuKernelConformanceTests"/>).</summary>
public sealed class RunnerTests
{
    [Fact]
    public void CatalogueIdsAreUniqueAndEveryTierOneOpDTypeHasAQuickCase()
    {
        var cases = KernelCatalogue.All().ToList();
        var duplicates = cases.GroupBy(c => c.Id).Where(g => g.Count() > 1).Select(g => g.Key).ToList();
        Assert.True(duplicates.Count == 0, "duplicate ids: " + string.Join(", ", duplicates.Take(10)));
        var withQuick = cases.Where(c => c.Quick).Select(c => (c.Op, c.DType)).ToHashSet();
        var missing = cases.Select(c => (c.Op, c.DType)).Distinct().Where(p => !withQuick.Contains(p)).ToList();
        Assert.True(missing.Count == 0, "op × dtype without a quick case: " + string.Join(", ", missing.Take(20)));
        // The quick subset stays a small fraction of the catalogue (the --quick budget).
        double share = (double)cases.Count(c => c.Quick) / cases.Count;
        Assert.InRange(share, 0.02, 0.2);
        Assert.Contains(cases, c => c.IsErrorCase && c.Op == "memory.out_of_memory");
    }

    [Fact]
    public void PlantedCastTruncationIsCaughtInCastsOnly()
    {
        using var device = new CpuBackend().Open(0);
        var options = new KernelConformanceOptions
        {
            Filter = c => c.Op is "cast" or "binary.add" && c.Quick,
            KernelDecorator = k => new TruncatingCast(k),
        };
        var results = KernelConformance.Run(device, options);
        var failedOps = results.Where(r => r.IsUnexpectedFailure).Select(r => r.Case.Op).Distinct().ToList();
        Assert.Equal(["cast"], failedOps);
        Assert.Contains(results, r => r.IsUnexpectedFailure && r.Case.Id.StartsWith("cast/f32/to-bf16", StringComparison.Ordinal));
    }

    /// <summary>F32 → BF16 by dropping the low 16 bits (truncation) instead of rounding to nearest even.</summary>
    private sealed class TruncatingCast(IKernels inner) : DelegatingKernels(inner)
    {
        public override void Cast(Tensor src, Tensor dst)
        {
            if (src.DType != DType.F32 || dst.DType != DType.BF16)
            {
                base.Cast(src, dst);
                return;
            }
            var ops = new Ops(src.Device);
            float[] x = ops.ToFloatArray(src);
            double[] truncated = Array.ConvertAll(x, v => float.IsNaN(v) ? double.NaN : (double)BitConverter.Int32BitsToSingle(BitConverter.SingleToInt32Bits(v) & unchecked((int)0xFFFF0000)));
            ops.Upload(truncated, dst);
        }
    }

    [Fact]
    public void PlantedExpFaultIsCaughtWithItsWorstElement()
    {
        using var device = new CpuBackend().Open(0);
        var options = new KernelConformanceOptions
        {
            Filter = c => c.Op == "unary.exp" && c.DType == DType.F32 && !c.IsErrorCase,
            KernelDecorator = k => new OffByUlps(k),
        };
        var results = KernelConformance.Run(device, options);
        var failed = results.Where(r => r.Status == CaseStatus.Failed).ToList();
        Assert.NotEmpty(failed);
        Assert.All(failed, r => Assert.Contains("unary.exp", r.KernelsUsed));
        Assert.Contains("expected", failed[0].Message, StringComparison.Ordinal);
        Assert.Contains("seed", failed[0].Message, StringComparison.Ordinal);
    }

    /// <summary>exp scaled by (1 + 2⁻¹⁹): ≈ 16 ULP off in F32, beyond the table's 3.</summary>
    private sealed class OffByUlps(IKernels inner) : DelegatingKernels(inner)
    {
        public override void Unary(UnaryOp op, Tensor x, Tensor y)
        {
            base.Unary(op, x, y);
            if (op == UnaryOp.Exp && y.DType == DType.F32 && y.ElementCount > 0)
            {
                var ops = new Ops(y.Device);
                using var factor = ops.Full(new Shape(1), 1 + Math.ScaleB(1, -19), DType.F32);
                ops.Binary(BinaryOp.Mul, y, factor, y);
            }
        }
    }
}
