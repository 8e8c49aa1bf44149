using Hal.Models.Zero;

namespace Hal.Models.Training;

/// <summary>Compute precision: fp32 everywhere, or 16-bit compute with fp32 master weights.</summary>
public enum Precision
{
    Fp32,
    Bf16,
    Fp16,
}

/// <summary>The optimizers <c>hal train --optimizer</c> offers.</summary>
public enum OptimizerKind
{
    AdamW,
    Lamb,
    Lars,
    Sgd,
}

/// <summary>Learning-rate schedules.</summary>
public enum ScheduleKind
{
    Constant,
    /// <summary>Linear warm-up, then a cosine decay to 10% of the peak at the last step.</summary>
    Cosine,
}

/// <summary>
/// Everything a training run needs, as <c>hal train</c> spells it. Defaults: gpt-tiny on the synthetic corpus, 400
/// steps of 32×64 tokens that close about 90% of the gap between uniform guessing and the corpus's entropy in well
/// under two minutes on a 2-core CPU (the corpus needs attention to the previous token, which takes ~100 steps to
/// form; a sweep of learning rate, batch and steps chose these).
/// </summary>
public sealed record TrainConfig
{
    /// <summary>A name from <see cref="Transformer.ModelConfig.Names"/>; ignored when <see cref="InitDir"/> is set.</summary>
    public string Model { get; init; } = "gpt-tiny";

    /// <summary>A Hugging Face directory (config.json + model.safetensors) to start from.</summary>
    public string? InitDir { get; init; }

    /// <summary>Device memory limit per rank in bytes (null: the device's own size).</summary>
    public long? DeviceMemoryBytes { get; init; }

    /// <summary>Where model states live between the device, host memory and NVMe (<c>--offload</c>).</summary>
    public OffloadSpec Offload { get; init; } = OffloadSpec.None;

    /// <summary>Directory for optimizer-state chunks beyond the host limit (<c>--nvme-dir</c>).</summary>
    public string? NvmeDir { get; init; }

    /// <summary>Bytes of host memory the offloaded optimizer states may take (<c>--host-memory</c>); null: no limit.</summary>
    public long? HostMemoryBytes { get; init; }

    /// <summary>Whether the parameters live in chunks (ZeRO stage 2 or 3, or any offload) rather than one device slab.</summary>
    public bool UsesChunks => Zero >= 2 || Offload.Policy != OffloadPolicy.None;

    /// <summary>Data-parallel ranks.</summary>
    public int Dp { get; init; } = 1;

    /// <summary>
    /// Tensor-parallel ranks per data-parallel replica (1-D, Megatron): attention heads, MLP hidden units and the
    /// vocabulary are split over them; the job runs on Dp·Tp ranks.
    /// </summary>
    public int Tp { get; init; } = 1;

    /// <summary>
    /// How the Tp ranks split the model: 1-D Megatron (the default), or a 2D (Tp = q²), 2.5D (Tp = q²·d) or 3D (Tp = c³)
    /// grid that block-partitions activations and weights (see <see cref="Transformer.GridGeometry"/>).
    /// </summary>
    public Transformer.TensorParallelMode TpMode { get; init; } = Transformer.TensorParallelMode.OneD;

    /// <summary>2.5D's depth d (Tp = q²·d); 0 picks the d ≥ 2 with the largest q (<see cref="Transformer.GridGeometry.DefaultDepth"/>).</summary>
    public int TpDepth { get; init; }

    /// <summary>
    /// Sequence-parallel ranks per data-parallel replica: each holds Seq/Sp tokens of every sequence and attention
    /// runs over the whole sequence by <see cref="SpMode"/>; the job runs on Dp·Tp·Sp ranks.
    /// </summary>
    public int Sp { get; init; } = 1;

    /// <summary>
    /// Pipeline stages per data-parallel replica (<c>--pp</c>): the blocks are split into contiguous chunks, stage s runs
    /// model chunks k·Pp + s; the job runs on Dp·Tp·Pp·Sp ranks.
    /// </summary>
    public int Pp { get; init; } = 1;

