using Hal.Backends.Cpu;
using Hal.Parallel.TensorParallel;
using static Hal.Parallel.Tests.DataParallelTestKit;
using static Hal.Parallel.Tests.HostMath;

namespace Hal.Parallel.Tests;

// Legend: p tp ranks, r rank, S segments, [R, K] a stored 2-D weight, w elements of one segment per rank.

public sealed partial class TensorParallel1DTests
{
    [Theory]
    [InlineData(1, 1)]
    [InlineData(2, 1)]
    [InlineData(4, 1)]
    [InlineData(2, 3)]
    [InlineData(4, 3)]
    [InlineData(3, 2)]
    public void Shards_split_and_gather_back_exactly_in_every_layout(int tp, int segments)
    {
        using var device = new CpuBackend().Open(0);
        var ops = new Ops(device);
        const int other = 5, w = 2;
        int split = segments * tp * w;
        foreach (var layout in new[] { WeightLayout.InOut, WeightLayout.OutIn })
        {
            foreach (var features in new[] { ShardedFeatures.Output, ShardedFeatures.Input })
            {
                // The axis split: columns for (InOut, Output) and (OutIn, Input), rows otherwise.
                bool splitColumns = (layout == WeightLayout.InOut) == (features == ShardedFeatures.Output);
                int rows = splitColumns ? other : split, cols = splitColumns ? split : other;
                var full = Enumerable.Range(0, rows * cols).Select(i => (double)i).ToArray();
                using var fullTensor = ops.FromArray(full, new Shape(rows, cols), DType.F32);
                var shards = new List<Tensor>();
                for (int r = 0; r < tp; r++)
                {
                    var shard = ops.Empty(TensorParallelShards.ShardShape(fullTensor.Shape, layout, features, tp, segments), DType.F32);
                    TensorParallelShards.Split(ops, fullTensor, shard, layout, features, r, tp, segments);
                    shards.Add(shard);
                    // Segment s, rank r: elements [s·(split/S) + r·w, … + w) of the split axis, segments concatenated.
                    var expected = new List<double>();
                    var pieces = Enumerable.Range(0, segments).Select(s => (s * split / segments) + (r * w)).ToArray();
                    if (splitColumns)
                    {
                        for (int i = 0; i < rows; i++)
                        {
                            foreach (int start in pieces)
                            {
                                expected.AddRange(full.Skip((i * cols) + start).Take(w));
                            }
                        }
                    }
                    else
                    {
                        foreach (int start in pieces)
                        {
                            expected.AddRange(Rows(full, cols, start, w));
                        }
                    }
                    Assert.Equal(expected.ToArray(), ops.ToDoubleArray(shard));
                }
                using var gathered = ops.Empty(fullTensor.Shape, DType.F32);
                TensorParallelShards.Gather(ops, shards, gathered, layout, features, segments);
                Assert.Equal(full, ops.ToDoubleArray(gathered));
                shards.ForEach(s => s.Dispose());
            }
        }
        // A 1-D bias splits along its only axis, segment by segment, whatever the layout.
        var bias = Enumerable.Range(0, split).Select(i => (double)i).ToArray();
        using var biasTensor = ops.FromArray(bias, new Shape(split), DType.F64);
        using var biasShard = ops.Empty(new Shape(split / tp), DType.F64);
        TensorParallelShards.Split(ops, biasTensor, biasShard, WeightLayout.OutIn, ShardedFeatures.Output, tp - 1, tp, segments);
        var expectedBias = Enumerable.Range(0, segments).SelectMany(s => bias.Skip((s * split / segments) + ((tp - 1) * w)).Take(w)).ToArray();
        Assert.Equal(expectedBias, ops.ToDoubleArray(biasShard));
    }

