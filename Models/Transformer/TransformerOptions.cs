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

    /// <summary>
    /// When set, the model is this rank's part of a sequence-parallel model over the group's ranks: parameters are
    /// whole (replicated), ids and targets are this rank's T/sp tokens of every sequence (ring: zig-zag placement, see
    /// <see cref="Hal.Parallel.Sequence.ZigZag"/>; Ulysses: contiguous), positions and rotary use each token's global
    /// position, attention runs over the whole sequence, and the loss is the mean over all B·T tokens on every rank.
    /// Backward adds this rank's share of the gradient: their sum over the group is the full gradient.
    /// With <see cref="TensorParallel"/> each tp rank runs its H/tp query heads (Hkv/tp key/value heads) of its tokens
    /// over the sequence-parallel group (Ulysses needs both divisible by sp). Not together with <see cref="Backing"/> yet.
    /// </summary>
    public SequenceParallelOptions? SequenceParallel { get; init; }

    /// <summary>
    /// Megatron sequence parallelism over the <see cref="TensorParallel"/> group (<c>--sp-mode split-gather</c>): the
    /// residual stream, norms, residual adds and the embedding's output hold this rank's N/tp contiguous rows of the
    /// N = B·T tokens; rows are all-gathered entering attention, the MLP and the LM head, and the row-parallel partial
    /// sums are reduce-scattered instead of all-reduced (backward: the duals). Norm gradients, partial per rank, are
    /// summed over the group in backward, so the gradients equal plain tensor parallelism's. Needs
    /// <see cref="TensorParallel"/>; N must be divisible by the group size.
    /// </summary>
    public bool SequenceParallelRegions { get; init; }

    /// <summary>
    /// When set, the model is one pipeline stage: it declares and holds only the parameters of the stage's layers
    /// (Hugging Face names and shapes; a tied head's token matrix as a copy on the last stage), and runs chunk by chunk
    /// through <see cref="TransformerModel.StageForward"/> and <see cref="TransformerModel.StageBackward"/> with several
    /// micro-batches in flight; the whole-model Forward, Backward and Logits refuse. Combines with
    /// <see cref="TensorParallel"/> and <see cref="SequenceParallel"/> inside the stage, not with <see cref="Backing"/>.
    /// </summary>
    public PipelineStage? Stage { get; init; }
}
