using System.Globalization;
using System.Text.Json;
using Hal.Models.Training;
using Hal.Models.Transformer;
using Hal.Models.Zero;

namespace Hal.Cli.Training;

/// <summary>
/// What <c>hal train</c> was asked for: the <see cref="TrainConfig"/> it maps to, plus what only the command knows
/// (backend, log and plot paths, which options were given). <see cref="Validate"/> checks everything that needs no
/// device, before any work, and says what to change.
/// </summary>
internal sealed record TrainArguments
{
    /// <summary>The run, as the trainer takes it.</summary>
    public required TrainConfig Config { get; init; }

    /// <summary><c>--backend</c>.</summary>
    public string Backend { get; init; } = "cpu";

    /// <summary>Whether <c>--model</c> was given (it may not be combined with <c>--init</c>).</summary>
    public bool ModelGiven { get; init; }

    /// <summary>Whether <c>--dp</c> was given (under mpirun it must then equal the world size).</summary>
    public bool DpGiven { get; init; }

    /// <summary><c>--json-log F</c>.</summary>
    public string? JsonLog { get; init; }

    /// <summary><c>--plot F.png</c>.</summary>
    public string? Plot { get; init; }

    /// <summary>The option names and values users can write, for messages and help.</summary>
    public static readonly IReadOnlyDictionary<string, Precision> Precisions = new Dictionary<string, Precision>
    {
        ["fp32"] = Precision.Fp32,
        ["bf16"] = Precision.Bf16,
        ["fp16"] = Precision.Fp16,
    };

    /// <summary><c>--optimizer</c> values.</summary>
    public static readonly IReadOnlyDictionary<string, OptimizerKind> Optimizers = new Dictionary<string, OptimizerKind>
    {
        ["adamw"] = OptimizerKind.AdamW,
        ["lamb"] = OptimizerKind.Lamb,
        ["lars"] = OptimizerKind.Lars,
        ["sgd"] = OptimizerKind.Sgd,
    };

    /// <summary><c>--schedule</c> values.</summary>
    public static readonly IReadOnlyDictionary<string, ScheduleKind> Schedules = new Dictionary<string, ScheduleKind>
    {
        ["constant"] = ScheduleKind.Constant,
        ["cosine"] = ScheduleKind.Cosine,
    };

    /// <summary><c>--sp-mode</c> values.</summary>
    public static readonly IReadOnlyDictionary<string, SequenceParallelMode> SpModes = new Dictionary<string, SequenceParallelMode>
    {
        ["ring"] = SequenceParallelMode.Ring,
        ["ulysses"] = SequenceParallelMode.Ulysses,
        ["split-gather"] = SequenceParallelMode.SplitGather,
    };

    /// <summary>
    /// Split-gather splits the sequence over the tp ranks themselves: <c>--sp</c> equal to <c>--tp</c> names those
    /// same ranks and becomes sp 1 (no extra ranks); anything else is left for <see cref="Validate"/>.
    /// </summary>
    public TrainArguments ResolveSplitGather() =>
        Config.SpMode == SequenceParallelMode.SplitGather && Config.Tp >= 2 && Config.Sp == Config.Tp
            ? this with { Config = Config with { Sp = 1 } }
            : this;

    /// <summary><c>--pp-schedule</c> values.</summary>
    public static readonly IReadOnlyDictionary<string, Hal.Parallel.Pipeline.PipelineScheduleKind> PpSchedules = new Dictionary<string, Hal.Parallel.Pipeline.PipelineScheduleKind>
    {
        ["gpipe"] = Hal.Parallel.Pipeline.PipelineScheduleKind.GPipe,
        ["1f1b"] = Hal.Parallel.Pipeline.PipelineScheduleKind.OneFOneB,
        ["interleaved"] = Hal.Parallel.Pipeline.PipelineScheduleKind.Interleaved,
    };

    /// <summary>The name users write for a pipeline schedule (gpipe, 1f1b, interleaved).</summary>
    public static string Name(Hal.Parallel.Pipeline.PipelineScheduleKind k) => PpSchedules.First(kv => kv.Value == k).Key;

    /// <summary><c>--tp-mode</c> values.</summary>
    public static readonly IReadOnlyDictionary<string, TensorParallelMode> TpModes = new Dictionary<string, TensorParallelMode>
    {
        ["1d"] = TensorParallelMode.OneD,
        ["2d"] = TensorParallelMode.TwoD,
        ["2.5d"] = TensorParallelMode.TwoAndHalfD,
        ["3d"] = TensorParallelMode.ThreeD,
    };

