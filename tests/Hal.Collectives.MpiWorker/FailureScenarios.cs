using Hal.Collectives.Mpi;

namespace Hal.Collectives.MpiWorker;

/// <summary>Scenarios where something goes wrong on purpose; each prints what it caught and returns whether that was expected.</summary>
internal static class FailureScenarios
{
    /// <summary>Rank 1 sleeps past the 500 ms timeout: every other rank must raise CollectiveTimeoutException.</summary>
    public static bool Timeout(MpiCommunicator comm, IDevice device)
    {
        var ops = new Ops(device);
        comm.Timeout = TimeSpan.FromMilliseconds(500);
        using var t = ops.FromArray(new double[] { 1, 2, 3 }, new Shape(3), DType.F32);
        if (comm.Rank == 1)
        {
            Thread.Sleep(1500);
            Console.WriteLine("rank 1 slept 1500 ms");
            return true;
        }
        try
        {
            comm.AllReduce(t, t, ReduceOp.Sum);
            Console.WriteLine($"FAIL rank {comm.Rank}: the all-reduce returned without rank 1");
            return false;
        }
        catch (CollectiveTimeoutException e)
        {
            Console.WriteLine($"rank {comm.Rank} caught CollectiveTimeoutException rank={e.Rank} timeout={e.Timeout.TotalMilliseconds} ms: {e.Message}");
        }
        try
        {
            comm.Barrier();
            Console.WriteLine($"FAIL rank {comm.Rank}: the communicator accepted a call after a timeout");
            return false;
        }
        catch (HalException e)
        {
            Console.WriteLine($"rank {comm.Rank} refused after timeout: {e.Message}");
        }
        return true;
    }

    /// <summary>Ranks pass different counts, then a different collective: every rank raises CollectiveMismatchException each time.</summary>
    public static bool Mismatch(MpiCommunicator comm, IDevice device)
    {
        var ops = new Ops(device);
        comm.Timeout = TimeSpan.FromSeconds(30);
        bool ok = true;
        using (var t = ops.FromArray(new double[4 + comm.Rank], new Shape(4 + comm.Rank), DType.F32))
        {
            ok &= ExpectMismatch(comm, "count", () => comm.AllReduce(t, t, ReduceOp.Sum));
        }
        using (var t = ops.FromArray(new double[8], new Shape(8), comm.Rank == 0 ? DType.F64 : DType.F32))
        {
            ok &= ExpectMismatch(comm, "dtype", () => comm.AllReduce(t, t, ReduceOp.Sum));
            ok &= ExpectMismatch(comm, "collective", () =>
            {
                if (comm.Rank == 0)
                {
                    comm.Broadcast(t, 0);
                }
                else
                {
                    comm.AllReduce(t, t, ReduceOp.Max);
                }
            });
        }
        if (comm.Size >= 2 && comm.Rank < 2)
        {
            // Point to point: rank 0 sends 8 elements, rank 1 receives 4 (too short) and then 8 into a 16-element tensor.
            using var eight = ops.FromArray(new double[8], new Shape(8), DType.F32);
            using var four = ops.FromArray(new double[4], new Shape(4), DType.F32);
            using var sixteen = ops.FromArray(new double[16], new Shape(16), DType.F32);
            if (comm.Rank == 0)
            {
                comm.Send(eight, 1, 5);
                comm.Send(eight, 1, 6);
            }
            else
            {
                ok &= ExpectMismatch(comm, "recv shorter than send", () => comm.Recv(four, 0, 5));
                ok &= ExpectMismatch(comm, "recv longer than send", () => comm.Recv(sixteen, 0, 6));
            }
        }
        // The communicator still works after a mismatch: the checks ran before any data moved.
        using var one = ops.FromArray(new double[] { comm.Rank + 1 }, new Shape(1), DType.F32);
        comm.AllReduce(one, one, ReduceOp.Sum);
        double sum = ops.ToDoubleArray(one)[0];
        double want = comm.Size * (comm.Size + 1) / 2.0;
        Console.WriteLine($"rank {comm.Rank} all-reduce after mismatches = {sum} (expected {want})");
        return ok && sum == want;
    }

