namespace Hal.Models.Nn;

// Legend: p ranks in the tensor-parallel group, S bytes of the tensor an all-reduce sums (or of the full tensor an
// all-gather or reduce-scatter moves).

/// <summary>
/// The tensor-parallel group a model's modules reduce over, with the workspace they take scratch from. Counts the
/// bytes this rank sends (a ring all-reduce sends 2·(p−1)/p·S, an all-gather or reduce-scatter (p−1)/p·S, so a
/// reduce-scatter and an all-gather cost one all-reduce); a group of one rank communicates nothing. The sums of
/// parameter gradients that sequence parallelism leaves partial are counted apart (<see cref="GradientSumBytes"/>).
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

    /// <summary>Number of all-gathers issued so far (sequence-parallel regions; none for a group of one).</summary>
    public long AllGatherCount { get; private set; }

    /// <summary>Number of reduce-scatters issued so far (sequence-parallel regions; none for a group of one).</summary>
    public long ReduceScatterCount { get; private set; }

    /// <summary>Bytes this rank has sent summing partial parameter gradients (<see cref="SumGradient"/>), ring count.</summary>
    public long GradientSumBytes { get; private set; }

    /// <summary>full [p·Nl, ...] = every rank's local [Nl, ...] in rank order (a copy for a group of one). Collective.</summary>
    public void AllGather(Tensor local, Tensor full)
    {
        ArgumentNullException.ThrowIfNull(local);
        ArgumentNullException.ThrowIfNull(full);
        if (Size == 1)
        {
            Workspace.Ops.Copy(local, full);
            return;
        }
        Group.AllGather(local, full);
        BytesCommunicated += (Size - 1) * full.SizeInBytes / Size;
        AllGatherCount++;
    }

    /// <summary>local [Nl, ...] = this rank's block of the sum over ranks of full [p·Nl, ...] (a copy for a group of one). Collective.</summary>
    public void ReduceScatter(Tensor full, Tensor local)
    {
        ArgumentNullException.ThrowIfNull(full);
        ArgumentNullException.ThrowIfNull(local);
        if (Size == 1)
        {
            Workspace.Ops.Copy(full, local);
            return;
        }
        Group.ReduceScatter(full, local, ReduceOp.Sum);
        BytesCommunicated += (Size - 1) * full.SizeInBytes / Size;
        ReduceScatterCount++;
    }

    /// <summary>gradient = Σ over the ranks of gradient, in place: a parameter gradient each rank computed from its own rows. Collective.</summary>
    public void SumGradient(Tensor gradient)
    {
        ArgumentNullException.ThrowIfNull(gradient);
        if (Size == 1)
        {
            return;
        }
        Group.AllReduce(gradient, gradient, ReduceOp.Sum);
        GradientSumBytes += 2 * (Size - 1) * gradient.SizeInBytes / Size;
    }
}
