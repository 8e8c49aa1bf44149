using Hal.Backends.Cpu;
using Hal.Conformance.Kernels;

namespace Hal.Conformance.Tests;

/// <summary>The runner's judgement: value cases, error cases, unsupported dtypes and expectations.</summary>
public sealed class RunnerTests
{
    [Fact]
    public void CpuPassesTheCatalogue()
    {
        using var device = new CpuBackend().Open(0);
        var results = KernelConformance.Run(device);
        var failed = results.Where(r => r.IsUnexpectedFailure).Select(r => r.Message).ToList();
        Assert.True(failed.Count == 0, string.Join("\n", failed.Take(20)));
        Assert.Contains(results, r => r.Status == CaseStatus.Passed && r.Case.IsErrorCase);
        Assert.Contains(results, r => r.Status == CaseStatus.Passed && !r.Case.IsErrorCase && r.Verdicts.Count > 0);
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
