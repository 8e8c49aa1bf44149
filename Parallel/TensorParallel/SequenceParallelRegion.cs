namespace Hal.Parallel.TensorParallel;

// Legend: p tp ranks, N rows (tokens, B·T flattened), Nl = N/p rows of this rank (contiguous: rank r holds rows
// [r·Nl, (r+1)·Nl)), C features.

/// <summary>
/// The boundaries of Megatron-style sequence parallelism (<c>--sp-mode split-gather</c>) inside a tp group: between the
/// tensor-parallel linears, row-wise work (norms, residual adds, dropout) runs on this rank's Nl rows only instead of
/// on all N rows replicated. Entering a column-parallel linear the rows are all-gathered (<see cref="GatherSequence"/>);
/// leaving a row-parallel linear its partial sums are reduce-scattered (<see cref="ReduceScatterSequence"/>) instead of
/// all-reduced. The backward duals swap the collectives: the gradient of an all-gather is a reduce-scatter of the
/// gradient and the gradient of a reduce-scatter is an all-gather. Any split of the rows works as long as every
/// region agrees, because the regions between the linears act on each row alone; N must be divisible by p.
/// </summary>
public sealed class SequenceParallelRegion : IDisposable
{
    private readonly TensorParallelGroup _group;

    /// <summary>The boundaries for the ranks of <paramref name="tpGroup"/>, moving tensors of <paramref name="ops"/>' device.</summary>
    /// <exception cref="ArgumentNullException">A null argument.</exception>
    /// <exception cref="ArgumentException"><paramref name="ops"/> works on another device than the group.</exception>
    public SequenceParallelRegion(Ops ops, ICommunicator tpGroup)
    {
        _group = new TensorParallelGroup(ops, tpGroup);
    }

    /// <summary>Bytes this rank has sent so far (ring count: (p−1)·Nl·C elements per call).</summary>
    public long BytesCommunicated => _group.BytesCommunicated;

    /// <summary>This rank's rows [Nl, C] of full [N, C], as a view.</summary>
    /// <exception cref="ArgumentException">N is not divisible by <paramref name="tp"/>.</exception>
    public static Tensor LocalRows(Tensor full, int rank, int tp)
    {
        ArgumentNullException.ThrowIfNull(full);
        int rows = full.Shape[0];
        if (tp < 1 || rank < 0 || rank >= tp || rows % tp != 0)
        {
            throw new ArgumentException($"sequence parallelism splits the {rows} rows over tp = {tp} ranks (rank {rank}): the rows must be divisible by tp", nameof(full));
        }
        return full.Slice(rank * (rows / tp), rows / tp);
    }

    /// <summary>full [N, C] = every rank's local [Nl, C] in rank order (all-gather). Collective over the group.</summary>
    /// <exception cref="ShapeMismatchException">full does not hold p times local's rows.</exception>
    public void GatherSequence(Tensor local, Tensor full)
    {
        CheckRows("gather sequence", local, full);
        _group.AllGather(local, full);
    }

    /// <summary>Backward of <see cref="GatherSequence"/>: dLocal [Nl, C] = this rank's rows of the sum over ranks of dFull [N, C].</summary>
    public void GatherSequenceBackward(Tensor dFull, Tensor dLocal)
    {
        CheckRows("gather sequence backward", dLocal, dFull);
        _group.ReduceScatter(dFull, dLocal);
    }

    /// <summary>local [Nl, C] = this rank's rows of the sum over ranks of partial [N, C] (reduce-scatter). Collective.</summary>
    public void ReduceScatterSequence(Tensor partial, Tensor local)
    {
        CheckRows("reduce-scatter sequence", local, partial);
        _group.ReduceScatter(partial, local);
    }

    /// <summary>Backward of <see cref="ReduceScatterSequence"/>: dFull [N, C] = every rank's dLocal [Nl, C] in rank order.</summary>
    public void ReduceScatterSequenceBackward(Tensor dLocal, Tensor dFull)
    {
        CheckRows("reduce-scatter sequence backward", dLocal, dFull);
        _group.AllGather(dLocal, dFull);
    }

    /// <summary>Releases the region; it holds no device memory between calls.</summary>
    public void Dispose() => _group.Dispose();

    /// <summary>Throws unless full is [p·Nl, ...] with local's trailing shape and dtype.</summary>
    internal static void CheckRows(string op, Tensor local, Tensor full, int size)
    {
        ArgumentNullException.ThrowIfNull(local);
        ArgumentNullException.ThrowIfNull(full);
        if (local.Rank < 1 || full.Rank != local.Rank || full.DType != local.DType || full.ElementCount != local.ElementCount * size
            || full.Shape[0] != local.Shape[0] * size)
        {
            var dims = local.Shape.ToArray();
            if (dims.Length > 0)
            {
                dims[0] *= size;
            }
            throw new ShapeMismatchException(op, new Shape(dims), full.Shape, $"the full tensor holds the {size} ranks' rows of {local.DType.Name()} {local.Shape} in rank order");
        }
    }

    private void CheckRows(string op, Tensor local, Tensor full) => CheckRows(op, local, full, _group.Size);
}
