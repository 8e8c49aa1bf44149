namespace Hal.Models.Training;

/// <summary>What is known when training starts (the <c>start</c> line of <c>--json-log</c>); CorpusEntropy is the synthetic corpus's entropy rate in nats/token, null for real text.</summary>
public sealed record TrainStart(string Model, long Parameters, string Backend, int Dp, double? CorpusEntropy, int Steps, int Batch, int Seq, string Data, string Precision, string Optimizer, long StartStep)
{
    /// <summary>Tensor-parallel ranks per data-parallel replica (the job runs on Dp·Tp ranks).</summary>
    public int Tp { get; init; } = 1;

    /// <summary>How the tp ranks split the model: "1d", "2d", "2.5d" or "3d".</summary>
    public string TpMode { get; init; } = "1d";

    /// <summary>Sequence-parallel ranks per data-parallel replica (the job runs on Dp·Tp·Sp ranks).</summary>
    public int Sp { get; init; } = 1;

    /// <summary>How the sequence is split: "ring" or "ulysses" when <see cref="Sp"/> &gt; 1, or "split-gather" over the tp ranks (then Sp is 1).</summary>
    public string SpMode { get; init; } = "ring";

    /// <summary>ZeRO stage (0–3).</summary>
    public int Zero { get; init; }

    /// <summary>The <c>--offload</c> policy as given: none, static:P,O or auto.</summary>
    public string Offload { get; init; } = "none";

    /// <summary>Pipeline stages per replica (the job runs on Dp·Tp·Pp·Sp ranks).</summary>
    public int Pp { get; init; } = 1;

    /// <summary>The pipeline schedule: gpipe, 1f1b or interleaved.</summary>
    public string PpSchedule { get; init; } = "1f1b";

    /// <summary>Model chunks per pipeline stage.</summary>
    public int PpChunks { get; init; } = 1;

    /// <summary>Micro-batches per step per data-parallel replica.</summary>
    public int MicroBatches { get; init; } = 1;
}

/// <summary>One optimizer step (a line of <c>--json-log</c>); Skipped: a gradient was Inf/NaN and dynamic loss scaling skipped the update.</summary>
public sealed record TrainStep(long Step, double Loss, double Lr, double TokensPerSec, double GradNorm, bool Skipped, double LossScale);

/// <summary>The outcome (the <c>end</c> line of <c>--json-log</c> and the summary): FinalLoss is the mean loss over the last 10% of steps (at least one); PeakDeviceBytes the largest allocator peak over the ranks' devices.</summary>
public sealed record TrainEnd(double FinalLoss, double TokensPerSec, long PeakDeviceBytes, long Steps, long SkippedSteps, double? CorpusEntropy, IReadOnlyList<double> Losses, string? CheckpointDir, TimeSpan Elapsed)
{
    /// <summary>Parameters, gradients and optimizer states (moments, momentum, fp32 masters) over all ranks, in bytes.</summary>
    public long ModelStateBytes { get; init; }

    /// <summary>Model states in host memory at the end, over all ranks (ZeRO offload), in bytes.</summary>
    public long HostBytes { get; init; }

    /// <summary>Model states in NVMe files at the end, over all ranks, in bytes.</summary>
    public long NvmeBytes { get; init; }

    /// <summary>Bytes moved between device, host and NVMe over the run, all ranks (0 without offload).</summary>
    public long TierTrafficBytes { get; init; }

    /// <summary>
    /// Bytes one rank sent per step on every group (data, tensor, pipeline, sequence parallel), averaged over the
    /// ranks and over the steps after the first, checkpoints excluded; counted per call as ring algorithms move them
    /// (<see cref="Hal.Collectives.CommunicationTally"/>). 0 on one rank.
    /// </summary>
    public double CommunicationBytesPerStep { get; init; }

    /// <summary>As <see cref="CommunicationBytesPerStep"/>, for the rank that sent the most.</summary>
    public double CommunicationBytesPerStepMax { get; init; }

    /// <summary>
    /// Measured pipeline bubble: the fraction of a step's wall time a stage did not compute, averaged over the stages
    /// and over the steps after the first; null without pipeline parallelism.
    /// </summary>
    public double? PipelineBubble { get; init; }

    /// <summary>The schedule's ideal bubble (p − 1)/(v·m + p − 1); null without pipeline parallelism.</summary>
    public double? PipelineBubbleTheoretical { get; init; }

    /// <summary>Each rank's device allocator peak in bytes, by world rank.</summary>
    public IReadOnlyList<long> PeakDeviceBytesPerRank { get; init; } = [];
}

/// <summary>Receives a run's events (console progress, JSON lines, plot). Called on one thread, in order.</summary>
public interface ITrainingObserver
{
    void OnStart(TrainStart start);

    void OnStep(TrainStep step);

    /// <summary>A line of information (a skipped step, a checkpoint written, a warning).</summary>
    void OnMessage(string message);

    void OnEnd(TrainEnd end);
}