    /// <summary>The pipeline schedule (<c>--pp-schedule gpipe|1f1b|interleaved</c>).</summary>
    public Hal.Parallel.Pipeline.PipelineScheduleKind PpSchedule { get; init; } = Hal.Parallel.Pipeline.PipelineScheduleKind.OneFOneB;

    /// <summary>Model chunks per pipeline stage (<c>--pp-chunks</c>, virtual stages of the interleaved schedule; 1 otherwise).</summary>
    public int PpChunks { get; init; } = 1;

    /// <summary>
    /// Micro-batches per step per data-parallel replica (<c>--microbatches</c>), each of Batch/(Dp·MicroBatches)
    /// sequences; null: <see cref="GradAccum"/>. At Pp 1 it is gradient accumulation.
    /// </summary>
    public int? MicroBatches { get; init; }


    /// <summary>
    /// How the sequence is split: ring (zig-zag placement) or ulysses (all-to-all over heads) over <see cref="Sp"/>
    /// extra ranks, or split-gather (Megatron sequence parallelism over the <see cref="Tp"/> ranks themselves, no
    /// extra ranks: <see cref="Sp"/> is 1 or equal to <see cref="Tp"/>, and needs Tp ≥ 2).
    /// </summary>
    public Transformer.SequenceParallelMode SpMode { get; init; } = Transformer.SequenceParallelMode.Ring;

    public Precision Precision { get; init; } = Precision.Fp32;

    public OptimizerKind Optimizer { get; init; } = OptimizerKind.AdamW;

    /// <summary>Peak learning rate.</summary>
    public double LearningRate { get; init; } = 3e-3;

    public ScheduleKind Schedule { get; init; } = ScheduleKind.Cosine;

    public int WarmupSteps { get; init; } = 20;

    /// <summary>Decoupled weight decay (AdamW/LAMB) or L2 term (LARS/SGD), on tensors of rank ≥ 2.</summary>
    public double WeightDecay { get; init; } = 0.0;

    /// <summary>Global-norm gradient clipping threshold; 0 turns clipping off.</summary>
    public double Clip { get; init; } = 1.0;

    public int Steps { get; init; } = 400;

    /// <summary>Global batch in sequences (each of <see cref="Dp"/> ranks takes Batch/Dp).</summary>
    public int Batch { get; init; } = 32;

    /// <summary>Sequence length (≤ the model's context).</summary>
    public int Seq { get; init; } = 64;

    /// <summary>Micro-batches per step per rank (gradient accumulation); each takes Batch/(Dp·GradAccum) sequences.</summary>
    public int GradAccum { get; init; } = 1;

    public ulong Seed { get; init; } = 1337;

    /// <summary><c>synthetic</c> or a path: a text file (GPT-2 BPE) or a token file (.bin).</summary>
    public string Data { get; init; } = "synthetic";

    /// <summary>Visit windows in a seeded random order instead of consecutively.</summary>
    public bool Shuffle { get; init; }

    /// <summary>Where checkpoints go (null: none are written).</summary>
    public string? OutDir { get; init; }

    /// <summary>Write a checkpoint every N steps (and at the end) when <see cref="OutDir"/> is set; 0: only at the end.</summary>
    public int CheckpointEvery { get; init; }

    /// <summary>A checkpoint directory to continue from.</summary>
    public string? ResumeDir { get; init; }

    /// <summary>Recompute each block's activations in backward instead of keeping them.</summary>
    public bool CheckpointActivations { get; init; }

    /// <summary>
    /// ZeRO stage: 0 keeps the whole optimizer state on every rank; 1 shards it (moments, momentum, fp32 master and
    /// gradient copies) over the data-parallel ranks, each updating its own parameters and broadcasting them.
    /// </summary>
    public int Zero { get; init; }

    /// <summary>Log a line (or progress update) every N steps.</summary>
    public int LogEvery { get; init; } = 25;
}
