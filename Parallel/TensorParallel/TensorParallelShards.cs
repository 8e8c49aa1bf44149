namespace Hal.Parallel.TensorParallel;

// Legend: p tp ranks, r this rank, s segments (blocks of the split axis sharded separately, e.g. q | k | v),
// w = (axis length)/(s·p) elements of one segment per rank. A 2-D weight [R, K] is viewed as [outer, p, inner]
// with rank r's shard the slice [outer, r, inner]: splitting columns, outer = R·s and inner = w; splitting rows,
// outer = s and inner = w·K. A 1-D bias [K] splits like a row vector [1, K].

/// <summary>Which features of a linear layer's weight are split over the tp ranks.</summary>
public enum ShardedFeatures
{
    /// <summary>The output features (column-parallel linear; its bias splits the same way).</summary>
    Output,

    /// <summary>The input features (row-parallel linear; its bias stays whole).</summary>
    Input,
}

/// <summary>
/// Cuts a full weight or bias into one rank's tensor-parallel shard and puts shards back together, in either weight
/// layout. With <c>segments</c> &gt; 1 the split axis is first cut into that many equal blocks and each block is split
/// over the ranks (a fused q | k | v projection split by heads keeps every rank's q, k and v heads together).
/// Vocabulary tables pad to a multiple of p rows (see <see cref="VocabShard"/>) with <see cref="SplitVocab"/> and
/// <see cref="GatherVocab"/>. All copies are exact.
/// </summary>
public static class TensorParallelShards
{
    /// <summary>The shape of one rank's shard of a full tensor of shape <paramref name="full"/>.</summary>
    /// <exception cref="ArgumentException">The split axis is not divisible by segments·p, or the tensor is not 1-D or 2-D.</exception>
    public static Shape ShardShape(Shape full, WeightLayout layout, ShardedFeatures features, int tp, int segments = 1)
    {
        ArgumentNullException.ThrowIfNull(full);
        var (axis, length) = SplitAxis(full, layout, features, tp, segments);
        var dims = full.ToArray();
        dims[axis] = length / tp;
        return new Shape(dims);
    }

    /// <summary>shard = rank <paramref name="rank"/>'s part of <paramref name="full"/> (both on the device of <paramref name="ops"/>).</summary>
    /// <exception cref="ArgumentException">The split axis is not divisible by segments·p, or rank is outside [0, p).</exception>
    /// <exception cref="ShapeMismatchException">shard does not have <see cref="ShardShape"/>.</exception>
    public static void Split(Ops ops, Tensor full, Tensor shard, WeightLayout layout, ShardedFeatures features, int rank, int tp, int segments = 1)
    {
        ArgumentNullException.ThrowIfNull(ops);
        ArgumentNullException.ThrowIfNull(full);
        ArgumentNullException.ThrowIfNull(shard);
        CheckRank(rank, tp);
        var (outer, inner) = View(full, shard, layout, features, tp, segments);
        using var index = ops.FromArray([(long)rank], new Shape(1), DType.I64);
        ops.IndexSelect(full.Reshape(outer, tp, inner), 1, index, shard.Reshape(outer, 1, inner));
    }

    /// <summary>full = the shards of ranks 0..p−1 (p = shards.Count) put back in place, on one device.</summary>
    /// <exception cref="ShapeMismatchException">A shard does not have <see cref="ShardShape"/> of full.</exception>
    public static void Gather(Ops ops, IReadOnlyList<Tensor> shards, Tensor full, WeightLayout layout, ShardedFeatures features, int segments = 1)
    {
        ArgumentNullException.ThrowIfNull(ops);
        ArgumentNullException.ThrowIfNull(shards);
        ArgumentNullException.ThrowIfNull(full);
        int tp = shards.Count;
        if (tp == 0)
        {
            throw new ArgumentException("gathering a weight needs at least one shard", nameof(shards));
        }
        var (outer, inner) = View(full, shards[0], layout, features, tp, segments);
        using var stacked = ops.Empty(new Shape(tp, outer * inner), full.DType);
        for (int r = 0; r < tp; r++)
        {
            if (shards[r].Shape != shards[0].Shape || shards[r].DType != full.DType)
            {
                throw new ShapeMismatchException("gather shards", shards[0].Shape, shards[r].Shape, $"shard {r} must match shard 0 and be {full.DType.Name()}");
            }
            ops.Copy(shards[r].Reshape(outer * inner), stacked.View((long)r * outer * inner, new Shape(outer * inner)));
        }
        Assemble(ops, stacked, full, outer, inner);
    }

    /// <summary>full (on every rank) = every rank's shard put back in place. Collective over <paramref name="tpGroup"/> (one all-gather).</summary>
    /// <exception cref="ShapeMismatchException">shard does not have <see cref="ShardShape"/> of full.</exception>
    public static void Gather(Ops ops, ICommunicator tpGroup, Tensor shard, Tensor full, WeightLayout layout, ShardedFeatures features, int segments = 1)
    {
        ArgumentNullException.ThrowIfNull(ops);
        ArgumentNullException.ThrowIfNull(tpGroup);
        ArgumentNullException.ThrowIfNull(shard);
        ArgumentNullException.ThrowIfNull(full);
        int tp = tpGroup.Size;
        var (outer, inner) = View(full, shard, layout, features, tp, segments);
        using var stacked = ops.Empty(new Shape(tp, outer * inner), full.DType);
        tpGroup.AllGather(shard, stacked);
        Assemble(ops, stacked, full, outer, inner);
    }

