using Hal.Collectives.InProcess;
using static Hal.Collectives.Tests.InProcessTestKit;

namespace Hal.Collectives.Tests;

/// <summary>Cross-rank mismatches, timeouts, failed ranks, disposal and argument validation.</summary>
public sealed class InProcessErrorTests
{
    // Short enough to keep the suite fast, long enough that a healthy rendezvous on 2 busy cores never hits it.
    private static readonly TimeSpan ShortTimeout = TimeSpan.FromMilliseconds(200);

    private static readonly TimeSpan LongTimeout = TimeSpan.FromSeconds(30);

    [Fact]
    public void AllReduce_CountDiffers_EveryRankRaisesMismatch_OutputUntouched()
    {
        var outputs = new double[3][];
        var caught = CatchPerRank(3, (comm, ops) =>
        {
            int count = comm.Rank == 1 ? 5 : 4;
            using var send = ops.FromArray(Values(comm.Rank, count), new Shape(count));
            using var recv = ops.FromArray(Enumerable.Repeat(99.0, count).ToArray(), new Shape(count));
            try
            {
                comm.AllReduce(send, recv, ReduceOp.Sum);
            }
            finally
            {
                outputs[comm.Rank] = ops.ToDoubleArray(recv);
            }
        }, LongTimeout);
        for (int r = 0; r < 3; r++)
        {
            var e = Assert.IsType<CollectiveMismatchException>(caught[r]);
            Assert.Equal(r, e.Rank);
            Assert.Equal("all-reduce", e.Op);
            Assert.Contains("element count 4 on ranks 0, 2 vs 5 on rank 1", e.Message);
            Assert.All(outputs[r], v => Assert.Equal(99.0, v));
        }
    }

    [Fact]
    public void AllReduce_DTypeDiffers_EveryRankRaisesMismatch()
    {
        var caught = CatchPerRank(2, (comm, ops) =>
        {
            using var t = ops.Zeros(new Shape(3), comm.Rank == 0 ? DType.F32 : DType.I32);
            comm.AllReduce(t, t, ReduceOp.Sum);
        }, LongTimeout);
        Assert.All(caught, e => Assert.Contains("dtype f32 on rank 0 vs i32 on rank 1", Assert.IsType<CollectiveMismatchException>(e).Message));
    }

    [Fact]
    public void AllReduce_ReduceOpDiffers_EveryRankRaisesMismatch()
    {
        var caught = CatchPerRank(2, (comm, ops) =>
        {
            using var t = ops.Zeros(new Shape(3));
            comm.AllReduce(t, t, comm.Rank == 0 ? ReduceOp.Sum : ReduceOp.Max);
        }, LongTimeout);
        Assert.All(caught, e => Assert.Contains("reduce op Sum on rank 0 vs Max on rank 1", Assert.IsType<CollectiveMismatchException>(e).Message));
    }

    [Fact]
    public void Broadcast_RootDiffers_EveryRankRaisesMismatch()
    {
        var caught = CatchPerRank(3, (comm, ops) =>
        {
            using var t = ops.Zeros(new Shape(3));
            comm.Broadcast(t, comm.Rank == 2 ? 1 : 0);
        }, LongTimeout);
        Assert.All(caught, e => Assert.Contains("root 0 on ranks 0, 1 vs 1 on rank 2", Assert.IsType<CollectiveMismatchException>(e).Message));
    }

    [Fact]
    public void DifferentCollectives_EveryRankRaisesMismatch()
    {
        var caught = CatchPerRank(2, (comm, ops) =>
        {
            using var t = ops.Zeros(new Shape(4));
            if (comm.Rank == 0)
            {
                comm.AllReduce(t, t, ReduceOp.Sum);
            }
            else
            {
                comm.Broadcast(t, 0);
            }
        }, LongTimeout);
        Assert.All(caught, e => Assert.Contains("op all-reduce on rank 0 vs broadcast on rank 1", Assert.IsType<CollectiveMismatchException>(e).Message));
    }

    [Fact]
    public void MissingRanks_TimeOut_NamingTheRanksAndTheCall()
    {
        var caught = CatchPerRank(4, (comm, ops) =>
        {
            using var t = ops.Zeros(new Shape(4));
            comm.Barrier();
            if (comm.Rank is 0 or 2)
            {
                comm.AllReduce(t, t, ReduceOp.Sum);
            }
        }, ShortTimeout);
        foreach (int r in new[] { 0, 2 })
        {
            var e = Assert.IsType<CollectiveTimeoutException>(caught[r]);
            Assert.Equal(r, e.Rank);
            Assert.Equal("all-reduce", e.Op);
            Assert.Equal("ranks 1, 3 to reach all-reduce #2", e.WaitingFor);
            Assert.Equal(ShortTimeout, e.Timeout);
        }
        Assert.Null(caught[1]);
        Assert.Null(caught[3]);
    }

