namespace Hal.Cli.Bench;

/// <summary>One row of <c>hal bench gemm</c>; JSON field names are a contract: backend, m, n, k, dtype, gflops, peakGflops, ratioToPeak.</summary>
internal sealed record GemmBenchResult(string Backend, int M, int N, int K, string DType, double Gflops, double PeakGflops, double RatioToPeak);

/// <summary>Measures GEMM throughput on a device against this machine's FMA peak measured in the same run.</summary>
internal static class GemmBench
{
    /// <summary>Runs square GEMMs of each size (median of repeated runs after a warm-up) and reports GFLOP/s and the ratio to the measured peak.</summary>
    public static IReadOnlyList<GemmBenchResult> Run(IDevice device, IReadOnlyList<int> sizes, DType dtype, TextWriter progress) =>
        throw new NotImplementedException();
}
