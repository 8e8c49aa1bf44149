namespace Hal.Models.Nn;

// Legend: p ranks in the tensor-parallel group, S bytes of the tensor an all-reduce sums.

/// <summary>
/// The tensor-parallel group a model's modules reduce over, with the workspace they take scratch from. Counts the
/// bytes this rank sends (a ring all-reduce sends 2·(p−1)/p·S); a group of one rank communicates nothing.
/// </summary>
public sealed class TensorParallelContext
{
    /// <summary>A context over <paramref name="group"/> whose scratch comes from <paramref name="ws"/>.</summary>
    public TensorParallelContext(Workspace ws, ICommunicator group)
    {
        ArgumentNullException.ThrowIfNull(ws);
        ArgumentNullException.ThrowIfNull(group);
        Workspace = ws;
        Group = group;
    }

    /// <summary>The workspace of the model.</summary>
    public Workspace Workspace { get; }

    /// <summary>The tensor-parallel ranks.</summary>
    public ICommunicator Group { get; }

    /// <summary>p.</summary>
    public int Size => Group.Size;

    /// <summary>This rank's index in the group.</summary>
    public int Rank => Group.Rank;

    /// <summary>Bytes this rank has sent in all-reduces so far (ring count).</summary>
    public long BytesCommunicated { get; private set; }

    /// <summary>Number of all-reduces issued so far (none for a group of one).</summary>
    public long AllReduceCount { get; private set; }

    /// <summary>tensor = Σ over the ranks of tensor, in place. Collective.</summary>
    public void AllReduce(Tensor tensor)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        if (Size == 1)
        {
            return;
        }
        Group.AllReduce(tensor, tensor, ReduceOp.Sum);
        BytesCommunicated += 2 * (Size - 1) * tensor.SizeInBytes / Size;
        AllReduceCount++;
    }
}
