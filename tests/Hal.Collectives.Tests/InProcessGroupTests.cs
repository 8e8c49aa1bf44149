using System.Collections.Concurrent;
using Hal.Collectives.InProcess;
using static Hal.Collectives.Tests.InProcessTestKit;

namespace Hal.Collectives.Tests;

/// <summary>Asynchronous requests, sub-groups, point-to-point messages, barrier, and devices without host pointers.</summary>
public sealed class InProcessGroupTests
{
    [Fact]
    public void AsyncRequests_CompleteInOrder_WithExactResults()
    {
        const int ranks = 3;
        var failures = RunRanks(ranks, (comm, ops, failures) =>
        {
            using var a = ops.FromArray(Values(comm.Rank, 9, salt: 1), new Shape(9));
            using var b = ops.FromArray(Values(comm.Rank, ranks * 4, salt: 2), new Shape(ranks * 4));
            using var gathered = ops.Zeros(new Shape(ranks * 4 * ranks));
            using var scattered = ops.Zeros(new Shape(4));
            var r1 = comm.AllReduceAsync(a, a, ReduceOp.Sum);
            var r2 = comm.AllGatherAsync(b, gathered);
            var r3 = comm.ReduceScatterAsync(b, scattered, ReduceOp.Max);
            // A blocking call after the requests waits for them, keeping one order of collectives on every rank.
            comm.AllReduce(a, a, ReduceOp.Sum);
            Assert.True(r1.IsCompleted && r2.IsCompleted && r3.IsCompleted);
            r3.Wait();
            r1.Wait();
            r2.Wait();
            Check(failures, $"rank {comm.Rank} async all-reduce twice", ops.ToDoubleArray(a), i => ranks * Reference(ReduceOp.Sum, DType.F32, ranks, i, salt: 1), ReduceOp.Sum, DType.F32);
            Check(failures, $"rank {comm.Rank} async all-gather", ops.ToDoubleArray(gathered), i => Value((int)(i / (ranks * 4)), i % (ranks * 4), salt: 2), ReduceOp.Sum, DType.F32);
            long offset = comm.Rank * 4;
            Check(failures, $"rank {comm.Rank} async reduce-scatter", ops.ToDoubleArray(scattered), i => Reference(ReduceOp.Max, DType.F32, ranks, i, salt: 2, blockOffset: offset), ReduceOp.Max, DType.F32);
        });
        Assert.Empty(failures);
    }

    [Fact]
    public void AsyncRequest_Mismatch_RaisesOnWait()
    {
        var caught = CatchPerRank(2, (comm, ops) =>
        {
            using var t = ops.Zeros(new Shape(comm.Rank + 2));
            comm.AllReduceAsync(t, t, ReduceOp.Sum).Wait();
        }, TimeSpan.FromSeconds(30));
        Assert.All(caught, e => Assert.IsType<CollectiveMismatchException>(e));
    }

    [Fact]
    public void Split_ByParity_ThenAllReduceInEachGroup()
    {
        const int ranks = 5;
        var failures = RunRanks(ranks, (comm, ops, failures) =>
        {
            // Even ranks form one group, odd ranks the other; keys reverse the order within each group.
            var sub = comm.Split(comm.Rank % 2, -comm.Rank);
            Assert.NotNull(sub);
            int[] members = comm.Rank % 2 == 0 ? [4, 2, 0] : [3, 1];
            if (sub.Size != members.Length || sub.Rank != Array.IndexOf(members, comm.Rank))
            {
                failures.Enqueue($"rank {comm.Rank}: sub-group rank {sub.Rank}/{sub.Size}, expected {Array.IndexOf(members, comm.Rank)}/{members.Length}");
            }
            using var t = ops.FromArray([comm.Rank, 1.0], new Shape(2));
            sub.AllReduce(t, t, ReduceOp.Sum);
            Check(failures, $"rank {comm.Rank} sub-group sum", ops.ToDoubleArray(t), i => i == 0 ? members.Sum() : members.Length, ReduceOp.Sum, DType.F32);
            using var root = ops.FromArray([comm.Rank * 10.0], new Shape(1));
            sub.Broadcast(root, 0);
            Check(failures, $"rank {comm.Rank} sub-group broadcast from its rank 0", ops.ToDoubleArray(root), _ => members[0] * 10.0, ReduceOp.Sum, DType.F32);
            comm.Barrier();
        });
        Assert.Empty(failures);
    }

