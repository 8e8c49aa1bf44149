namespace Hal.Parallel.TensorParallel;

// Legend: p ranks in the tp group, S bytes of the tensor a collective moves (the full, summed or gathered tensor).

/// <summary>
/// The collectives a tensor-parallel layer issues, counted, and the layer's reusable scratch tensors. Bytes are what
/// one rank sends in a ring implementation: all-reduce 2·(p−1)/p·S, all-gather and reduce-scatter (p−1)/p·S each, so a
/// reduce-scatter followed by an all-gather costs exactly one all-reduce. A group of one rank communicates nothing
/// (the collective becomes a copy or nothing at all).
/// </summary>
internal sealed class TensorParallelGroup : IDisposable
{
    private readonly GridCollectives _collectives;

    /// <summary>The tp group on the device of <paramref name="ops"/>.</summary>
    /// <exception cref="ArgumentException">the group's device is not the ops' device.</exception>
    public TensorParallelGroup(Ops ops, ICommunicator group)
    {
        _collectives = new GridCollectives(ops, group);
        Group = group;
    }

    /// <summary>The device's entry.</summary>
    public Ops Ops => _collectives.Ops;

    /// <summary>The tp group.</summary>
    public ICommunicator Group { get; }

    /// <summary>Ranks in the group.</summary>
    public int Size => Group.Size;

    /// <summary>This rank's place in the group.</summary>
    public int Rank => Group.Rank;

    /// <summary>Ring bytes this rank sent so far.</summary>
    public long BytesCommunicated => _collectives.BytesCommunicated;

    /// <summary>In-place all-reduce over the group (nothing with one rank).</summary>
    public void AllReduce(Tensor tensor, ReduceOp op) => _collectives.AllReduce(Group, tensor, op);

    /// <summary>full = the ranks' local blocks in rank order (a copy with one rank).</summary>
    public void AllGather(Tensor local, Tensor full) => _collectives.AllGather(Group, local, full);

    /// <summary>local = this rank's block of the sum of every rank's full (a copy with one rank).</summary>
    public void ReduceScatter(Tensor full, Tensor local) => _collectives.ReduceScatter(Group, full, local);

    /// <summary>A named scratch tensor of that shape and dtype, reused while they match.</summary>
    public Tensor Scratch(string name, Shape shape, DType dtype) => _collectives.Scratch(name, shape, dtype);

    /// <summary>The scratch tensor of that name if one exists.</summary>
    public Tensor? Existing(string name) => _collectives.Existing(name);

    /// <summary>A one-element tensor holding <paramref name="value"/> (for broadcasting), cached.</summary>
    public Tensor Constant(double value, DType dtype) => _collectives.Constant(value, dtype);

    /// <summary>Frees the scratch tensors.</summary>
    public void Dispose() => _collectives.Dispose();
}