    /// <summary>The name users write for a sequence-parallel mode (ring, ulysses, split-gather).</summary>
    public static string Name(SequenceParallelMode m) => SpModes.First(kv => kv.Value == m).Key;

    /// <summary>The name users write for a precision (fp32, bf16, fp16).</summary>
    public static string Name(Precision p) => Precisions.First(kv => kv.Value == p).Key;

    /// <summary>The name users write for an optimizer (adamw, lamb, lars, sgd).</summary>
    public static string Name(OptimizerKind o) => Optimizers.First(kv => kv.Value == o).Key;

    /// <summary>
    /// Checks every option that needs no device. <paramref name="worldSize"/> is the mpirun world size when this process
    /// is one rank of it (null otherwise).
    /// </summary>
    /// <exception cref="UsageException">the first problem found, naming the option and what to change.</exception>
    public void Validate(int? worldSize = null)
    {
        var c = Config;
        if (c.InitDir is not null && ModelGiven)
        {
            throw new UsageException("--init and --model both name the model: give --init DIR to start from a Hugging Face directory, or --model NAME, not both");
        }
        int contextLength = c.InitDir is null ? NamedContextLength(c.Model) : InitContextLength(c.InitDir);
        if (c.Steps < 1)
        {
            throw new UsageException($"--steps {c.Steps}: must be at least 1");
        }
        if (c.Dp < 1)
        {
            throw new UsageException($"--dp {c.Dp}: must be at least 1 (the number of data-parallel ranks)");
        }
        if (c.Tp < 1)
        {
            throw new UsageException($"--tp {c.Tp}: must be at least 1 (the number of tensor-parallel ranks per replica)");
        }
        if (c.Tp > 1 && (c.Zero >= 2 || c.Offload.Policy != OffloadPolicy.None))
        {
            string what = c.Zero >= 2 ? $"--zero {c.Zero}" : "--offload";
            throw new UsageException($"--tp {c.Tp} and {what} do not run together yet: use --zero 0 or 1 without --offload with tensor parallelism, or --tp 1");
        }
        if (c.TpMode != TensorParallelMode.OneD && GridGeometry.For(c.TpMode, c.Tp, c.TpDepth).Problem is { } grid)
        {
            throw new UsageException(grid);
        }
        if (c.TpDepth != 0 && c.TpMode != TensorParallelMode.TwoAndHalfD)
        {
            throw new UsageException($"--tp-depth {c.TpDepth} sets the depth of a 2.5d grid: give --tp-mode 2.5d, or drop --tp-depth");
        }
        if (c.TpMode != TensorParallelMode.OneD && c.Sp > 1)
        {
            throw new UsageException($"--tp-mode {c.TpMode.Name()} and --sp {c.Sp} do not run together yet: use --sp 1 with a grid, or --tp-mode 1d");
        }
        if (c.Sp < 1)
        {
            throw new UsageException($"--sp {c.Sp}: must be at least 1 (the number of sequence-parallel ranks per replica)");
        }
        if (c.SpMode == SequenceParallelMode.SplitGather && SequenceParallelOptions.SplitGatherProblem(c.Tp, c.Sp) is { } splitGather)
        {
            throw new UsageException(splitGather);
        }
        if (c.Sp > 1 && (c.Zero >= 2 || c.Offload.Policy != OffloadPolicy.None))
        {
            string what = c.Zero >= 2 ? $"--zero {c.Zero}" : "--offload";
            throw new UsageException($"--sp {c.Sp} and {what} do not run together yet: use --zero 0 or 1 without --offload with sequence parallelism, or --sp 1");
        }
        ValidatePipeline(c);
        if (c.Zero is < 0 or > 3)
        {
            throw new UsageException($"--zero {c.Zero}: the ZeRO stage is 0 (off), 1 (optimizer states sharded over the dp ranks), 2 (and gradients) or 3 (and parameters)");
        }
        if (c.Offload.Policy == OffloadPolicy.None && (c.NvmeDir is not null || c.HostMemoryBytes is not null))
        {
            throw new UsageException("--nvme-dir and --host-memory place offloaded optimizer states: give --offload static:P,O or auto as well");
        }
        if (c.NvmeDir is { } nvme && !Directory.Exists(nvme))
        {
            throw new UsageException($"--nvme-dir {nvme}: no such directory; create it first (a local disk, ideally NVMe)");
        }
        if (worldSize is { } world && (long)c.Dp * c.Tp * c.Pp * c.Sp != world)
        {
            throw new UsageException(c.Tp == 1 && c.Sp == 1 && c.Pp == 1
                ? $"--dp {c.Dp} differs from the {world} processes mpirun started; under mpirun omit --dp or give -np's value"
                : $"--dp {c.Dp} × --tp {c.Tp} × --pp {c.Pp} × --sp {c.Sp} = {(long)c.Dp * c.Tp * c.Pp * c.Sp} differs from the {world} processes mpirun started; give sizes whose product is {world}");
        }
        if (c.GradAccum < 1)
        {
            throw new UsageException($"--grad-accum {c.GradAccum}: must be at least 1");
        }
        if (c.Batch < 1)
        {
            throw new UsageException($"--batch {c.Batch}: must be at least 1 (sequences per step, all ranks together)");
        }
        int micro = c.MicroBatches ?? c.GradAccum;
        string microName = c.MicroBatches is null ? "grad-accum" : "microbatches";
        long split = (long)c.Dp * micro;
        if (c.Batch % split != 0)
        {
            long lower = c.Batch / split * split;
            long upper = lower + split;
            string suggestion = lower > 0 ? $"{lower} or {upper}" : $"{upper}";
            throw new UsageException(
                $"--batch {c.Batch} is not divisible by dp × {microName} = {c.Dp} × {micro} = {split}: each rank's micro-batch must be whole; use --batch {suggestion}");
        }
        if (c.Seq < 1)
        {
            throw new UsageException($"--seq {c.Seq}: must be at least 1");
        }
        if (c.Seq > contextLength)
        {
            string model = c.InitDir is null ? $"model '{c.Model}'" : $"the model in {c.InitDir}";
            throw new UsageException($"--seq {c.Seq} is longer than the context of {model} ({contextLength} tokens); use --seq {contextLength} or less");
        }
        if (!(c.LearningRate > 0) || !double.IsFinite(c.LearningRate))
        {
            throw new UsageException($"--lr {c.LearningRate.ToString(CultureInfo.InvariantCulture)}: must be a positive finite number");
        }
        NonNegativeFinite("--weight-decay", c.WeightDecay);
        NonNegativeFinite("--clip", c.Clip);
        if (c.WarmupSteps < 0)
        {
            throw new UsageException($"--warmup {c.WarmupSteps}: must be 0 or more steps");
        }
        if (c.LogEvery < 1)
        {
            throw new UsageException($"--log-every {c.LogEvery}: must be at least 1");
        }
        if (c.CheckpointEvery < 0)
        {
            throw new UsageException($"--checkpoint-every {c.CheckpointEvery}: must be 0 (only at the end) or a positive number of steps");
        }
        if (c.CheckpointEvery > 0 && c.OutDir is null)
        {
            throw new UsageException($"--checkpoint-every {c.CheckpointEvery} needs --out DIR: the folder the checkpoints go to");
        }
        if (c.ResumeDir is not null && !Directory.Exists(c.ResumeDir))
        {
            throw new UsageException($"--resume {c.ResumeDir}: no such directory; give a checkpoint folder written by --out");
        }
        if (!string.Equals(c.Data, "synthetic", StringComparison.Ordinal) && !File.Exists(c.Data))
        {
            throw new UsageException($"--data {c.Data}: no such file; give 'synthetic', a text file or a .bin token file");
        }
        if (Plot is not null && !Plot.EndsWith(".png", StringComparison.OrdinalIgnoreCase))
        {
            throw new UsageException($"--plot {Plot}: the plot is a PNG image; give a file name ending in .png");
        }
        CheckFolderExists("--plot", Plot);
        CheckFolderExists("--json-log", JsonLog);
    }

