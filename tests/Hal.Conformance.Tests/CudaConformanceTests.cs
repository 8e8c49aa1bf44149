using Hal.Backends.Cuda;

namespace Hal.Conformance.Tests;

/// <summary>
/// The CUDA backend (cuda:0) against the whole catalogue. Where no CUDA driver or GPU is present every op's test is
/// reported skipped with the probe's reason ("no CUDA driver …"), and the skips are counted in the test summary.
/// The same kernels run on ILGPU's CPU emulator in tests/Hal.Backends.Cuda.Tests on every run.
/// </summary>
public sealed class CudaKernelConformanceTests : KernelConformanceTests
{
    /// <inheritdoc />
    protected override IBackend CreateBackend() => new CudaBackend();
}
