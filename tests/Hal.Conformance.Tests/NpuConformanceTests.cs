using Hal.Backends.Npu;
using Hal.Conformance.Kernels;

namespace Hal.Conformance.Tests;

/// <summary>The npu backend (ONNX Runtime, CPU provider, which the package always ships) against the kernel catalogue.</summary>
public sealed class NpuConformanceTests
{
    [Fact]
    public void NpuPassesTheCatalogue()
    {
        using var device = new NpuBackend().Open(0);
        var results = KernelConformance.Run(device);
        var failed = results.Where(r => r.IsUnexpectedFailure).Select(r => r.Message).ToList();
        Assert.True(failed.Count == 0, $"{failed.Count} unexpected failures:\n" + string.Join("\n", failed.Take(400)));
        Assert.Contains(results, r => r.Status == CaseStatus.Passed && r.Case.IsErrorCase);
        Assert.Contains(results, r => r.Status == CaseStatus.Passed && !r.Case.IsErrorCase && r.Verdicts.Count > 0);
    }
}