    /// <summary>shard [Vl, C] = rows [r·Vl, r·Vl + Vl) of full [V, C], with zeros for the padding rows at or past V.</summary>
    /// <exception cref="ShapeMismatchException">The shard is not [Vl, C].</exception>
    public static void SplitVocab(Ops ops, Tensor full, Tensor shard, int rank, int tp)
    {
        ArgumentNullException.ThrowIfNull(ops);
        ArgumentNullException.ThrowIfNull(full);
        ArgumentNullException.ThrowIfNull(shard);
        var vocab = new VocabShard(full.Shape[0], tp, rank);
        CheckVocabShard(full, shard, vocab);
        if (vocab.ValidRows > 0)
        {
            ops.Copy(full.Slice(vocab.Start, vocab.ValidRows), shard.Slice(0, vocab.ValidRows));
        }
        if (vocab.ValidRows < vocab.LocalRows)
        {
            ops.Fill(shard.Slice(vocab.ValidRows, vocab.LocalRows - vocab.ValidRows), 0);
        }
    }

    /// <summary>full [V, C] (on every rank) = the first V rows of the ranks' shards stacked in rank order. Collective (one all-gather).</summary>
    /// <exception cref="ShapeMismatchException">The shard is not [Vl, C].</exception>
    public static void GatherVocab(Ops ops, ICommunicator tpGroup, Tensor shard, Tensor full)
    {
        ArgumentNullException.ThrowIfNull(ops);
        ArgumentNullException.ThrowIfNull(tpGroup);
        ArgumentNullException.ThrowIfNull(shard);
        ArgumentNullException.ThrowIfNull(full);
        var vocab = new VocabShard(full.Shape[0], tpGroup.Size, tpGroup.Rank);
        CheckVocabShard(full, shard, vocab);
        using var padded = ops.Empty(new Shape(vocab.PaddedVocabSize, full.Shape[1]), full.DType);
        tpGroup.AllGather(shard, padded);
        ops.Copy(padded.Slice(0, vocab.VocabSize), full);
    }

    /// <summary>full viewed [outer, p, inner] ← stacked [p, outer·inner] (slice r along the middle axis = rank r's shard).</summary>
    private static void Assemble(Ops ops, Tensor stacked, Tensor full, int outer, int inner)
    {
        int tp = stacked.Shape[0];
        if (tp == 1)
        {
            ops.Copy(stacked.Reshape(full.Shape.ToArray()), full);
            return;
        }
        // IndexAdd into zeros writes each shard exactly (0 + v = v); the contract has no strided copy.
        var view = full.Reshape(outer, tp, inner);
        ops.Fill(full, 0);
        for (int r = 0; r < tp; r++)
        {
            using var index = ops.FromArray([(long)r], new Shape(1), DType.I64);
            ops.IndexAdd(stacked.View((long)r * outer * inner, new Shape(outer, 1, inner)), 1, index, view);
        }
    }

    /// <summary>(outer, inner) of the [outer, p, inner] view, after checking shard has the shard shape of full.</summary>
    private static (int Outer, int Inner) View(Tensor full, Tensor shard, WeightLayout layout, ShardedFeatures features, int tp, int segments)
    {
        var expected = ShardShape(full.Shape, layout, features, tp, segments);
        if (shard.Shape != expected || shard.DType != full.DType)
        {
            throw new ShapeMismatchException("tensor-parallel shard", expected, shard.Shape,
                $"a {features} shard over tp {tp} ({segments} segments) of {full.DType.Name()} {full.Shape} in layout {layout}");
        }
        var (axis, length) = SplitAxis(full.Shape, layout, features, tp, segments);
        int w = length / (segments * tp);
        if (full.Rank == 1)
        {
            return (segments, w);
        }
        return axis == 1 ? (full.Shape[0] * segments, w) : (segments, w * full.Shape[1]);
    }

    /// <summary>The axis split and its length; checks divisibility.</summary>
    private static (int Axis, int Length) SplitAxis(Shape full, WeightLayout layout, ShardedFeatures features, int tp, int segments)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(tp, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(segments, 1);
        int axis = full.Rank switch
        {
            1 => 0,
            2 => (layout == WeightLayout.InOut) == (features == ShardedFeatures.Output) ? 1 : 0,
            _ => throw new ArgumentException($"a tensor-parallel shard splits a 1-D bias or a 2-D weight, not {full}", nameof(full)),
        };
        int length = full[axis];
        if (length % (segments * tp) != 0)
        {
            throw new ArgumentException(
                $"axis {axis} of {full} ({features} features, layout {layout}) has {length} elements, not divisible by {segments} segments × tp {tp}",
                nameof(full));
        }
        return (axis, length);
    }

    private static void CheckRank(int rank, int tp)
    {
        if (rank < 0 || rank >= tp)
        {
            throw new ArgumentException($"rank {rank} is outside the tp group [0, {tp})", nameof(rank));
        }
    }

    private static void CheckVocabShard(Tensor full, Tensor shard, VocabShard vocab)
    {
        var expected = new Shape(vocab.LocalRows, full.Rank == 2 ? full.Shape[1] : 0);
        if (full.Rank != 2 || shard.Shape != expected || shard.DType != full.DType)
        {
            throw new ShapeMismatchException("vocabulary shard", expected, shard.Shape, $"rows of {full.DType.Name()} {full.Shape} padded to {vocab.PaddedVocabSize} over tp {vocab.TpSize}");
        }
    }
}
