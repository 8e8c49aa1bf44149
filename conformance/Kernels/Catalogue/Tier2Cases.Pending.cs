namespace Hal.Conformance.Kernels.Catalogue;

public static partial class Tier2Cases
{
    private static IEnumerable<KernelCase> CrossEntropyCases() => [];
    private static IEnumerable<KernelCase> AttentionCases() => [];
    private static IEnumerable<KernelCase> EmbeddingCases() => [];
    private static IEnumerable<KernelCase> RotaryCases() => [];
    private static IEnumerable<KernelCase> ActivationCases() => [];
    private static IEnumerable<KernelCase> OptimizerCases() => [];
    private static IEnumerable<KernelCase> QuantCases() => [];
    private static IEnumerable<KernelCase> Errors() => [];
}
