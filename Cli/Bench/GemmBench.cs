using System.Diagnostics;
using System.Runtime.Intrinsics.X86;
using Hal.Numerics;

namespace Hal.Cli.Bench;

/// <summary>
/// One row of <c>hal bench gemm</c>; JSON field names are a contract: backend, m, n, k, dtype, gflops, peakGflops,
/// ratioToPeak, plus peakVectorBits (the FMA width the peak was measured with), the peer's figures (peer,
/// peerGflops, ratioToPeer; null without a peer) and, for backends that compile kernels into cached sessions (npu),
/// the cache's figures after the size (kernelSessions, kernelCacheHitRate, kernelCompileMs; null elsewhere).
/// </summary>
internal sealed record GemmBenchResult(
    string Backend, int M, int N, int K, string DType, double Gflops, double PeakGflops, double RatioToPeak, int PeakVectorBits,
    string? Peer, double? PeerGflops, double? RatioToPeer,
    int? KernelSessions = null, double? KernelCacheHitRate = null, double? KernelCompileMs = null);

/// <summary>Measures GEMM throughput on a device against this machine's FMA peak measured in the same run.</summary>
internal static class GemmBench
{
    private const double WarmUpSeconds = 1.0;
    private const double SecondsPerSize = 1.5;
    private const int MinRuns = 3;
    private const int MaxRuns = 200;
    private const ulong Seed = 2024;

    /// <summary>With a peer, each size alternates this many blocks of device runs and peer runs.</summary>
    private const int PeerBlocks = 4;

    /// <summary>OpenBLAS core names whose SGEMM kernels use AVX-512.</summary>
    private static readonly string[] Avx512Cores = ["SkylakeX", "Cooperlake", "SapphireRapids"];

