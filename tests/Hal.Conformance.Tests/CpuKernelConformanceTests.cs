using Hal.Backends.Cpu;

namespace Hal.Conformance.Tests;

/// <summary>The CPU backend against the whole catalogue.</summary>
public sealed class CpuKernelConformanceTests : KernelConformanceTests
{
    /// <inheritdoc />
    protected override IBackend CreateBackend() => new CpuBackend();
}