    [Fact]
    public void RankThatThrows_OthersFailFast_NamingIt()
    {
        var devices = Devices(3);
        var error = Assert.Throws<AggregateException>(() => InProcessWorld.Run(devices, comm =>
        {
            if (comm.Rank == 1)
            {
                throw new InvalidOperationException("boom");
            }
            using var t = new Ops(comm.Device).Zeros(new Shape(4));
            comm.AllReduce(t, t, ReduceOp.Sum);
        }, LongTimeout));
        Assert.Equal(3, error.InnerExceptions.Count);
        Assert.IsType<InvalidOperationException>(error.InnerExceptions[1]);
        foreach (int i in new[] { 0, 2 })
        {
            // Not a timeout: the 30 s timeout would have made this test slow; the failure arrives at once.
            var e = error.InnerExceptions[i];
            Assert.IsType<HalException>(e);
            Assert.Contains("rank 1 failed with InvalidOperationException: boom", e.Message);
        }
        foreach (var d in devices)
        {
            d.Dispose();
        }
    }

    [Fact]
    public void Recv_WithoutSend_TimesOut()
    {
        var caught = CatchPerRank(2, (comm, ops) =>
        {
            if (comm.Rank == 1)
            {
                using var t = ops.Zeros(new Shape(2));
                comm.Recv(t, 0, tag: 7);
            }
        }, ShortTimeout);
        var e = Assert.IsType<CollectiveTimeoutException>(caught[1]);
        Assert.Equal("rank 0 to send a message with tag 7", e.WaitingFor);
    }

    [Fact]
    public void Recv_CountDiffersFromSend_RaisesMismatch()
    {
        var caught = CatchPerRank(2, (comm, ops) =>
        {
            using var t = ops.Zeros(new Shape(comm.Rank == 0 ? 3 : 4));
            if (comm.Rank == 0)
            {
                comm.Send(t, 1);
            }
            else
            {
                comm.Recv(t, 0);
            }
        }, LongTimeout);
        Assert.Null(caught[0]);
        Assert.Contains("rank 0 sent 3 f32 elements with tag 0, rank 1 receives 4 f32", Assert.IsType<CollectiveMismatchException>(caught[1]).Message);
    }

    [Fact]
    public void UseAfterDispose_Raises()
    {
        var devices = Devices(1);
        var comms = InProcessWorld.Create(devices);
        using var t = new Ops(devices[0]).Zeros(new Shape(2));
        comms[0].Dispose();
        Assert.Throws<ObjectDisposedException>(() => comms[0].AllReduce(t, t, ReduceOp.Sum));
        Assert.Throws<ObjectDisposedException>(() => comms[0].Barrier());
        Assert.Throws<ObjectDisposedException>(() => comms[0].Split(0, 0));
        Assert.Throws<ObjectDisposedException>(() => comms[0].AllGatherAsync(t, t));
        devices[0].Dispose();
    }

    [Fact]
    public void PeerDisposed_LaterCollective_FailsFast()
    {
        var devices = Devices(2);
        var comms = InProcessWorld.Create(devices);
        comms[1].Dispose();
        using var t = new Ops(devices[0]).Zeros(new Shape(2));
        var e = Assert.Throws<HalException>(() => comms[0].AllReduce(t, t, ReduceOp.Sum));
        Assert.Contains("rank 1 was disposed", e.Message);
        comms[0].Dispose();
        devices[0].Dispose();
        devices[1].Dispose();
    }

    [Fact]
    public void WrongRecvSize_RaisesShapeMismatch()
    {
        var devices = Devices(2);
        var comms = InProcessWorld.Create(devices);
        comms[0].Timeout = ShortTimeout;
        var ops = new Ops(devices[0]);
        using var send = ops.Zeros(new Shape(4));
        using var recv5 = ops.Zeros(new Shape(5));
        using var recv7 = ops.Zeros(new Shape(7));
        Assert.Throws<ShapeMismatchException>(() => comms[0].AllReduce(send, recv5, ReduceOp.Sum));
        Assert.Throws<ShapeMismatchException>(() => comms[0].AllGather(send, recv7));
        Assert.Throws<ShapeMismatchException>(() => comms[0].ReduceScatter(recv7, send, ReduceOp.Sum));
        Assert.Throws<ShapeMismatchException>(() => comms[0].AllToAll(recv7, recv7));
        Assert.Throws<ArgumentOutOfRangeException>(() => comms[0].Broadcast(send, 2));
        Assert.Throws<ArgumentException>(() => comms[0].Send(send, 0));
        foreach (var c in comms)
        {
            c.Dispose();
        }
        foreach (var d in devices)
        {
            d.Dispose();
        }
    }
}