    /// <summary>The pipeline options that need no model: sizes, schedule against chunks and micro-batches, what pp does not combine with.</summary>
    private static void ValidatePipeline(TrainConfig c)
    {
        if (c.Pp < 1)
        {
            throw new UsageException($"--pp {c.Pp}: must be at least 1 (the number of pipeline stages per replica)");
        }
        if (c.PpChunks < 1)
        {
            throw new UsageException($"--pp-chunks {c.PpChunks}: must be at least 1 (model chunks per pipeline stage)");
        }
        if (c.MicroBatches is { } m)
        {
            if (m < 1)
            {
                throw new UsageException($"--microbatches {m}: must be at least 1");
            }
            if (c.GradAccum != 1 && c.GradAccum != m)
            {
                throw new UsageException($"--microbatches {m} and --grad-accum {c.GradAccum} disagree: both name the micro-batches per step per replica; give one of them");
            }
        }
        int micro = c.MicroBatches ?? c.GradAccum;
        if (c.PpSchedule == Hal.Parallel.Pipeline.PipelineScheduleKind.OneFOneB && c.PpChunks > 1)
        {
            throw new UsageException($"--pp-schedule 1f1b runs one model chunk per stage, not --pp-chunks {c.PpChunks}; use --pp-schedule interleaved for virtual chunks");
        }
        if (c.Pp > 1 && c.PpSchedule == Hal.Parallel.Pipeline.PipelineScheduleKind.Interleaved)
        {
            if (c.PpChunks < 2)
            {
                throw new UsageException($"--pp-schedule interleaved needs --pp-chunks 2 or more (got {c.PpChunks}); use 1f1b for one chunk per stage");
            }
            if (micro % c.Pp != 0)
            {
                throw new UsageException($"--pp-schedule interleaved takes micro-batches in groups of the {c.Pp} stages: --microbatches {micro} is not a multiple of {c.Pp}; give --microbatches {((micro / c.Pp) + 1) * c.Pp}");
            }
        }
        if (c.Pp > 1 && (c.Zero >= 2 || c.Offload.Policy != OffloadPolicy.None))
        {
            string what = c.Zero >= 2 ? $"--zero {c.Zero}" : "--offload";
            throw new UsageException($"--pp {c.Pp} and {what} do not run together; use --zero 1 or --zero 0 without --offload");
        }
    }

