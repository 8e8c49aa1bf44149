using Hal.Conformance.Kernels;

namespace Hal.Backends.Cuda.Tests;

/// <summary>
/// The conformance catalogue's quick cases on the emulator: the same oracle and tolerances every backend answers to,
/// applied to the ILGPU kernels that run on GPUs (the real cuda fixture is skipped here for want of a driver).
/// </summary>
[Collection(EmulatorCollection.Name)]
public sealed class EmulatorConformanceTests(EmulatorFixture fx)
{
    [Fact]
    public void QuickCataloguePasses()
    {
        var results = KernelConformance.Run(fx.Device, new KernelConformanceOptions { Quick = true });
        var failed = results.Where(r => r.IsUnexpectedFailure).Select(r => $"{r.Case.Id}: {r.Message}").ToList();
        Assert.True(failed.Count == 0, $"{failed.Count} of {results.Count} cases failed:\n" + string.Join("\n", failed.Take(40)));
        Assert.True(results.Count > 50, $"only {results.Count} quick cases ran");
    }
}