    /// <summary>
    /// Runs square GEMMs of each size (median of repeated runs after a warm-up) and reports GFLOP/s and the ratio to
    /// the measured peak; with a <paramref name="peer"/> that supports the dtype, the peer runs the same GEMMs on the
    /// same host values, its runs interleaved with the device's so that both see the same machine load.
    /// </summary>
    public static IReadOnlyList<GemmBenchResult> Run(IDevice device, IReadOnlyList<int> sizes, DType dtype, TextWriter progress, GemmPeer? peer = null)
    {
        ArgumentNullException.ThrowIfNull(device);
        ArgumentNullException.ThrowIfNull(sizes);
        ArgumentNullException.ThrowIfNull(progress);
        var ops = new Ops(device);

        progress.WriteLine($"gemm: measuring the fp32 FMA peak ({FmaPeakProbe.WidestVectorBits}-bit FMAs) on all processor threads...");
        var peakBefore = FmaPeakProbe.Measure();
        progress.WriteLine($"gemm: FMA peak before the GEMMs {peakBefore.Gflops:F1} GFLOP/s (fp32, {peakBefore.VectorBits}-bit FMA, {Environment.ProcessorCount} threads)");

        // OpenBLAS is an SGEMM: other dtypes have no peer there.
        if (peer is not null && !peer.Supports(dtype))
        {
            progress.WriteLine($"gemm: the peer {peer.Name} has no {dtype.Name()} GEMM; no peer figures");
            peer = null;
        }
        if (peer is not null)
        {
            progress.WriteLine($"gemm: {peer.Description}");
            if (peer is OpenBlasGemmPeer { Library: var blas } && Avx512F.IsSupported && !Avx512Cores.Any(core => blas.CoreName.Contains(core, StringComparison.OrdinalIgnoreCase)))
            {
                // Older OpenBLAS builds do not recognise newer AVX-512 processors and fall back to SSE-era kernels.
                progress.WriteLine($"gemm: OpenBLAS core {blas.CoreName} does not use AVX-512 here; start with OPENBLAS_CORETYPE=Cooperlake (read when the library loads) for its AVX-512 kernels");
            }
        }

        var results = new List<GemmBenchResult>();
        bool warmedUp = false;
        foreach (int size in sizes)
        {
            float[] hostA = HostValues(size, offset: 0);
            float[] hostB = HostValues(size, offset: (ulong)size * (ulong)size);
            using var a = ops.FromArray(hostA, new Shape(size, size), dtype);
            using var b = ops.FromArray(hostB, new Shape(size, size), dtype);
            using var c = ops.Empty(new Shape(size, size), dtype);
            Func<double> timeDevice = () => Time(ops, a, b, c);
            using var peerTimer = peer?.Prepare(hostA, hostB, size, dtype);
            Func<double>? timePeer = peerTimer is null ? null : peerTimer.Time;
            if (!warmedUp)
            {
                // Tiered JIT: vectorised code reaches full speed only after about a second of running; the peer's
                // first calls start its thread pool.
                progress.WriteLine($"gemm: warming up for {WarmUpSeconds:F1} s{(peer is null ? "" : " (and the peer as long)")}...");
                WarmUp(timeDevice);
                if (timePeer is not null)
                {
                    WarmUp(timePeer);
                }
                warmedUp = true;
            }
            double first = timeDevice() + (timePeer?.Invoke() ?? 0);
            int runs = Math.Clamp((int)Math.Ceiling(SecondsPerSize * (timePeer is null ? 1 : 2) / Math.Max(first, 1e-9)), MinRuns, MaxRuns);
            double[] seconds;
            double[] peerSeconds = [];
            if (timePeer is null)
            {
                seconds = Repeat(timeDevice, runs);
            }
            else
            {
                // Blocks of runs taken in turn, so that a burst of load from elsewhere on the machine hits both
                // alike. Not single runs in turn: OpenBLAS's threads keep spinning for a while after each call (and
                // the .NET pool's briefly), which would take processor time from the other; the first call of each
                // block, which pays for that hand-over, is not timed.
                int perBlock = Math.Max(2, (runs + PeerBlocks - 1) / PeerBlocks);
                var deviceRuns = new List<double>();
                var peerRuns = new List<double>();
                for (int block = 0; block < PeerBlocks; block++)
                {
                    timeDevice();
                    deviceRuns.AddRange(Repeat(timeDevice, perBlock));
                    timePeer();
                    peerRuns.AddRange(Repeat(timePeer, perBlock));
                }
                seconds = [.. deviceRuns];
                peerSeconds = [.. peerRuns];
                runs = seconds.Length;
            }
            double median = Median(seconds);
            double gflops = 2.0 * size * size * size / median / 1e9;
            string line = $"gemm: {size}³ {dtype.Name()}: {gflops:F1} GFLOP/s (median of {runs} runs, {median * 1e3:F2} ms)";
            double? peerGflops = null;
            double? ratioToPeer = null;
            if (timePeer is not null)
            {
                double peerMedian = Median(peerSeconds);
                peerGflops = 2.0 * size * size * size / peerMedian / 1e9;
                ratioToPeer = gflops / peerGflops.Value;
                line += $"; {peer!.Name} {peerGflops.Value:F1} GFLOP/s ({peerMedian * 1e3:F2} ms), ratio to it {ratioToPeer.Value:F2}";
            }
            progress.WriteLine(line);
            var result = new GemmBenchResult(
                device.Id.Backend, size, size, size, dtype.Name(), gflops, 0, 0, peakBefore.VectorBits,
                timePeer is null ? null : peer!.Name, peerGflops, ratioToPeer);
            if (device is Backends.Npu.NpuDevice npu)
            {
                // Session creation is paid once per kernel graph; every later GEMM of any size hits the cache.
                var cache = npu.SessionCacheStats;
                progress.WriteLine($"gemm: {npu.Id} ({npu.Provider}) session cache: {cache.Sessions} session(s), {cache.CreationSeconds * 1e3:F1} ms spent creating them, hit rate {cache.HitRate:P1} ({cache.Hits} hits, {cache.Misses} misses)");
                result = result with { KernelSessions = cache.Sessions, KernelCacheHitRate = cache.HitRate, KernelCompileMs = cache.CreationSeconds * 1e3 };
            }
            results.Add(result);
        }

        // The peak is the best the machine showed: a probe is short, so a moment of load elsewhere can pull one
        // sample down (which would inflate every ratio); measuring again after the GEMMs and keeping the larger
        // bounds that.
        var peakAfter = FmaPeakProbe.Measure();
        var fp32Peak = peakAfter.Gflops > peakBefore.Gflops ? peakAfter : peakBefore;
        // F64 FMAs carry half the lanes of F32 ones; 16-bit dtypes compute in F32.
        double peak = dtype == DType.F64 ? fp32Peak.Gflops / 2 : fp32Peak.Gflops;
        progress.WriteLine($"gemm: FMA peak after the GEMMs {peakAfter.Gflops:F1} GFLOP/s; using {peak:F1} GFLOP/s ({dtype.Name()}, {fp32Peak.VectorBits}-bit FMA)");
        for (int i = 0; i < results.Count; i++)
        {
            var r = results[i];
            results[i] = r with { PeakGflops = peak, RatioToPeak = peak > 0 ? r.Gflops / peak : 0 };
            progress.WriteLine($"gemm: {r.M}³ {r.DType}: {r.Gflops:F1} GFLOP/s = {results[i].RatioToPeak:P0} of the {fp32Peak.VectorBits}-bit peak");
        }
        return results;
    }

    /// <summary>size × size Philox uniform values in [-1, 1), the same for the device and the peer.</summary>
    private static float[] HostValues(int size, ulong offset)
    {
        var values = new float[size * size];
        Philox.FillUniform(values, Seed, offset, -1f, 1f);
        return values;
    }

    private static double[] Repeat(Func<double> time, int runs)
    {
        var seconds = new double[runs];
        for (int r = 0; r < runs; r++)
        {
            seconds[r] = time();
        }
        return seconds;
    }

    private static double Median(double[] seconds)
    {
        var sorted = (double[])seconds.Clone();
        Array.Sort(sorted);
        int n = sorted.Length;
        return n % 2 == 1 ? sorted[n / 2] : (sorted[(n / 2) - 1] + sorted[n / 2]) / 2;
    }

    private static void WarmUp(Func<double> time)
    {
        var clock = Stopwatch.StartNew();
        do
        {
            time();
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
