using Hal.Backends.Cpu;
using Hal.Conformance.Kernels;

namespace Hal.Conformance.Tests;

/// <summary>The runner's judgement of a planted fault (the whole catalogue on the CPU runs in <see cref="CpuKernelConformanceTests"/>).</summary>
public sealed class RunnerTests
{
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
