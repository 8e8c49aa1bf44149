using Hal.Backends.Cuda;
using Hal.Conformance.Kernels;

namespace Hal.Conformance.Tests;

/// <summary>
/// A fact that runs only where the cuda backend is available; elsewhere it is reported as skipped with the probe's
/// reason ("no CUDA driver …"), so the test summary counts it instead of passing it silently.
/// </summary>
public sealed class CudaFactAttribute : FactAttribute
{
    public CudaFactAttribute()
    {
        var probe = new CudaBackend().Probe();
        if (!probe.Available)
        {
            Skip = $"skipped: {probe.Reason}";
        }
    }
}

/// <summary>The kernel catalogue on the real CUDA backend (device 0).</summary>
public sealed class CudaConformanceTests
{
    [CudaFact]
    public void CudaPassesTheQuickCatalogue()
    {
        using var device = new CudaBackend().Open(0);
        var results = KernelConformance.Run(device, new KernelConformanceOptions { Quick = true });
        var failed = results.Where(r => r.IsUnexpectedFailure).Select(r => $"{r.Case.Id}: {r.Message}").ToList();
        Assert.True(failed.Count == 0, $"{failed.Count} of {results.Count} cases failed:\n" + string.Join("\n", failed.Take(40)));
    }
}
