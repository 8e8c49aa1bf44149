using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Hal.Cli.Bench;

/// <summary>A measured fp32 FMA peak and the vector width it was measured with.</summary>
/// <param name="Gflops">fp32 GFLOP/s of all processor threads together.</param>
/// <param name="VectorBits">Width of the FMAs the probe ran: 512, 256, or the portable width when there is no FMA.</param>
internal readonly record struct FmaPeak(double Gflops, int VectorBits);

/// <summary>
/// Measures this machine's fp32 fused-multiply-add peak with the widest FMA the processor has (512-bit with
/// AVX-512F, else 256-bit with FMA3, else the portable multiply-then-add on <see cref="Vector256{T}"/>): every
/// processor thread runs independent FMA chains at once, and the best of a few timed repetitions is the peak.
/// </summary>
internal static class FmaPeakProbe
{
    // Sixteen independent accumulator chains per thread: twice FMA latency (4 cycles) × FMA ports (2), so a chain's
    // dependency never stalls the units at either width, and still well within the 16 (AVX2) / 32 (AVX-512)
    // vector registers with the two constants.
    private const int Chains = 16;
    private const int InnerIterations = 1 << 12;

    /// <summary>The widest FMA this processor runs, in bits.</summary>
    public static int WidestVectorBits => Avx512F.IsSupported ? 512 : 256;

    /// <summary>fp32 FMA peak of all processor threads together, measured at <paramref name="vectorBits"/> (default: the widest).</summary>
    /// <param name="vectorBits">512 or 256; 512 falls back to 256 when the processor lacks AVX-512F.</param>
    /// <param name="seconds">Wall time of each timed repetition (after an untimed warm-up of the same length).</param>
    /// <param name="repetitions">Timed repetitions; the best one is reported.</param>
    /// <param name="threads">Threads that run at once; null means one per processor.</param>
    public static FmaPeak Measure(int? vectorBits = null, double seconds = 0.12, int repetitions = 3, int? threads = null)
    {
        int bits = Math.Min(vectorBits ?? WidestVectorBits, WidestVectorBits);
        int workers = threads ?? Environment.ProcessorCount;
        Func<int, float> chains = bits == 512 ? FmaChains512 : FmaChains256;
        int flopsPerFma = 2 * (bits / 32);
        RunAll(workers, seconds, chains, flopsPerFma);
        double best = 0;
        for (int r = 0; r < repetitions; r++)
        {
            best = Math.Max(best, RunAll(workers, seconds, chains, flopsPerFma));
        }
        return new FmaPeak(best, bits);
    }

    /// <summary>Starts <paramref name="threads"/> FMA loops together and returns their combined GFLOP/s.</summary>
    private static double RunAll(int threads, double seconds, Func<int, float> chains, int flopsPerFma)
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
                // At least one round: on a loaded machine a thread can first run after the deadline, and a probe
                // that counted nothing would report a peak of 0 (the wall clock below still covers the round).
                do
                {
                    sink += chains(InnerIterations);
                    rounds++;
                }
                while (Stopwatch.GetTimestamp() < Volatile.Read(ref deadline));
                flops[index] = (double)rounds * InnerIterations * Chains * flopsPerFma;
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

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> MulAdd(Vector256<float> x, Vector256<float> m, Vector256<float> d) =>
        Fma.IsSupported ? Fma.MultiplyAdd(x, m, d) : (x * m) + d;

    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static float FmaChains256(int iterations)
    {
        // x·m + d with m slightly below 1 keeps every chain finite however long it runs.
        var m = Vector256.Create(0.999999f);
        var d = Vector256.Create(1e-6f);
        Vector256<float> a0 = Vector256.Create(1f), a1 = Vector256.Create(2f), a2 = Vector256.Create(3f), a3 = Vector256.Create(4f);
        Vector256<float> a4 = Vector256.Create(5f), a5 = Vector256.Create(6f), a6 = Vector256.Create(7f), a7 = Vector256.Create(8f);
        Vector256<float> a8 = Vector256.Create(9f), a9 = Vector256.Create(10f), a10 = Vector256.Create(11f), a11 = Vector256.Create(12f);
        Vector256<float> a12 = Vector256.Create(13f), a13 = Vector256.Create(14f);
        Vector256<float> a14 = Vector256.Create(15f), a15 = Vector256.Create(16f);
        for (int i = 0; i < iterations; i++)
        {
            a0 = MulAdd(a0, m, d);
            a1 = MulAdd(a1, m, d);
            a2 = MulAdd(a2, m, d);
            a3 = MulAdd(a3, m, d);
            a4 = MulAdd(a4, m, d);
            a5 = MulAdd(a5, m, d);
            a6 = MulAdd(a6, m, d);
            a7 = MulAdd(a7, m, d);
            a8 = MulAdd(a8, m, d);
            a9 = MulAdd(a9, m, d);
            a10 = MulAdd(a10, m, d);
            a11 = MulAdd(a11, m, d);
            a12 = MulAdd(a12, m, d);
            a13 = MulAdd(a13, m, d);
            a14 = MulAdd(a14, m, d);
            a15 = MulAdd(a15, m, d);
        }
        var sum = ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7)) + ((a8 + a9) + (a10 + a11)) + ((a12 + a13) + (a14 + a15));
        return Vector256.Sum(sum);
    }

    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static float FmaChains512(int iterations)
    {
        var m = Vector512.Create(0.999999f);
        var d = Vector512.Create(1e-6f);
        Vector512<float> a0 = Vector512.Create(1f), a1 = Vector512.Create(2f), a2 = Vector512.Create(3f), a3 = Vector512.Create(4f);
        Vector512<float> a4 = Vector512.Create(5f), a5 = Vector512.Create(6f), a6 = Vector512.Create(7f), a7 = Vector512.Create(8f);
        Vector512<float> a8 = Vector512.Create(9f), a9 = Vector512.Create(10f), a10 = Vector512.Create(11f), a11 = Vector512.Create(12f);
        Vector512<float> a12 = Vector512.Create(13f), a13 = Vector512.Create(14f);
        Vector512<float> a14 = Vector512.Create(15f), a15 = Vector512.Create(16f);
        for (int i = 0; i < iterations; i++)
        {
            a0 = Avx512F.FusedMultiplyAdd(a0, m, d);
            a1 = Avx512F.FusedMultiplyAdd(a1, m, d);
            a2 = Avx512F.FusedMultiplyAdd(a2, m, d);
            a3 = Avx512F.FusedMultiplyAdd(a3, m, d);
            a4 = Avx512F.FusedMultiplyAdd(a4, m, d);
            a5 = Avx512F.FusedMultiplyAdd(a5, m, d);
            a6 = Avx512F.FusedMultiplyAdd(a6, m, d);
            a7 = Avx512F.FusedMultiplyAdd(a7, m, d);
            a8 = Avx512F.FusedMultiplyAdd(a8, m, d);
            a9 = Avx512F.FusedMultiplyAdd(a9, m, d);
            a10 = Avx512F.FusedMultiplyAdd(a10, m, d);
            a11 = Avx512F.FusedMultiplyAdd(a11, m, d);
            a12 = Avx512F.FusedMultiplyAdd(a12, m, d);
            a13 = Avx512F.FusedMultiplyAdd(a13, m, d);
            a14 = Avx512F.FusedMultiplyAdd(a14, m, d);
            a15 = Avx512F.FusedMultiplyAdd(a15, m, d);
        }
        var sum = ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7)) + ((a8 + a9) + (a10 + a11)) + ((a12 + a13) + (a14 + a15));
        return Vector512.Sum(sum);
    }
}
