using Hal.Collectives.InProcess;
using Hal.Parallel.Mesh;
using Hal.Parallel.Sequence;
using static Hal.Parallel.Tests.DataParallelTestKit;

namespace Hal.Parallel.Tests;

/// <summary>DeviceMesh groups over in-process ranks, and the zig-zag placement of sequence chunks.</summary>
public sealed class MeshTests
{
    [Theory]
    [InlineData(2, 2, 1, 2)]
    [InlineData(1, 8, 1, 1)]
    [InlineData(2, 1, 2, 2)]
    [InlineData(1, 2, 2, 2)]
    [InlineData(8, 1, 1, 1)]
    [InlineData(1, 1, 8, 1)]
    [InlineData(1, 1, 1, 8)]
    [InlineData(2, 2, 2, 1)]
    [InlineData(1, 3, 1, 2)]
    public void Every_group_holds_the_ranks_that_differ_only_on_its_axis(int dp, int tp, int pp, int sp)
    {
        int ranks = dp * tp * pp * sp;
        var failures = RunRanks(ranks, (world, ops, failed) =>
        {
            using var mesh = new DeviceMesh(world, dp, tp, pp, sp);
            int r = world.Rank;
            // The layout rule written out: rank = ((dp·PP + pp)·SP + sp)·TP + tp.
            int tpRank = r % tp, spRank = r / tp % sp, ppRank = r / (tp * sp) % pp, dpRank = r / (tp * sp * pp);
            string what = $"rank {r} of dp {dp} tp {tp} pp {pp} sp {sp}";
            if ((mesh.DpRank, mesh.TpRank, mesh.PpRank, mesh.SpRank) != (dpRank, tpRank, ppRank, spRank))
            {
                failed.Enqueue($"{what}: coordinates {(mesh.DpRank, mesh.TpRank, mesh.PpRank, mesh.SpRank)}, expected {(dpRank, tpRank, ppRank, spRank)}");
            }
            if (mesh.RankOf(dpRank, ppRank, spRank, tpRank) != r)
            {
                failed.Enqueue($"{what}: RankOf gives {mesh.RankOf(dpRank, ppRank, spRank, tpRank)}");
            }
            var groups = new (string Axis, ICommunicator Group, int Size, int Coordinate, Func<int, int> Member)[]
            {
                ("dp", mesh.DpGroup, dp, dpRank, i => RankOf(i, ppRank, spRank, tpRank)),
                ("tp", mesh.TpGroup, tp, tpRank, i => RankOf(dpRank, ppRank, spRank, i)),
                ("pp", mesh.PpGroup, pp, ppRank, i => RankOf(dpRank, i, spRank, tpRank)),
                ("sp", mesh.SpGroup, sp, spRank, i => RankOf(dpRank, ppRank, i, tpRank)),
                // The replicas of this rank's parameters: every (dp, sp) with its pp and tp, ordered by dp then sp.
                ("replica", mesh.ReplicaGroup, dp * sp, (dpRank * sp) + spRank, i => RankOf(i / sp, ppRank, i % sp, tpRank)),
            };
            foreach (var (axis, group, size, coordinate, member) in groups)
            {
                // The sum of world ranks over the group is a fingerprint of its membership; the sum of squares tells
                // apart groups whose sums collide.
                using var ids = ops.FromArray([r, (double)r * r], new Shape(2), DType.F64);
                group.AllReduce(ids, ids, ReduceOp.Sum);
                var sums = ops.ToDoubleArray(ids);
                double sum = 0, squares = 0;
                for (int i = 0; i < size; i++)
                {
                    sum += member(i);
                    squares += (double)member(i) * member(i);
                }
                if (group.Size != size || group.Rank != coordinate || sums[0] != sum || sums[1] != squares)
                {
                    failed.Enqueue($"{what} {axis}: size {group.Size} rank {group.Rank} sums {sums[0]}, {sums[1]}; expected {size}, {coordinate}, {sum}, {squares}");
                }
            }
        });

        Assert.True(failures.Count == 0, string.Join("\n", failures));

        int RankOf(int d, int p, int s, int t) => (((((d * pp) + p) * sp) + s) * tp) + t;
    }

    [Theory]
    [InlineData(2, 2, 1, 1)]
    [InlineData(1, 1, 1, 3)]
    [InlineData(2, 2, 2, 2)]
    public void Sizes_whose_product_is_not_the_world_size_are_refused(int dp, int tp, int pp, int sp)
    {
        var comms = InProcessWorld.Create(Devices(2));
        try
        {
            var e = Assert.Throws<MeshException>(() => new DeviceMesh(comms[0], dp, tp, pp, sp));
            int product = dp * tp * pp * sp;
            Assert.Contains($"= {product} ranks, but the communicator has 2", e.Message);
            Assert.Contains($"dp {dp} · tp {tp} · pp {pp} · sp {sp}", e.Message);
        }
        finally
        {
            foreach (var c in comms)
            {
                c.Dispose();
            }
        }
    }

