namespace Hal.Conformance.Kernels.Catalogue;

/// <summary>GEMM and the tier-2 kernels, forward and backward, each on the fused and the composite path.</summary>
public static partial class Tier2Cases
{
    /// <summary>All GEMM and tier-2 cases.</summary>
    public static IEnumerable<KernelCase> All() => [];
}
