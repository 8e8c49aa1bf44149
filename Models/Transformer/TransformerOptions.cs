namespace Hal.Models.Transformer;

/// <summary>How a <see cref="TransformerModel"/> computes.</summary>
public sealed record TransformerOptions
{
    /// <summary>The dtype of parameters, gradients and activations (F32, F64, or BF16/F16 storage with F32 math in the kernels).</summary>
    public DType ComputeDType { get; init; } = DType.F32;

    /// <summary>Keep only each block's input in forward and recompute the block in backward.</summary>
    public bool CheckpointActivations { get; init; }

    /// <summary>
    /// When set, the parameters live in chunks instead of one device slab: the model declares them, calls this with
    /// the declared store to get the chunks' owner, attaches it, and brackets every layer's compute with its
    /// Begin/End calls; a [V, C] vocabulary matrix the backing tiles is used a row tile at a time.
    /// </summary>
    public Func<Nn.ParameterStore, Nn.IParameterBacking>? Backing { get; init; }

    /// <summary>
    /// When set, the model is this rank's part of a 1-D (Megatron) tensor-parallel model over the group's ranks: every
    /// parameter keeps its Hugging Face name with this rank's shard shape (see <see cref="TensorParallelLayout"/>),
    /// attention runs on the rank's heads and the MLP on its hidden units, the token embedding and LM head hold its
    /// vocabulary rows, and the loss is the same on every rank. Not together with <see cref="Backing"/>.
    /// </summary>
    public ICommunicator? TensorParallel { get; init; }
}
