using System.Globalization;

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
    private readonly Dictionary<string, Tensor> _scratch = [];

    public TensorParallelGroup(Ops ops, ICommunicator group)
    {
        ArgumentNullException.ThrowIfNull(ops);
        ArgumentNullException.ThrowIfNull(group);
        if (!ReferenceEquals(ops.Device, group.Device))
        {
            throw new ArgumentException($"the ops work on {ops.Device.Id} but the tp group's rank {group.Rank} uses {group.Device.Id}; pass the Ops of the group's device", nameof(ops));
        }
        Ops = ops;
        Group = group;
    }

    public Ops Ops { get; }

    public ICommunicator Group { get; }

    public int Size => Group.Size;

    public int Rank => Group.Rank;

    public long BytesCommunicated { get; private set; }

    /// <summary>tensor = op over ranks of tensor, in place.</summary>
    public void AllReduce(Tensor tensor, ReduceOp op)
    {
        if (Size == 1)
        {
            return;
        }
        Group.AllReduce(tensor, tensor, op);
        BytesCommunicated += 2 * (Size - 1) * tensor.SizeInBytes / Size;
    }

    /// <summary>full (p × local elements) = every rank's local in rank order.</summary>
    public void AllGather(Tensor local, Tensor full)
    {
        if (Size == 1)
        {
            Ops.Copy(local, full);
            return;
        }
        Group.AllGather(local, full);
        BytesCommunicated += (Size - 1) * local.SizeInBytes;
    }

    /// <summary>local (full elements / p) = block Rank of the sum over ranks of full.</summary>
    public void ReduceScatter(Tensor full, Tensor local)
    {
        if (Size == 1)
        {
            Ops.Copy(full, local);
            return;
        }
        Group.ReduceScatter(full, local, ReduceOp.Sum);
        BytesCommunicated += (Size - 1) * local.SizeInBytes;
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
