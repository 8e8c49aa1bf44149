namespace Hal.Conformance.Kernels.Catalogue;

/// <summary>RNG streams and memory semantics.</summary>
public static partial class DeviceCases
{
    /// <summary>All RNG and memory cases.</summary>
    public static IEnumerable<KernelCase> All() => [];
}
