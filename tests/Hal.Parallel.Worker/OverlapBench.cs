using System.Diagnostics;
using Hal.Backends.Cpu;
using Hal.Collectives.InProcess;

namespace Hal.Parallel.Worker;

// Shape legend: count = gradient slab elements (F32); m = side of the square Gemm that stands in for backward
// compute; reps = Gemms per backward segment; 8 segments per backward.

/// <summary>
/// How much gradient all-reduce time a bucketed backward hides, with in-process ranks on CPU devices (one kernel thread
/// each). Every rank runs the same phases between barriers: all-reduce alone, compute alone, compute then all-reduce
/// at the end, and compute with GradientsReadyFrom after each of 8 segments. Hidden = (at end − overlapped) /
/// all-reduce alone. Times are rank 0's medians over the repetitions.
/// </summary>
internal static class OverlapBench
{
    private const int Segments = 8;
    private const int Repetitions = 5;
    private const int GemmSide = 384;

    public static void Run(long count, int ranks)
    {
        var backend = new CpuBackend(new CpuBackendOptions { Threads = 1 });
        var devices = Enumerable.Range(0, ranks).Select(_ => backend.Open(0)).ToArray();
        try
        {
            InProcessWorld.Run(devices, comm => RunRank(comm, new Ops(comm.Device), count), TimeSpan.FromSeconds(600));
        }
        finally
        {
            foreach (var d in devices)
            {
                d.Dispose();
            }
        }
    }

    private static void RunRank(ICommunicator comm, Ops ops, long count)
    {
        using var slab = ops.Full(new Shape(checked((int)count)), comm.Rank + 1);
        using var a = ops.Full(new Shape(GemmSide, GemmSide), 0.5);
        using var b = ops.Full(new Shape(GemmSide, GemmSide), 0.25);
        using var c = ops.Empty(new Shape(GemmSide, GemmSide));
        using var bucketer = new GradientBucketer(comm, slab);

        void Reduce()
        {
            bucketer.BeginBackward();
            bucketer.FinishBackward();
        }

        int reps = 1;

        void Segment()
        {
            for (int i = 0; i < reps; i++)
            {
                ops.Gemm(a, b, c);
            }
        }

        void Compute()
        {
            for (int k = 0; k < Segments; k++)
            {
                Segment();
            }
        }

        void AtEnd()
        {
            bucketer.BeginBackward();
            Compute();
            bucketer.FinishBackward();
        }

        void Overlapped()
        {
            bucketer.BeginBackward();
            for (int k = Segments - 1; k >= 0; k--)
            {
                Segment();
                bucketer.GradientsReadyFrom(count * k / Segments);
            }
            bucketer.FinishBackward();
        }

        // Warm up, then size the compute so that a backward's 8 segments take about as long as the all-reduce alone
        // (both measured with every rank busy, as in the runs); rank 0 decides for all.
        Reduce();
        Compute();
        double commProbe = Median(comm, Reduce, 3);
        double segmentsProbe = Median(comm, Compute, 3);
        using var repsTensor = ops.FromArray([Math.Max(1, Math.Round(commProbe / segmentsProbe))], new Shape(1), DType.F64);
        comm.Broadcast(repsTensor, 0);
        reps = (int)ops.ToDoubleArray(repsTensor)[0];

        // The four phases take turns, so a change in machine load hits them alike; each keeps its median.
        var times = new double[4][];
        Action[] phases = [Reduce, Compute, AtEnd, Overlapped];
        for (int p = 0; p < phases.Length; p++)
        {
            times[p] = new double[Repetitions];
        }
        long overlappedBefore = bucketer.BucketsOverlapped;
        for (int i = 0; i < Repetitions; i++)
        {
            for (int p = 0; p < phases.Length; p++)
            {
                times[p][i] = Median(comm, phases[p], 1);
            }
        }
        long overlappedPerBackward = (bucketer.BucketsOverlapped - overlappedBefore) / Repetitions;
        double commSeconds = MedianOf(times[0]);
        double computeSeconds = MedianOf(times[1]);
        double atEndSeconds = MedianOf(times[2]);
        double overlappedSeconds = MedianOf(times[3]);
        double gemmSeconds = computeSeconds / (Segments * reps);

        if (comm.Rank == 0)
        {
            double hidden = (atEndSeconds - overlappedSeconds) / commSeconds;
            Console.WriteLine($"overlap-bench: {count} F32 elements ({count * 4 / 1e6:0.#} MB) per rank, {comm.Size} in-process ranks, " +
                $"{bucketer.BucketCount} buckets of 25 MiB, {Environment.ProcessorCount} cores, one kernel thread per rank");
            Console.WriteLine($"  compute per backward: {Segments} segments × {reps} Gemm {GemmSide}³ ({gemmSeconds * 1e3:0.0} ms per Gemm in the compute-alone run)");
            Console.WriteLine($"  all-reduce alone          {commSeconds * 1e3,8:0.0} ms");
            Console.WriteLine($"  compute alone             {computeSeconds * 1e3,8:0.0} ms");
            Console.WriteLine($"  compute, reduce at end    {atEndSeconds * 1e3,8:0.0} ms");
            Console.WriteLine($"  compute, 8 ready reports  {overlappedSeconds * 1e3,8:0.0} ms ({overlappedPerBackward} of {bucketer.BucketCount} buckets launched before FinishBackward)");
            Console.WriteLine($"  ideal (max of the two)    {Math.Max(commSeconds, computeSeconds) * 1e3,8:0.0} ms");
            Console.WriteLine($"  all-reduce time hidden    {hidden * 100,8:0.0} %  ((at end − overlapped) / all-reduce alone)");
        }
    }

    /// <summary>Median over <paramref name="runs"/> runs of body, each started after a barrier; rank-local time.</summary>
    private static double Median(ICommunicator comm, Action body, int runs)
    {
        var seconds = new double[runs];
        for (int i = 0; i < runs; i++)
        {
            comm.Barrier();
            var watch = Stopwatch.StartNew();
            body();
            seconds[i] = watch.Elapsed.TotalSeconds;
        }
        return MedianOf(seconds);
    }

    private static double MedianOf(double[] seconds)
    {
        var sorted = (double[])seconds.Clone();
        Array.Sort(sorted);
        return sorted[sorted.Length / 2];
    }
}