    [Fact]
    public void Split_NegativeColor_GetsNull()
    {
        var sizes = new int[3];
        var failures = RunRanks(3, (comm, ops, failures) =>
        {
            var sub = comm.Split(comm.Rank == 1 ? -1 : 0, 0);
            sizes[comm.Rank] = sub?.Size ?? -1;
            if (sub is not null)
            {
                sub.Barrier();
            }
        });
        Assert.Empty(failures);
        Assert.Equal([2, -1, 2], sizes);
    }

    [Fact]
    public void SendRecv_MatchesByTag_InOrder()
    {
        var failures = RunRanks(2, (comm, ops, failures) =>
        {
            if (comm.Rank == 0)
            {
                foreach (var (value, tag) in new[] { (1.0, 5), (2.0, 9), (3.0, 5) })
                {
                    using var t = ops.FromArray([value, value], new Shape(2), DType.F64);
                    comm.Send(t, 1, tag);
                }
            }
            else
            {
                using var t = ops.Zeros(new Shape(2), DType.F64);
                // Tag 9 first, then the two tag-5 messages in the order they were sent.
                foreach (var (tag, expected) in new[] { (9, 2.0), (5, 1.0), (5, 3.0) })
                {
                    comm.Recv(t, 0, tag);
                    Check(failures, $"recv tag {tag}", ops.ToDoubleArray(t), _ => expected, ReduceOp.Sum, DType.F64);
                }
            }
        });
        Assert.Empty(failures);
    }

    [Fact]
    public void Barrier_ReturnsOnlyWhenEveryRankArrived()
    {
        int arrived = 0;
        var seen = new int[4];
        var failures = RunRanks(4, (comm, ops, failures) =>
        {
            Interlocked.Increment(ref arrived);
            comm.Barrier();
            seen[comm.Rank] = Volatile.Read(ref arrived);
        });
        Assert.Empty(failures);
        Assert.All(seen, s => Assert.Equal(4, s));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    public void DevicesWithoutHostPointers_StageThroughHostMemory(int ranks)
    {
        var devices = Enumerable.Range(0, ranks).Select(i => new InProcessStagedDevice(i)).ToArray();
        var failures = new ConcurrentQueue<string>();
        long big = InProcessCommunicator.RingMinBytes / 4 + 5;
        InProcessWorld.Run(devices, comm =>
        {
            var dev = (InProcessStagedDevice)comm.Device;
            foreach (long count in new long[] { 7, big })
            {
                using var send = dev.Upload(Values(comm.Rank, count), DType.F32);
                using var recv = dev.Zeros(count, DType.F32);
                comm.AllReduce(send, recv, ReduceOp.Sum);
                Check(failures, $"rank {comm.Rank} staged all-reduce {count}", InProcessStagedDevice.Download(recv), i => Reference(ReduceOp.Sum, DType.F32, ranks, i), ReduceOp.Sum, DType.F32);
                comm.AllReduce(send, send, ReduceOp.Mean);
                Check(failures, $"rank {comm.Rank} staged in-place mean {count}", InProcessStagedDevice.Download(send), i => Reference(ReduceOp.Mean, DType.F32, ranks, i), ReduceOp.Mean, DType.F32);
            }
            using var block = dev.Upload(Values(comm.Rank, 3), DType.F32);
            using var all = dev.Zeros(3 * ranks, DType.F32);
            comm.AllGather(block, all);
            Check(failures, $"rank {comm.Rank} staged all-gather", InProcessStagedDevice.Download(all), i => Value((int)(i / 3), i % 3), ReduceOp.Sum, DType.F32);
            comm.ReduceScatter(all, block, ReduceOp.Sum);
            int r = comm.Rank;
            Check(failures, $"rank {r} staged reduce-scatter", InProcessStagedDevice.Download(block), i => ranks * Value(r, i), ReduceOp.Sum, DType.F32);
            comm.Broadcast(all, 0);
            Check(failures, $"rank {r} staged broadcast", InProcessStagedDevice.Download(all), i => Value((int)(i / 3), i % 3), ReduceOp.Sum, DType.F32);
            comm.AllToAll(all, all);
            Check(failures, $"rank {r} staged in-place all-to-all", InProcessStagedDevice.Download(all), i => Value(r, i % 3), ReduceOp.Sum, DType.F32);
        }, TimeSpan.FromSeconds(30));
        Assert.Empty(failures);
    }
}