    private static bool ExpectMismatch(MpiCommunicator comm, string what, Action call)
    {
        try
        {
            call();
            Console.WriteLine($"FAIL rank {comm.Rank} {what}: no exception");
            return false;
        }
        catch (CollectiveMismatchException e)
        {
            Console.WriteLine($"rank {comm.Rank} {what}: caught CollectiveMismatchException: {e.Message}");
            return true;
        }
    }

    /// <summary>Split by rank parity and all-reduce in each group; a rank with a negative color gets no group.</summary>
    public static bool Split(MpiCommunicator comm, IDevice device)
    {
        var ops = new Ops(device);
        bool ok = true;
        var group = comm.Split(comm.Rank % 2, comm.Rank) ?? throw new HalException("a non-negative color gave no group");
        using var t = ops.FromArray(new double[] { comm.Rank }, new Shape(1), DType.I64);
        group.AllReduce(t, t, ReduceOp.Sum);
        long got = (long)ops.ToDoubleArray(t)[0];
        long want = 0;
        int members = 0;
        for (int r = comm.Rank % 2; r < comm.Size; r += 2)
        {
            want += r;
            members++;
        }
        bool good = got == want && group.Size == members && group.Rank == comm.Rank / 2;
        ok &= good;
        Console.WriteLine($"{(good ? "" : "FAIL ")}rank {comm.Rank} parity {comm.Rank % 2}: group rank {group.Rank}/{group.Size}, sum of ranks {got} (expected {want})");

        // Rank 0 opts out with a negative color; the others form one group ordered by descending old rank.
        var rest = comm.Split(comm.Rank == 0 ? -1 : 0, -comm.Rank);
        if (comm.Rank == 0)
        {
            ok &= rest is null;
            Console.WriteLine($"{(rest is null ? "" : "FAIL ")}rank 0 negative color: {(rest is null ? "no group" : "got a group")}");
        }
        else if (rest is not null)
        {
            bool order = rest.Size == comm.Size - 1 && rest.Rank == comm.Size - 1 - comm.Rank;
            ok &= order;
            Console.WriteLine($"{(order ? "" : "FAIL ")}rank {comm.Rank} rest group rank {rest.Rank}/{rest.Size}");
        }
        else
        {
            ok = false;
            Console.WriteLine($"FAIL rank {comm.Rank}: color 0 gave no group");
        }
        comm.Barrier();
        return ok;
    }

    /// <summary>After Dispose, every call raises ObjectDisposedException, on the world and on its sub-groups.</summary>
    public static bool UseAfterDispose(MpiCommunicator comm, IDevice device)
    {
        var ops = new Ops(device);
        var group = comm.Split(0, comm.Rank)!;
        using var t = ops.FromArray(new double[] { 1 }, new Shape(1), DType.F32);
        comm.Dispose();
        comm.Dispose();
        bool ok = true;
        foreach (var (what, call) in new (string, Action)[]
        {
            ("world all-reduce", () => comm.AllReduce(t, t, ReduceOp.Sum)),
            ("world barrier", comm.Barrier),
            ("world raw all-reduce", () => comm.RawAllReduce(IntPtr.Zero, IntPtr.Zero, 0, DType.F32, ReduceOp.Sum)),
            ("sub-group all-reduce", () => group.AllReduce(t, t, ReduceOp.Sum)),
        })
        {
            try
            {
                call();
                Console.WriteLine($"FAIL rank {comm.Rank} {what}: no exception after dispose");
                ok = false;
            }
            catch (ObjectDisposedException e)
            {
                Console.WriteLine($"rank {comm.Rank} {what}: caught ObjectDisposedException: {e.Message}");
            }
        }
        return ok;
    }
}
