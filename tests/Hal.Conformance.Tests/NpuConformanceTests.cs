using Hal.Backends.Npu;

namespace Hal.Conformance.Tests;

/// <summary>The npu backend (ONNX Runtime's CPU provider, which the package always ships) against the whole catalogue.</summary>
public sealed class NpuKernelConformanceTests : KernelConformanceTests
{
    /// <inheritdoc />
    protected override IBackend CreateBackend() => new NpuBackend();
}