    /// <summary>The context length of a named model.</summary>
    /// <exception cref="UsageException">an unknown name (the message lists the known ones).</exception>
    public static int NamedContextLength(string model)
    {
        if (!ModelConfig.Names.Contains(model, StringComparer.Ordinal))
        {
            throw new UsageException($"--model {model}: unknown model; known models: {string.Join(", ", ModelConfig.Names)} (or --init DIR for a Hugging Face directory)");
        }
        return ModelConfig.Named(model).ContextLength;
    }

    /// <summary>
    /// The context length in a Hugging Face directory's <c>config.json</c> (<c>n_positions</c> for GPT-2,
    /// <c>max_position_embeddings</c> for LLaMA); <see cref="int.MaxValue"/> when it names neither (the trainer checks).
    /// </summary>
    /// <exception cref="UsageException">the directory or its config.json is missing or unreadable.</exception>
    public static int InitContextLength(string dir)
    {
        if (!Directory.Exists(dir))
        {
            throw new UsageException($"--init {dir}: no such directory; give a Hugging Face model folder (config.json and model.safetensors)");
        }
        string configPath = System.IO.Path.Combine(dir, "config.json");
        if (!File.Exists(configPath))
        {
            throw new UsageException($"--init {dir}: it has no config.json; give a Hugging Face model folder (config.json and model.safetensors)");
        }
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(configPath));
            foreach (string key in new[] { "n_positions", "n_ctx", "max_position_embeddings" })
            {
                if (doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty(key, out var v) && v.TryGetInt32(out int n) && n > 0)
                {
                    return n;
                }
            }
            return int.MaxValue;
        }
        catch (JsonException e)
        {
            throw new UsageException($"--init {dir}: config.json is not valid JSON ({e.Message})");
        }
    }

    private static void NonNegativeFinite(string option, double value)
    {
        if (!double.IsFinite(value) || value < 0)
        {
            throw new UsageException($"{option} {value.ToString(CultureInfo.InvariantCulture)}: must be a finite number ≥ 0");
        }
    }

    private static void CheckFolderExists(string option, string? path)
    {
        if (path is null)
        {
            return;
        }
        string? folder = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path));
        if (folder is not null && !Directory.Exists(folder))
        {
            throw new UsageException($"{option} {path}: the folder {folder} does not exist; create it or give another path");
        }
    }
}
