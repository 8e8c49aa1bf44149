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
    private const int Repetitions = 3;
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

        Reduce();
        double commSeconds = Median(comm, Reduce);

        // Size the compute so that a backward's 8 segments take about as long as the all-reduce: rank 0 decides.
        var watch = Stopwatch.StartNew();
        ops.Gemm(a, b, c);
        ops.Gemm(a, b, c);
        double gemmSeconds = watch.Elapsed.TotalSeconds / 2;
        using var repsTensor = ops.FromArray([Math.Max(1, Math.Round(commSeconds / Segments / gemmSeconds))], new Shape(1), DType.F64);
        comm.Broadcast(repsTensor, 0);
        int reps = (int)ops.ToDoubleArray(repsTensor)[0];

        void Segment()
        {
            for (int i = 0; i < reps; i++)
            {
                ops.Gemm(a, b, c);
            }
        }

        double computeSeconds = Median(comm, () =>
        {
            for (int k = 0; k < Segments; k++)
            {
                Segment();
            }
        });
        double atEndSeconds = Median(comm, () =>
        {
            bucketer.BeginBackward();
            for (int k = 0; k < Segments; k++)
            {
                Segment();
            }
            bucketer.FinishBackward();
        });
        long overlappedBefore = bucketer.BucketsOverlapped;
        double overlappedSeconds = Median(comm, () =>
        {
            bucketer.BeginBackward();
            for (int k = Segments - 1; k >= 0; k--)
            {
                Segment();
                bucketer.GradientsReadyFrom(count * k / Segments);
            }
            bucketer.FinishBackward();
        });
        long overlappedPerBackward = (bucketer.BucketsOverlapped - overlappedBefore) / Repetitions;

        if (comm.Rank == 0)
        {
            double hidden = (atEndSeconds - overlappedSeconds) / commSeconds;
            Console.WriteLine($"overlap-bench: {count} F32 elements ({count * 4 / 1e6:0.#} MB) per rank, {comm.Size} in-process ranks, " +
                $"{bucketer.BucketCount} buckets of 25 MiB, {Environment.ProcessorCount} cores, one kernel thread per rank");
            Console.WriteLine($"  compute per backward: {Segments} segments × {reps} Gemm {GemmSide}³ (one Gemm {gemmSeconds * 1e3:0.0} ms)");
            Console.WriteLine($"  all-reduce alone          {commSeconds * 1e3,8:0.0} ms");
            Console.WriteLine($"  compute alone             {computeSeconds * 1e3,8:0.0} ms");
            Console.WriteLine($"  compute, reduce at end    {atEndSeconds * 1e3,8:0.0} ms");
            Console.WriteLine($"  compute, 8 ready reports  {overlappedSeconds * 1e3,8:0.0} ms ({overlappedPerBackward} of {bucketer.BucketCount} buckets launched before FinishBackward)");
            Console.WriteLine($"  all-reduce time hidden    {hidden * 100,8:0.0} %  ((at end − overlapped) / all-reduce alone)");
        }
    }

    /// <summary>Median over <see cref="Repetitions"/> runs of body, each started after a barrier; rank-local time.</summary>
    private static double Median(ICommunicator comm, Action body)
    {
        var seconds = new double[Repetitions];
        for (int i = 0; i < Repetitions; i++)
        {
            comm.Barrier();
            var watch = Stopwatch.StartNew();
            body();
            seconds[i] = watch.Elapsed.TotalSeconds;
        }
        Array.Sort(seconds);
        return seconds[Repetitions / 2];
    }
}