    [Fact]
    public void A_split_axis_not_divisible_by_segments_times_tp_is_refused()
    {
        var e = Assert.Throws<ArgumentException>(() => TensorParallelShards.ShardShape(new Shape(6, 10), WeightLayout.InOut, ShardedFeatures.Output, 4));
        Assert.Contains("10 elements, not divisible by 1 segments × tp 4", e.Message, StringComparison.Ordinal);
        e = Assert.Throws<ArgumentException>(() => TensorParallelShards.ShardShape(new Shape(12, 8), WeightLayout.OutIn, ShardedFeatures.Output, 2, segments: 5));
        Assert.Contains("12 elements, not divisible by 5 segments × tp 2", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(1, 5)]
    [InlineData(2, 13)]
    [InlineData(4, 13)]
    [InlineData(4, 5)]
    [InlineData(4, 16)]
    public void Vocab_tables_pad_to_a_multiple_of_tp_and_gather_back_exactly(int tp, int vocab)
    {
        const int c = 3;
        var full = Enumerable.Range(1, vocab * c).Select(i => (double)i).ToArray();
        var failures = RunRanks(tp, (comm, ops, failed) =>
        {
            int r = comm.Rank;
            var shard = new VocabShard(vocab, tp, r);
            using var fullTensor = ops.FromArray(full, new Shape(vocab, c), DType.F32);
            using var local = ops.Full(new Shape(shard.LocalRows, c), double.NaN, DType.F32);
            TensorParallelShards.SplitVocab(ops, fullTensor, local, r, tp);
            using var gathered = ops.Empty(fullTensor.Shape, DType.F32);
            TensorParallelShards.GatherVocab(ops, comm, local, gathered);

            // Rows r·Vl … of the table, then zeros for the rows past V.
            var expected = new double[shard.LocalRows * c];
            for (int i = 0; i < shard.LocalRows * c; i++)
            {
                long global = ((long)shard.Start * c) + i;
                expected[i] = global < full.Length ? full[global] : 0;
            }
            Check(failed, $"tp {tp} rank {r} V {vocab} shard", ops.ToDoubleArray(local), i => expected[i]);
            Check(failed, $"tp {tp} rank {r} V {vocab} gathered", ops.ToDoubleArray(gathered), i => full[i]);
            int vl = (vocab + tp - 1) / tp;
            if (shard.LocalRows != vl || shard.PaddedVocabSize != vl * tp || shard.ValidRows != Math.Clamp(vocab - (r * vl), 0, vl))
            {
                failed.Enqueue($"tp {tp} rank {r} V {vocab}: shard {shard}");
            }
        });
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(4)]
    public void Sequence_regions_gather_and_reduce_scatter_rows_with_their_duals(int tp)
    {
        const int nl = 3, c = 5;
        int n = nl * tp;
        var failures = RunRanks(tp, (comm, ops, failed) =>
        {
            int r = comm.Rank;
            using var region = new SequenceParallelRegion(ops, comm);
            // Rank r's value at (i, j) is Value(r, i·C + j): small integers, so every sum is exact.
            using var local = ops.FromArray(Values(r, nl * c), new Shape(nl, c), DType.F32);
            using var full = ops.Empty(new Shape(n, c), DType.F32);
            region.GatherSequence(local, full);
            Check(failed, $"tp {tp} rank {r} gather", ops.ToDoubleArray(full), i => Value((int)(i / (nl * c)), i % (nl * c)));

            using var partial = ops.FromArray(Values(r, n * c), new Shape(n, c), DType.F32);
            using var mine = ops.Empty(new Shape(nl, c), DType.F32);
            region.ReduceScatterSequence(partial, mine);
            Check(failed, $"tp {tp} rank {r} reduce-scatter", ops.ToDoubleArray(mine), i => Enumerable.Range(0, tp).Sum(j => Value(j, (r * nl * c) + i)));

            // The duals: the gradient of a gather is a reduce-scatter and that of a reduce-scatter a gather.
            region.GatherSequenceBackward(partial, mine);
            Check(failed, $"tp {tp} rank {r} gather backward", ops.ToDoubleArray(mine), i => Enumerable.Range(0, tp).Sum(j => Value(j, (r * nl * c) + i)));
            region.ReduceScatterSequenceBackward(local, full);
            Check(failed, $"tp {tp} rank {r} reduce-scatter backward", ops.ToDoubleArray(full), i => Value((int)(i / (nl * c)), i % (nl * c)));
            using var localRows = ops.FromArray(Rows(Enumerable.Range(0, n * c).Select(i => (double)i).ToArray(), c, 0, n), new Shape(n, c), DType.F32);
            Check(failed, $"tp {tp} rank {r} local rows", ops.ToDoubleArray(SequenceParallelRegion.LocalRows(localRows, r, tp)), i => (r * nl * c) + i);

            // Four calls, each moving (p−1) blocks of [Nl, C] F32.
            long expectedBytes = 4L * (tp - 1) * nl * c * sizeof(float);
            if (region.BytesCommunicated != expectedBytes)
            {
                failed.Enqueue($"tp {tp} rank {r}: {region.BytesCommunicated} bytes, expected {expectedBytes}");
            }
        });
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }
}
