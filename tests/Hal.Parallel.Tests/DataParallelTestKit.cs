using System.Collections.Concurrent;
using Hal.Backends.Cpu;
using Hal.Collectives.InProcess;

namespace Hal.Parallel.Tests;

/// <summary>
/// In-process groups of CPU devices and exact-value gradient slabs. Slab values are small integers (|v| ≤ 5), so the
/// sum over up to 4 ranks is exact in F32 and BF16 (BF16 holds integers up to 256 exactly) and the mean over 2 or 4
/// ranks (a division by a power of two) is exact too: the averaged slab must equal the plain-loop mean bit for bit.
/// </summary>
internal static class DataParallelTestKit
{
    /// <summary>Value of element i of rank r's gradient in step <paramref name="step"/>: an integer in [−5, 5].</summary>
    public static double Value(int rank, long i, int step = 0) => ((rank * 7 + i * 3 + step * 5 + 1) % 11) - 5;

    public static double[] Values(int rank, long count, int step = 0)
    {
        var v = new double[count];
        for (long i = 0; i < count; i++)
        {
            v[i] = Value(rank, i, step);
        }
        return v;
    }

    /// <summary>Mean over ranks 0..n−1 of Value(r, i), in double.</summary>
    public static double Mean(int ranks, long i, int step = 0)
    {
        double sum = 0;
        for (int r = 0; r < ranks; r++)
        {
            sum += Value(r, i, step);
        }
        return sum / ranks;
    }

    public static IDevice[] Devices(int ranks)
    {
        var backend = new CpuBackend();
        return Enumerable.Range(0, ranks).Select(_ => backend.Open(0)).ToArray();
    }

    /// <summary>Runs body on every rank of a fresh group; returns the failures the ranks reported (strings).</summary>
    public static List<string> RunRanks(int ranks, Action<ICommunicator, Ops, ConcurrentQueue<string>> body, TimeSpan? timeout = null)
    {
        var devices = Devices(ranks);
        var failures = new ConcurrentQueue<string>();
        try
        {
            InProcessWorld.Run(devices, comm => body(comm, new Ops(comm.Device), failures), timeout ?? TimeSpan.FromSeconds(30));
        }
        finally
        {
            foreach (var d in devices)
            {
                d.Dispose();
            }
        }
        return [.. failures.Take(20)];
    }

    /// <summary>Runs body with a one-rank communicator on the calling thread.</summary>
    public static void WithOneRank(Action<ICommunicator, Ops> body)
    {
        using var device = new CpuBackend().Open(0);
        var comm = InProcessWorld.Create([device])[0];
        try
        {
            body(comm, new Ops(device));
        }
        finally
        {
            comm.Dispose();
        }
    }

    /// <summary>Reports the first few elements of actual that differ from expected(i) by more than tolerance.</summary>
    public static void Check(ConcurrentQueue<string> failures, string what, double[] actual, Func<long, double> expected, double tolerance = 0)
    {
        int reported = 0;
        for (long i = 0; i < actual.Length && reported < 3; i++)
        {
            double e = expected(i);
            if (!(Math.Abs(actual[i] - e) <= tolerance))
            {
                failures.Enqueue($"{what}: element {i} is {actual[i]}, expected {e}");
                reported++;
            }
        }
    }
}