    [Theory]
    [InlineData(0, 1, 1, 1)]
    [InlineData(1, -1, 1, 1)]
    [InlineData(1, 1, 0, 1)]
    [InlineData(1, 1, 1, 0)]
    public void Sizes_below_one_are_refused(int dp, int tp, int pp, int sp)
    {
        WithOneRank((comm, _) =>
        {
            var e = Assert.Throws<MeshException>(() => new DeviceMesh(comm, dp, tp, pp, sp));
            Assert.Contains($"got dp {dp}, tp {tp}, pp {pp}, sp {sp}", e.Message);
        });
    }

    [Fact]
    public void Zig_zag_positions_pair_each_chunk_with_its_mirror()
    {
        Assert.Equal([0, 1, 6, 7], ZigZag.Positions(8, 2, 0));
        Assert.Equal([2, 3, 4, 5], ZigZag.Positions(8, 2, 1));
        Assert.Equal([0, 7], ZigZag.Positions(8, 4, 0));
        Assert.Equal([3, 4], ZigZag.Positions(8, 4, 3));
        Assert.Empty(ZigZag.Positions(0, 3, 2));
    }

    [Theory]
    [InlineData(2, 4)]
    [InlineData(4, 8)]
    [InlineData(4, 32)]
    [InlineData(3, 18)]
    [InlineData(1, 16)]
    [InlineData(8, 64)]
    public void Zig_zag_positions_cover_the_sequence_once_with_equal_causal_work(int sp, int time)
    {
        var seen = new int[time];
        long? work = null;
        for (int r = 0; r < sp; r++)
        {
            var positions = ZigZag.Positions(time, sp, r);
            Assert.Equal(time / sp, positions.Length);
            foreach (int p in positions)
            {
                seen[p]++;
            }
            // Causal work of a rank: Σ over its tokens of the keys they see (p + 1); zig-zag makes it the same for all.
            long rankWork = positions.Sum(p => (long)p + 1);
            work ??= rankWork;
            Assert.Equal(work, rankWork);
        }
        Assert.All(seen, count => Assert.Equal(1, count));
    }

    [Theory]
    [InlineData(2, 1, 8, 3)]
    [InlineData(4, 2, 16, 1)]
    [InlineData(3, 2, 12, 5)]
    public void Shard_takes_the_rows_at_the_positions_and_unshard_puts_them_back(int sp, int batch, int time, int row)
    {
        using var device = new Hal.Backends.Cpu.CpuBackend().Open(0);
        var ops = new Ops(device);
        var values = Enumerable.Range(0, batch * time * row).Select(i => (double)i).ToArray();
        using var full = ops.FromArray(values, new Shape(batch, time, row), DType.F32);
        using var rebuilt = ops.Full(full.Shape, -1, DType.F32);
        for (int r = 0; r < sp; r++)
        {
            var positions = ZigZag.Positions(time, sp, r);
            using var local = ops.Empty(new Shape(batch, time / sp, row), DType.F32);

            ZigZag.Shard(ops, full, sp, r, local);
            ZigZag.Unshard(ops, local, sp, r, rebuilt);

            var got = ops.ToDoubleArray(local);
            for (int b = 0; b < batch; b++)
            {
                for (int i = 0; i < positions.Length; i++)
                {
                    for (int c = 0; c < row; c++)
                    {
                        Assert.Equal(values[(((b * time) + positions[i]) * row) + c], got[(((b * positions.Length) + i) * row) + c]);
                    }
                }
            }
        }
        Assert.Equal(values, ops.ToDoubleArray(rebuilt));
    }

    [Fact]
    public void Unshard_writes_only_this_ranks_rows()
    {
        using var device = new Hal.Backends.Cpu.CpuBackend().Open(0);
        var ops = new Ops(device);
        using var full = ops.Full(new Shape(1, 8, 2), -1, DType.F32);
        using var local = ops.Full(new Shape(1, 4, 2), 5, DType.F32);

        ZigZag.Unshard(ops, local, 2, 1, full);

        // Rank 1 of 2 holds tokens 2..5.
        Assert.Equal([-1, -1, -1, -1, 5, 5, 5, 5, 5, 5, 5, 5, -1, -1, -1, -1], ops.ToDoubleArray(full));
    }

    [Theory]
    [InlineData(10, 2)]
    [InlineData(6, 4)]
    [InlineData(9, 3)]
    public void A_length_not_a_multiple_of_two_sp_is_refused(int time, int sp)
    {
        var e = Assert.Throws<ArgumentException>(() => ZigZag.Positions(time, sp, 0));
        Assert.Contains($"multiple of {2 * sp}", e.Message);
        using var device = new Hal.Backends.Cpu.CpuBackend().Open(0);
        var ops = new Ops(device);
        using var full = ops.Zeros(new Shape(1, time, 2));
        using var local = ops.Zeros(new Shape(1, Math.Max(1, time / sp), 2));
        Assert.Throws<ArgumentException>(() => ZigZag.Shard(ops, full, sp, 0, local));
    }
}
