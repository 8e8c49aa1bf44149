namespace Hal.Conformance.Kernels;

/// <summary>
/// Every kernel case, in report order: tier 1 (<see cref="Catalogue.Tier1Cases"/>), GEMM and tier 2 forward and
/// backward on both paths (<see cref="Catalogue.Tier2Cases"/>), RNG and memory semantics
/// (<see cref="Catalogue.DeviceCases"/>). Case ids are unique and stable; the catalogue is the same for every backend.
/// </summary>
public static class KernelCatalogue
{
    /// <summary>All cases (lazily built, the same sequence on each call).</summary>
    public static IEnumerable<KernelCase> All() =>
        Catalogue.Tier1Cases.All()
            .Concat(Catalogue.Tier2Cases.All())
            .Concat(Catalogue.DeviceCases.All());
}
