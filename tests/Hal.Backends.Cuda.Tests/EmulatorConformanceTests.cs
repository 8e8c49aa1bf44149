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

    /// <summary>The whole catalogue on the emulator: minutes, so run by hand with HAL_CUDA_EMULATOR_FULL=1 (reported skipped otherwise).</summary>
    [FullCatalogueFact]
    public void FullCataloguePasses()
    {
        var results = KernelConformance.Run(fx.Device);
        var failed = results.Where(r => r.IsUnexpectedFailure).Select(r => $"{r.Case.Id}: {r.Message}").ToList();
        Assert.True(failed.Count == 0, $"{failed.Count} of {results.Count} cases failed:\n" + string.Join("\n", failed.Take(40)));
    }

    /// <summary>Runs only when HAL_CUDA_EMULATOR_FULL=1; otherwise skipped with that reason (counted in the summary).</summary>
    private sealed class FullCatalogueFactAttribute : FactAttribute
    {
        public FullCatalogueFactAttribute()
        {
            if (Environment.GetEnvironmentVariable("HAL_CUDA_EMULATOR_FULL") != "1")
            {
                Skip = "the whole catalogue on ILGPU's CPU emulator takes minutes; set HAL_CUDA_EMULATOR_FULL=1 to run it";
            }
        }
    }
}
