namespace Hal.Models.Transformer;

/// <summary>How a <see cref="TransformerModel"/> computes.</summary>
public sealed record TransformerOptions
{
    /// <summary>The dtype of parameters, gradients and activations (F32, F64, or BF16/F16 storage with F32 math in the kernels).</summary>
    public DType ComputeDType { get; init; } = DType.F32;

    /// <summary>Keep only each block's input in forward and recompute the block in backward.</summary>
    public bool CheckpointActivations { get; init; }
}
