using Hal.Backends.OpenCL;

namespace Hal.Conformance.Tests;

/// <summary>The OpenCL backend (opencl:0; PoCL on the project's machines, which the bootstrap installs) against the whole catalogue.</summary>
public sealed class OpenClKernelConformanceTests : KernelConformanceTests
{
    /// <inheritdoc />
    protected override IBackend CreateBackend() => new OpenClBackend();
}
