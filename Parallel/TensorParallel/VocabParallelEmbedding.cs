namespace Hal.Parallel.TensorParallel;

// Legend: p tp ranks, V vocabulary, Vl = ⌈V/p⌉ rows per rank (see VocabShard), C channels, N ids (any shape,
// flattened), Nl = N/p rows of this rank in sequence-parallel mode.

/// <summary>
/// A token embedding whose table is split by vocabulary rows over the tp ranks: each rank looks up the ids it holds
/// (other ids give a zero row) and the partial rows are summed over ranks by one all-reduce; exactly one rank contributes
/// a non-zero row per id, so the sum equals a whole-table lookup bit for bit. In sequence-parallel mode the sum is
/// reduce-scattered instead, leaving this rank's rows [Nl, C], and backward all-gathers dy first. Backward index-adds
/// the rows of dy whose ids this rank holds into the gradient shard (accumulating); other rows add zero.
/// </summary>
public sealed class VocabParallelEmbedding : IDisposable
{
    private const string Prefix = "vocab.embedding";
    private readonly TensorParallelGroup _group;

    /// <summary>An embedding over a V-row table split over the ranks of <paramref name="tpGroup"/>.</summary>
    /// <exception cref="ArgumentNullException">A null argument.</exception>
    /// <exception cref="ArgumentException"><paramref name="ops"/> works on another device than the group.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="vocabSize"/> below 1.</exception>
    public VocabParallelEmbedding(Ops ops, ICommunicator tpGroup, int vocabSize, bool sequenceParallel = false)
    {
        _group = new TensorParallelGroup(ops, tpGroup);
        Shard = new VocabShard(vocabSize, tpGroup.Size, tpGroup.Rank);
        SequenceParallel = sequenceParallel;
    }

    /// <summary>This rank's vocabulary rows.</summary>
    public VocabShard Shard { get; }

    /// <summary>True when the output leaves as this rank's rows.</summary>
    public bool SequenceParallel { get; }

    /// <summary>Bytes this rank has sent so far (ring count, see <see cref="SequenceParallelRegion"/>).</summary>
    public long BytesCommunicated => _group.BytesCommunicated;

    /// <summary>
    /// y [N, C] = table[ids] from this rank's shard weight [Vl, C] and ids (I32/I64, values in [0, V)), summed over ranks;
    /// in sequence-parallel mode y [Nl, C] is this rank's rows of it. Collective.
    /// </summary>
    /// <exception cref="ArgumentException">ids is not I32/I64, or the shard is not [Vl, C].</exception>
    /// <exception cref="ShapeMismatchException">y does not hold the rows.</exception>
    public void Forward(Tensor weight, Tensor ids, Tensor y)
    {
        ArgumentNullException.ThrowIfNull(weight);
        ArgumentNullException.ThrowIfNull(ids);
        ArgumentNullException.ThrowIfNull(y);
        Check(weight, ids);
        var ops = _group.Ops;
        int n = (int)ids.ElementCount, c = weight.Shape[1];
        var (index, keep) = Masks(ids, weight.DType);
        var rows = SequenceParallel ? _group.Scratch(Prefix + ".partial", new Shape(n, c), weight.DType) : y.Reshape(n, c);
        ops.IndexSelect(weight, 0, index, rows);
        ops.Binary(BinaryOp.Mul, rows, keep, rows);
        if (SequenceParallel)
        {
            var local = y.Reshape((int)(y.ElementCount / c), c);
            SequenceParallelRegion.CheckRows("vocab-parallel embedding", local, rows, _group.Size);
            _group.ReduceScatter(rows, local);
        }
        else
        {
            _group.AllReduce(rows, ReduceOp.Sum);
        }
    }

    /// <summary>
    /// Adds into the gradient shard [Vl, C] the rows of dy ([N, C], or this rank's rows [Nl, C] in sequence-parallel
    /// mode, gathered here: collective) whose ids (as passed to <see cref="Forward"/>) this rank holds.
    /// </summary>
    public void Backward(Tensor ids, Tensor dy, Tensor weightGrad)
    {
        ArgumentNullException.ThrowIfNull(ids);
        ArgumentNullException.ThrowIfNull(dy);
        ArgumentNullException.ThrowIfNull(weightGrad);
        Check(weightGrad, ids);
        var ops = _group.Ops;
        int n = (int)ids.ElementCount, c = weightGrad.Shape[1];
        var dyRows = dy.Reshape((int)(dy.ElementCount / c), c);
        if (SequenceParallel)
        {
            var full = _group.Scratch(Prefix + ".dy.gathered", new Shape(dyRows.Shape[0] * _group.Size, c), dy.DType);
            _group.AllGather(dyRows, full);
            dyRows = full;
        }
        var (index, keep) = Masks(ids, dy.DType);
        var masked = _group.Scratch(Prefix + ".dy.masked", new Shape(n, c), dy.DType);
        ops.Binary(BinaryOp.Mul, dyRows, keep, masked);
        ops.IndexAdd(masked, 0, index, weightGrad);
    }

    /// <summary>Frees the scratch.</summary>
    public void Dispose() => _group.Dispose();

    private (Tensor Index, Tensor Keep) Masks(Tensor ids, DType dtype)
    {
        int n = (int)ids.ElementCount;
        var index = _group.Scratch(Prefix + ".index", new Shape(n), ids.DType);
        var keep = _group.Scratch(Prefix + ".keep", new Shape(n, 1), dtype);
        VocabMask.InRange(_group, Prefix, ids, Shard.Start, Shard.LocalRows, index, keep);
        return (index, keep);
    }

    private void Check(Tensor weight, Tensor ids)
    {
        if (!ids.DType.IsIndex())
        {
            throw new ArgumentException($"vocab-parallel embedding: ids must be I32 or I64, not {ids.DType.Name()}", nameof(ids));
        }
        if (weight.Rank != 2 || weight.Shape[0] != Shard.LocalRows)
        {
            throw new ArgumentException(
                $"vocab-parallel embedding: the shard must be [{Shard.LocalRows}, C] (V {Shard.VocabSize} padded to {Shard.PaddedVocabSize} over tp {Shard.TpSize}), got {weight.Shape}",
                nameof(weight));
        }
    }
}
