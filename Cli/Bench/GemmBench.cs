using System.Diagnostics;
using Hal.Numerics;

namespace Hal.Cli.Bench;

/// <summary>
/// One row of <c>hal bench gemm</c>; JSON field names are a contract: backend, m, n, k, dtype, gflops, peakGflops,
/// ratioToPeak, plus peakVectorBits (the FMA width the peak was measured with).
/// </summary>
internal sealed record GemmBenchResult(string Backend, int M, int N, int K, string DType, double Gflops, double PeakGflops, double RatioToPeak, int PeakVectorBits);

/// <summary>Measures GEMM throughput on a device against this machine's FMA peak measured in the same run.</summary>
internal static class GemmBench
{
    private const double WarmUpSeconds = 1.0;
    private const double SecondsPerSize = 1.5;
    private const int MinRuns = 3;
    private const int MaxRuns = 200;
    private const ulong Seed = 2024;

    /// <summary>Runs square GEMMs of each size (median of repeated runs after a warm-up) and reports GFLOP/s and the ratio to the measured peak.</summary>
    public static IReadOnlyList<GemmBenchResult> Run(IDevice device, IReadOnlyList<int> sizes, DType dtype, TextWriter progress)
    {
        ArgumentNullException.ThrowIfNull(device);
        ArgumentNullException.ThrowIfNull(sizes);
        ArgumentNullException.ThrowIfNull(progress);
        var ops = new Ops(device);

        progress.WriteLine($"gemm: measuring the fp32 FMA peak ({FmaPeakProbe.WidestVectorBits}-bit FMAs) on all processor threads...");
        var fp32Peak = FmaPeakProbe.Measure();
        // F64 FMAs carry half the lanes of F32 ones; 16-bit dtypes compute in F32.
        double peak = dtype == DType.F64 ? fp32Peak.Gflops / 2 : fp32Peak.Gflops;
        progress.WriteLine($"gemm: peak {peak:F1} GFLOP/s ({dtype.Name()}, {fp32Peak.VectorBits}-bit FMA, {Environment.ProcessorCount} threads)");

        var results = new List<GemmBenchResult>();
        bool warmedUp = false;
        foreach (int size in sizes)
        {
            using var a = Upload(ops, size, dtype, offset: 0);
            using var b = Upload(ops, size, dtype, offset: (ulong)size * (ulong)size);
            using var c = ops.Empty(new Shape(size, size), dtype);
            if (!warmedUp)
            {
                // Tiered JIT: vectorised code reaches full speed only after about a second of running.
                progress.WriteLine($"gemm: warming up for {WarmUpSeconds:F1} s...");
                WarmUp(ops, a, b, c);
                warmedUp = true;
            }
            double first = Time(ops, a, b, c);
            int runs = Math.Clamp((int)Math.Ceiling(SecondsPerSize / Math.Max(first, 1e-9)), MinRuns, MaxRuns);
            var seconds = new double[runs];
            for (int r = 0; r < runs; r++)
            {
                seconds[r] = Time(ops, a, b, c);
            }
            Array.Sort(seconds);
            double median = runs % 2 == 1 ? seconds[runs / 2] : (seconds[(runs / 2) - 1] + seconds[runs / 2]) / 2;
            double gflops = 2.0 * size * size * size / median / 1e9;
            double ratio = peak > 0 ? gflops / peak : 0;
            progress.WriteLine($"gemm: {size}³ {dtype.Name()}: {gflops:F1} GFLOP/s, {ratio:P0} of the {fp32Peak.VectorBits}-bit peak (median of {runs} runs, {median * 1e3:F2} ms)");
            results.Add(new GemmBenchResult(device.Id.Backend, size, size, size, dtype.Name(), gflops, peak, ratio, fp32Peak.VectorBits));
        }
        return results;
    }

    /// <summary>A size × size tensor of Philox uniform values in [-1, 1), generated on the host.</summary>
    private static Tensor Upload(Ops ops, int size, DType dtype, ulong offset)
    {
        var values = new float[size * size];
        Philox.FillUniform(values, Seed, offset, -1f, 1f);
        return ops.FromArray(values, new Shape(size, size), dtype);
    }

    private static void WarmUp(Ops ops, Tensor a, Tensor b, Tensor c)
    {
        var clock = Stopwatch.StartNew();
        do
        {
            ops.Gemm(a, b, c);
        }
        while (clock.Elapsed.TotalSeconds < WarmUpSeconds);
    }

    private static double Time(Ops ops, Tensor a, Tensor b, Tensor c)
    {
        long start = Stopwatch.GetTimestamp();
        ops.Gemm(a, b, c);
        ops.Device.Synchronize();
        return Stopwatch.GetElapsedTime(start).TotalSeconds;
    }
}
