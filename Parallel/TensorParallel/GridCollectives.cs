using System.Globalization;

namespace Hal.Parallel.TensorParallel;

// Legend: g ranks of the group a collective runs over, S bytes of the tensor it moves (the full, summed, gathered or
// broadcast tensor; for a reduce-scatter and an all-gather, S/g is one rank's block).

/// <summary>
/// The counted collectives of a 2D, 2.5D or 3D layer, over whichever grid group each step uses, and the layer's scratch.
/// Bytes are what one rank sends in a ring implementation, as in <see cref="TensorParallelGroup"/>: all-reduce
/// 2·(g−1)/g·S, all-gather and reduce-scatter (g−1)/g·S, and a broadcast (g−1)/g·S, the per-rank average of a pipelined
/// ring broadcast (the root and every relay send S once, the last rank nothing). A group of one rank sends nothing.
/// </summary>
internal sealed class GridCollectives : IDisposable
{
    private readonly Dictionary<string, Tensor> _scratch = [];

    public GridCollectives(Ops ops, ICommunicator tp)
    {
        ArgumentNullException.ThrowIfNull(ops);
        ArgumentNullException.ThrowIfNull(tp);
        if (!ReferenceEquals(ops.Device, tp.Device))
        {
            throw new ArgumentException($"the ops work on {ops.Device.Id} but the tp group's rank {tp.Rank} uses {tp.Device.Id}; pass the Ops of the group's device", nameof(ops));
        }
        Ops = ops;
    }

    public Ops Ops { get; }

    public long BytesCommunicated { get; private set; }

    /// <summary>The bytes one rank sends for a broadcast of <paramref name="bytes"/> over <paramref name="ranks"/> ranks.</summary>
    public static long BroadcastBytes(long bytes, int ranks) => (ranks - 1) * bytes / ranks;

    /// <summary>The bytes one rank sends for an all-reduce of <paramref name="bytes"/>.</summary>
    public static long AllReduceBytes(long bytes, int ranks) => 2 * (ranks - 1) * bytes / ranks;

    /// <summary>The bytes one rank sends for an all-gather or reduce-scatter whose gathered (full) tensor has <paramref name="bytes"/>.</summary>
    public static long GatherBytes(long bytes, int ranks) => (ranks - 1) * bytes / ranks;

    /// <summary>tensor on every rank = tensor on <paramref name="root"/>; the root's tensor is only read.</summary>
    public void Broadcast(ICommunicator group, Tensor tensor, int root)
    {
        if (group.Size == 1)
        {
            return;
        }
        group.Broadcast(tensor, root);
        BytesCommunicated += BroadcastBytes(tensor.SizeInBytes, group.Size);
    }

    /// <summary>tensor = sum over the group, in place.</summary>
    public void AllReduce(ICommunicator group, Tensor tensor, ReduceOp op = ReduceOp.Sum)
    {
        if (group.Size == 1)
        {
            return;
        }
        group.AllReduce(tensor, tensor, op);
        BytesCommunicated += AllReduceBytes(tensor.SizeInBytes, group.Size);
    }

    /// <summary>full (g × local elements) = every rank's local in group order.</summary>
    public void AllGather(ICommunicator group, Tensor local, Tensor full)
    {
        if (group.Size == 1)
        {
            Ops.Copy(local, full);
            return;
        }
        group.AllGather(local, full);
        BytesCommunicated += GatherBytes(full.SizeInBytes, group.Size);
    }

    /// <summary>local (full elements / g) = block (group rank) of the sum over the group of full.</summary>
    public void ReduceScatter(ICommunicator group, Tensor full, Tensor local)
    {
        if (group.Size == 1)
        {
            Ops.Copy(full, local);
            return;
        }
        group.ReduceScatter(full, local, ReduceOp.Sum);
        BytesCommunicated += GatherBytes(full.SizeInBytes, group.Size);
    }

    /// <summary>A tensor kept between calls under <paramref name="name"/>, reallocated when the shape or dtype changes.</summary>
    public Tensor Scratch(string name, Shape shape, DType dtype)
    {
        if (_scratch.TryGetValue(name, out var t))
        {
            if (t.Shape == shape && t.DType == dtype)
            {
                return t;
            }
            t.Dispose();
        }
        t = Ops.Empty(shape, dtype);
        _scratch[name] = t;
        return t;
    }

    /// <summary>The scratch tensor of that name if one exists.</summary>
    public Tensor? Existing(string name) => _scratch.GetValueOrDefault(name);

    /// <summary>A one-element tensor holding <paramref name="value"/> (for broadcasting), cached.</summary>
    public Tensor Constant(double value, DType dtype)
    {
        string name = string.Create(CultureInfo.InvariantCulture, $"constant:{value:R}:{dtype}");
        if (!_scratch.TryGetValue(name, out var t))
        {
            t = Ops.Full(new Shape(1), value, dtype);
            _scratch[name] = t;
        }
        return t;
    }

    /// <summary>Frees the scratch tensors.</summary>
    public void Dispose()
    {
        foreach (var t in _scratch.Values)
        {
            t.Dispose();
        }
        _scratch.Clear();
    }
}
