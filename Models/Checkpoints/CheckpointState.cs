namespace Hal.Models.Checkpoints;

/// <summary>
/// Everything a checkpoint holds besides tensors, saved as <c>trainer.json</c>: where training stood (step, data
/// position, seed), what was trained (model, optimizer, precision, data-parallel ranks), the optimizer's scalar state
/// and the loss history, so that a resumed run continues the same sequence and its summary covers the whole run.
/// </summary>
public sealed record CheckpointState
{
    /// <summary>The version of this layout; <see cref="Checkpoint.Load"/> refuses versions it does not know.</summary>
    public int FormatVersion { get; init; } = 1;

    /// <summary>Optimizer steps completed.</summary>
    public long Step { get; init; }

    /// <summary>Data loader position: batches drawn so far (<c>Hal.Models.Data.BatchLoader.BatchesDrawn</c>).</summary>
    public long BatchesDrawn { get; init; }

    /// <summary>The run's seed.</summary>
    public ulong Seed { get; init; }

    /// <summary>The model's <see cref="Transformer.ModelConfig.Name"/>.</summary>
    public string Model { get; init; } = "";

    /// <summary>The optimizer's name.</summary>
    public string Optimizer { get; init; } = "";

    /// <summary>The precision's name.</summary>
    public string Precision { get; init; } = "";

    /// <summary>Data-parallel ranks that wrote the checkpoint.</summary>
    public int Dp { get; init; }

    /// <summary>Scalar optimizer state (step counters, loss scale…).</summary>
    public IReadOnlyDictionary<string, double> OptimizerScalars { get; init; } = new Dictionary<string, double>();

    /// <summary>The loss of every step so far.</summary>
    public IReadOnlyList<double> Losses { get; init; } = [];
}
