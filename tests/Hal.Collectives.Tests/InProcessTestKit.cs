using System.Collections.Concurrent;
using Hal.Backends.Cpu;
using Hal.Collectives.InProcess;

namespace Hal.Collectives.Tests;

/// <summary>
/// Runs in-process groups of CPU devices for the tests, and the exact-value inputs and plain-loop references they
/// compare against. Inputs are small integers (|v| ≤ 5), so every partial sum of up to 8 ranks is exact in every
/// dtype (BF16 holds integers up to 256 exactly) and the result does not depend on the reduction order.
/// </summary>
internal static class InProcessTestKit
{
    public static readonly DType[] DTypes = [DType.F32, DType.F64, DType.F16, DType.BF16, DType.I32, DType.I64];

    public static readonly ReduceOp[] ReduceOps = [ReduceOp.Sum, ReduceOp.Mean, ReduceOp.Max, ReduceOp.Min];

    public static TheoryData<int> RankCounts() => [1, 2, 3, 4, 5, 6, 7, 8];

    /// <summary>Value of element i of rank r's input: an integer in [−5, 5], different across ranks and elements.</summary>
    public static double Value(int rank, long i, int salt = 0) => ((rank * 7 + i * 3 + salt * 5 + 1) % 11) - 5;

    public static double[] Values(int rank, long count, int salt = 0)
    {
        var v = new double[count];
        for (long i = 0; i < count; i++)
        {
            v[i] = Value(rank, i, salt);
        }
        return v;
    }

    /// <summary>op over ranks 0..n−1 of Value(r, i), in double; Mean divides the sum by n (truncating for integers).</summary>
    public static double Reference(ReduceOp op, DType dtype, int ranks, long i, int salt = 0, long blockOffset = 0)
    {
        double acc = Value(0, i + blockOffset, salt);
        for (int r = 1; r < ranks; r++)
        {
            double v = Value(r, i + blockOffset, salt);
            acc = op switch
            {
                ReduceOp.Max => Math.Max(acc, v),
                ReduceOp.Min => Math.Min(acc, v),
                _ => acc + v,
            };
        }
        if (op == ReduceOp.Mean)
        {
            acc /= ranks;
            if (dtype is DType.I32 or DType.I64)
            {
                acc = Math.Truncate(acc);
            }
        }
        return acc;
    }

    /// <summary>
    /// Allowed distance from the reference: exact, except Mean of floats, which may sit 2 units in the last place of
    /// the dtype away (the nccl-tests "avg" bound: one rounding of the sum's division plus one of the 16-bit store).
    /// </summary>
    public static double Tolerance(ReduceOp op, DType dtype, double expected)
    {
        if (op != ReduceOp.Mean || dtype is DType.I32 or DType.I64)
        {
            return 0;
        }
        int mantissaBits = dtype switch
        {
            DType.F64 => 52,
            DType.F32 => 23,
            DType.F16 => 10,
            _ => 7,
        };
        double magnitude = Math.Max(Math.Abs(expected), 1e-3);
        return 2 * Math.Pow(2, Math.Floor(Math.Log2(magnitude)) - mantissaBits);
    }

    /// <summary>n fresh CPU devices, one per rank.</summary>
    public static IDevice[] Devices(int ranks)
    {
        var backend = new CpuBackend();
        return Enumerable.Range(0, ranks).Select(_ => backend.Open(0)).ToArray();
    }

    /// <summary>
    /// Runs body on every rank of a fresh group; failures that the body reports (strings) are gathered over all
    /// ranks and returned, so one assertion shows them all.
    /// </summary>
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

    /// <summary>Runs body on every rank and returns what each rank threw (null where it returned).</summary>
    public static Exception?[] CatchPerRank(int ranks, Action<ICommunicator, Ops> body, TimeSpan timeout)
    {
        var devices = Devices(ranks);
        var caught = new Exception?[ranks];
        try
        {
            InProcessWorld.Run(devices, comm =>
            {
                try
                {
                    body(comm, new Ops(comm.Device));
                }
                catch (Exception e)
                {
                    caught[comm.Rank] = e;
                }
            }, timeout);
        }
        finally
        {
            foreach (var d in devices)
            {
                d.Dispose();
            }
        }
        return caught;
    }

    /// <summary>Compares actual against expected(i) with the op's tolerance; reports the first few differences.</summary>
    public static void Check(ConcurrentQueue<string> failures, string what, double[] actual, Func<long, double> expected, ReduceOp op, DType dtype)
    {
        int reported = 0;
        for (long i = 0; i < actual.Length && reported < 3; i++)
        {
            double e = expected(i);
            bool ok = double.IsNaN(e) ? double.IsNaN(actual[i]) : Math.Abs(actual[i] - e) <= Tolerance(op, dtype, e);
            if (!ok)
            {
                failures.Enqueue($"{what}: element {i} is {actual[i]}, expected {e}");
                reported++;
            }
        }
    }
}
