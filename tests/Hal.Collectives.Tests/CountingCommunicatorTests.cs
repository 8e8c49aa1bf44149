using System.Collections.Concurrent;
using static Hal.Collectives.Tests.InProcessTestKit;

namespace Hal.Collectives.Tests;

// Legend: p ranks, S bytes of a call's send tensor.

/// <summary>The traffic tally: what each call adds, groups sharing their parent's tally, results unchanged.</summary>
public sealed class CountingCommunicatorTests
{
    [Fact]
    public void EachCallAddsWhatTheRingAlgorithmSends_AndResultsAreThoseOfTheInnerCommunicator()
    {
        const int p = 4;
        var tallies = new ConcurrentDictionary<int, CommunicationTally>();
        var failures = RunRanks(p, (inner, ops, failures) =>
        {
            var comm = new CountingCommunicator(inner);
            tallies[comm.Rank] = comm.Tally;
            using var a = ops.FromArray(Enumerable.Range(0, 12).Select(i => (double)(i + comm.Rank)).ToArray(), new Shape(12));
            using var gathered = ops.Zeros(new Shape(12 * p));
            using var scattered = ops.Zeros(new Shape(3));
            using var exchanged = ops.Zeros(new Shape(12));
            comm.AllReduce(a, a, ReduceOp.Sum);
            // Σ over ranks of (i + r) = 4i + 6.
            if (ops.ToDoubleArray(a)[5] != 26)
            {
                failures.Enqueue($"rank {comm.Rank}: all-reduce through the counter gave {ops.ToDoubleArray(a)[5]}, not 26");
            }
            comm.AllGather(a, gathered);
            comm.ReduceScatter(a, scattered, ReduceOp.Sum);
            comm.AllToAll(a, exchanged);
            comm.Broadcast(a, root: 0);
            comm.AllReduceAsync(a, a, ReduceOp.Max).Wait();
            comm.Barrier();
            if (comm.Rank % 2 == 0)
            {
                comm.Send(a, comm.Rank + 1);
            }
            else
            {
                comm.Recv(a, comm.Rank - 1);
            }
        });
        Assert.Empty(failures);
        const long s = 12 * 4;
        for (int r = 0; r < p; r++)
        {
            var t = tallies[r];
            // Two all-reduces of 2·(p−1)/p·S each.
            Assert.Equal(2 * (2 * (p - 1) * s / p), t.AllReduceBytes);
            Assert.Equal((p - 1) * s, t.AllGatherBytes);
            Assert.Equal((p - 1) * s / p, t.ReduceScatterBytes);
            Assert.Equal((p - 1) * s / p, t.AllToAllBytes);
            Assert.Equal((p - 1) * s / p, t.BroadcastBytes);
            // Only the even ranks send; receiving and the barrier count nothing.
            Assert.Equal(r % 2 == 0 ? s : 0, t.PointToPointBytes);
            Assert.Equal(t.AllReduceBytes + t.AllGatherBytes + t.ReduceScatterBytes + t.AllToAllBytes + t.BroadcastBytes + t.PointToPointBytes, t.TotalBytes);
            Assert.Equal(r % 2 == 0 ? 7 : 6, t.Calls);
        }
    }

    [Fact]
    public void GroupsSplitOffShareTheTally_AndAGroupOfOneSendsNothing()
    {
        const int p = 4;
        var totals = new ConcurrentDictionary<int, long>();
        var failures = RunRanks(p, (inner, ops, failures) =>
        {
            var world = new CountingCommunicator(inner);
            var pair = world.Split(world.Rank / 2, world.Rank)!;
            var alone = world.Split(world.Rank, 0)!;
            if (pair is not CountingCommunicator counted || !ReferenceEquals(counted.Tally, world.Tally))
            {
                failures.Enqueue($"rank {world.Rank}: a split group does not count into the world's tally");
            }
            using var a = ops.Zeros(new Shape(10));
            pair.AllReduce(a, a, ReduceOp.Sum);
            alone.AllReduce(a, a, ReduceOp.Sum);
            totals[world.Rank] = world.Tally.TotalBytes;
        });
        Assert.Empty(failures);
        // The pair: 2·(2−1)/2·40 bytes; the group of one: nothing.
        Assert.All(totals.Values, total => Assert.Equal(40, total));
    }
}
