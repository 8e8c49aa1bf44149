using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Hal.Cli.Bench;

/// <summary>
/// Measures this machine's fp32 fused-multiply-add peak: every processor thread runs independent chains of
/// 256-bit FMAs at once, and the best of a few timed repetitions is the peak in GFLOP/s (2 flops × 8 lanes per FMA).
/// </summary>
internal static class FmaPeakProbe
{
    // Twelve independent accumulator chains per thread: more than FMA latency (4–5 cycles) × FMA ports (2),
    // so each chain's dependency never stalls the units.
    private const int Chains = 12;
    private const int FlopsPerFma = 2 * 8;
    private const int InnerIterations = 1 << 12;

    /// <summary>fp32 FMA peak in GFLOP/s of all processor threads together; 0 when the CPU lacks AVX2 FMA.</summary>
    /// <param name="seconds">Wall time of each timed repetition (after an untimed warm-up of the same length).</param>
    /// <param name="repetitions">Timed repetitions; the best one is reported.</param>
    public static double MeasureGflops(double seconds = 0.12, int repetitions = 3)
    {
        if (!Fma.IsSupported)
        {
            return 0;
        }
        int threads = Environment.ProcessorCount;
        RunAll(threads, seconds);
        double best = 0;
        for (int r = 0; r < repetitions; r++)
        {
            best = Math.Max(best, RunAll(threads, seconds));
        }
        return best;
    }

    /// <summary>Starts <paramref name="threads"/> FMA loops together and returns their combined GFLOP/s.</summary>
    private static double RunAll(int threads, double seconds)
    {
        var start = new Barrier(threads + 1);
        var flops = new double[threads];
        var workers = new Thread[threads];
        long deadline = 0;
        for (int t = 0; t < threads; t++)
        {
            int index = t;
            workers[t] = new Thread(() =>
            {
                start.SignalAndWait();
                long rounds = 0;
                float sink = 0;
                while (Stopwatch.GetTimestamp() < Volatile.Read(ref deadline))
                {
                    sink += FmaChains(InnerIterations);
                    rounds++;
                }
                flops[index] = (double)rounds * InnerIterations * Chains * FlopsPerFma;
                GC.KeepAlive(sink);
            })
            { IsBackground = true };
            workers[t].Start();
        }
        var clock = Stopwatch.StartNew();
        Volatile.Write(ref deadline, Stopwatch.GetTimestamp() + (long)(seconds * Stopwatch.Frequency));
        start.SignalAndWait();
        foreach (var w in workers)
        {
            w.Join();
        }
        double elapsed = clock.Elapsed.TotalSeconds;
        return flops.Sum() / elapsed / 1e9;
    }

    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static float FmaChains(int iterations)
    {
        // x·m + d with m slightly below 1 keeps every chain finite however long it runs.
        var m = Vector256.Create(0.999999f);
        var d = Vector256.Create(1e-6f);
        Vector256<float> a0 = Vector256.Create(1f), a1 = Vector256.Create(2f), a2 = Vector256.Create(3f), a3 = Vector256.Create(4f);
        Vector256<float> a4 = Vector256.Create(5f), a5 = Vector256.Create(6f), a6 = Vector256.Create(7f), a7 = Vector256.Create(8f);
        Vector256<float> a8 = Vector256.Create(9f), a9 = Vector256.Create(10f), a10 = Vector256.Create(11f), a11 = Vector256.Create(12f);
        for (int i = 0; i < iterations; i++)
        {
            a0 = Fma.MultiplyAdd(a0, m, d);
            a1 = Fma.MultiplyAdd(a1, m, d);
            a2 = Fma.MultiplyAdd(a2, m, d);
            a3 = Fma.MultiplyAdd(a3, m, d);
            a4 = Fma.MultiplyAdd(a4, m, d);
            a5 = Fma.MultiplyAdd(a5, m, d);
            a6 = Fma.MultiplyAdd(a6, m, d);
            a7 = Fma.MultiplyAdd(a7, m, d);
            a8 = Fma.MultiplyAdd(a8, m, d);
            a9 = Fma.MultiplyAdd(a9, m, d);
            a10 = Fma.MultiplyAdd(a10, m, d);
            a11 = Fma.MultiplyAdd(a11, m, d);
        }
        var sum = ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7)) + ((a8 + a9) + (a10 + a11));
        return Vector256.Sum(sum);
    }
}
