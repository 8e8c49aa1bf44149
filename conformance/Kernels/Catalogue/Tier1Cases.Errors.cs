namespace Hal.Conformance.Kernels.Catalogue;

public static partial class Tier1Cases
{
    private static IEnumerable<KernelCase> Errors() => [];
}
