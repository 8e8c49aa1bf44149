using Hal.Conformance.Kernels;

namespace Hal.Backends.Cuda.Tests;

/// <summary>
/// The whole conformance catalogue on the emulator: the same oracle and tolerances every backend answers to,
/// applied to the ILGPU kernels that run on GPUs (the real cuda fixture is skipped here for want of a driver).
/// </summary>
[Collection(EmulatorCollection.Name)]
public sealed class EmulatorConformanceTests(EmulatorFixture fx)
{
    /// <summary>The whole catalogue (about 12 900 cases, two minutes on the emulator here).</summary>
    [Fact]
    public void WholeCataloguePasses()
    {
        var results = KernelConformance.Run(fx.Device);
        var failed = results.Where(r => r.IsUnexpectedFailure).Select(r => $"{r.Case.Id}: {r.Message}").ToList();
        Assert.True(failed.Count == 0, $"{failed.Count} of {results.Count} cases failed:\n" + string.Join("\n", failed.Take(40)));
        Assert.True(results.Count(r => r.Status == CaseStatus.Passed) > 10000, $"only {results.Count} cases ran");
    }
}
