using Hal.Backends.OpenCL;
using Hal.Conformance.Kernels;

namespace Hal.Conformance.Tests;

/// <summary>
/// The kernel conformance catalogue (quick cases) on opencl:0. Skipped, with the probe's reason, only where no
/// OpenCL device exists; the bootstrap installs PoCL, so it runs on the project's machines and in CI.
/// </summary>
public class OpenClKernelConformanceTests
{
    [OpenClConformanceFact]
    public void QuickCatalogueHasNoUnexpectedFailure()
    {
        using var device = new OpenClBackend().Open(0);
        var results = KernelConformance.Run(device, new KernelConformanceOptions { Quick = true });
        var failures = results.Where(r => r.IsUnexpectedFailure).Select(r => r.Message).ToList();
        Assert.True(results.Count > 0, "the catalogue ran no case");
        Assert.True(failures.Count == 0, $"{failures.Count} of {results.Count} cases failed on opencl:0:\n" + string.Join("\n", failures.Take(40)));
    }
}

/// <summary>A fact skipped, with the probe's reason, where the OpenCL probe finds no device.</summary>
public sealed class OpenClConformanceFactAttribute : FactAttribute
{
    private static readonly Lazy<BackendProbe> Probe = new(() => new OpenClBackend().Probe());

    public OpenClConformanceFactAttribute()
    {
        if (!Probe.Value.Available)
        {
            Skip = "no OpenCL device: " + Probe.Value.Reason;
        }
    }
}
