using System.Diagnostics;
using System.Globalization;
using Hal.Models.Nn;
using Hal.Models.Optim;
using Hal.Models.Training;
using Hal.Models.Transformer;
using Hal.Models.Zero;

namespace Hal.Cli.Bench;

/// <summary>
/// What <c>hal bench step</c> measures: a model, a batch shape, how many warm-up and timed steps, and the variants
/// besides the baseline: <paramref name="Zero"/> 2 or 3 adds the chunked ZeRO engine with everything on the device,
/// each of <paramref name="Offloads"/> adds the engine under that placement (stage max(2, Zero)).
/// </summary>
internal sealed record StepBenchSpec(string Model, int Batch, int Seq, int Steps, int WarmupSteps, Precision Precision, int? VocabSize = null, ulong Seed = 1337,
    int Zero = 0, IReadOnlyList<OffloadSpec>? Offloads = null);

/// <summary>
/// One variant's figures in <c>hal bench step --json</c> (<c>runs[]</c>): name, tokensPerSec, medianStepMs, gflops (model
/// FLOPs per token × tokens/s), mfu (gflops / peakGflops), peakDeviceBytes, and the loss of the last timed step; then
/// where the model states were after the timed steps (hostBytes, nvmeBytes, offDeviceFraction: state bytes off the
/// device over all state bytes), tierTrafficBytesPerStep (host ↔ device and NVMe bytes per timed step),
/// ratioToBaseline (tokensPerSec over the baseline's) and deviceBudgetBytes (the byte limit the variant ran under; null: none).
/// </summary>
internal sealed record StepBenchRun(string Name, double TokensPerSec, double MedianStepMs, double Gflops, double Mfu, long PeakDeviceBytes, double LastLoss,
    long HostBytes = 0, long NvmeBytes = 0, double TierTrafficBytesPerStep = 0, double OffDeviceFraction = 0, double RatioToBaseline = 1, long? DeviceBudgetBytes = null);

/// <summary>
/// <c>hal bench step --json</c>: the setup (model, backend, device, batch, seq, precision, steps), the FLOP count
/// (parameters, matmulParameters, flopsPerToken and the formula as text), the host FMA peak measured in the same run,
/// and one entry per variant in <c>runs</c> (<c>baseline</c> first; <c>--zero</c> and <c>--offload</c> add entries, not fields);
/// with <c>--layout</c>, <c>layouts</c>: the same steps through the trainer on one device and under each parallel layout.
/// </summary>
internal sealed record StepBenchResult(
    string Model, string Backend, string Device, int Batch, int Seq, string Precision, int WarmupSteps, int Steps,
    long Parameters, long MatmulParameters, double FlopsPerToken, string FlopFormula, double PeakGflops, int PeakVectorBits,
    IReadOnlyList<StepBenchRun> Runs)
{
    /// <summary>With <c>--layout</c>: the single-device trainer run, then each layout (StepBench.Layouts.cs); else null.</summary>
    public IReadOnlyList<StepBenchLayoutRun>? Layouts { get; init; }
}

/// <summary>
/// Model FLOPs of one training step, per token, as the scaling-law literature counts them: 6·N + 12·L·C·T, where N is the
/// number of parameters that take part in matmuls (every projection of every block, and the LM head V·C, counted once
/// even when tied to the embedding; not biases, norms or the position table), L layers, C channels and T the sequence
/// length. 6·N is forward (2 FLOPs per multiply-add) plus backward (twice forward); 12·L·C·T is the attention scores and
/// the weighted sum of values (2·2·T·C per layer and token forward, ×3 for training), counted over the full T×T square
/// although causal attention needs only half of it. Recomputed activations are not counted (model FLOPs, not hardware FLOPs).
/// </summary>
internal static class TrainingFlops
{
    /// <summary>The formula as it appears in the JSON output and the docs.</summary>
    public const string Formula = "6*N + 12*L*C*T per token (N = parameters in matmuls, head V*C included; T = seq)";

    /// <summary>N: parameters that take part in matmuls (projections and the LM head).</summary>
    public static long MatmulParameters(ModelConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        long c = config.Channels, f = config.Hidden, v = config.VocabSize;
        long q = (long)config.Heads * config.HeadSize, kv = (long)config.KvHeads * config.HeadSize;
        // Query, key, value and output projections, then the MLP: GPT-2 has two matrices (C×F, F×C), LLaMA three (gate, up, down).
        long attention = (c * q) + (2 * c * kv) + (q * c);
        long mlp = config.Family == ModelFamily.Gpt2 ? 2 * c * f : 3 * c * f;
        return (config.Layers * (attention + mlp)) + (v * c);
    }

    /// <summary>Training FLOPs per token at sequence length <paramref name="seq"/>: 6·N + 12·L·C·T.</summary>
    public static double PerToken(ModelConfig config, int seq)
    {
        ArgumentNullException.ThrowIfNull(config);
        return (6.0 * MatmulParameters(config)) + (12.0 * config.Layers * config.Channels * seq);
    }
}

/// <summary>
/// <c>hal bench step</c>: times whole training steps (forward, backward, optimizer) of a named model on synthetic token
/// ids, after warm-up steps, and reports tokens/s, achieved GFLOP/s by <see cref="TrainingFlops"/> and the ratio to this
/// machine's fp32 FMA peak measured in the same run (model FLOPs utilisation, MFU). With <c>--zero</c> or
/// <c>--offload</c> the same steps also run through the chunked ZeRO engine, one variant after the other on the same
/// device (StepBench.Zero.cs).
/// </summary>
internal static partial class StepBench
{
    /// <summary>Runs the benchmark on <paramref name="device"/>; progress lines go to <paramref name="progress"/>.</summary>
    /// <exception cref="UsageException">an unknown model, a sequence longer than its context, or variants the engine cannot run.</exception>
    public static StepBenchResult Run(IDevice device, StepBenchSpec spec, TextWriter progress)
    {
        ArgumentNullException.ThrowIfNull(device);
        ArgumentNullException.ThrowIfNull(spec);
        ArgumentNullException.ThrowIfNull(progress);
        var config = Config(spec);
        double flopsPerToken = TrainingFlops.PerToken(config, spec.Seq);
        progress.WriteLine(F($"step: measuring the fp32 FMA peak ({FmaPeakProbe.WidestVectorBits}-bit FMAs) on all processor threads..."));
        var peakBefore = FmaPeakProbe.Measure();
        progress.WriteLine(F($"step: {config.Name}: {config.ParameterCount:N0} parameters, {TrainingFlops.MatmulParameters(config):N0} in matmuls, ") +
            F($"{flopsPerToken / 1e6:F1} MFLOP per token; batch {spec.Batch} × seq {spec.Seq}, {spec.WarmupSteps} warm-up + {spec.Steps} timed steps"));
        var measured = new List<(string Name, StepTimes Times)> { ("baseline", TimeSteps(device, config, spec, null, progress)) };
        long referencePeak = 0;
        foreach (var variant in EngineVariants(spec))
        {
            var times = TimeVariant(device, config, spec, variant, referencePeak, progress);
            if (IsAutoReference(variant))
            {
                referencePeak = times.PeakDeviceBytes;
            }
            measured.Add((variant.Name, times));
        }
        // As in the GEMM bench: the peak is the best the machine showed before or after, so a moment of load elsewhere
        // during one short probe cannot inflate the ratio.
        var peakAfter = FmaPeakProbe.Measure();
        var peak = peakAfter.Gflops > peakBefore.Gflops ? peakAfter : peakBefore;
        var runs = new List<StepBenchRun>(measured.Count);
        foreach (var (name, times) in measured)
        {
            var run = Figures(name, times, spec, flopsPerToken, peak.Gflops);
            if (runs.Count > 0)
            {
                run = run with { RatioToBaseline = runs[0].TokensPerSec > 0 ? run.TokensPerSec / runs[0].TokensPerSec : 0 };
            }
            runs.Add(run);
            progress.WriteLine(F($"step: {name}: {run.TokensPerSec:F0} tokens/s ({run.RatioToBaseline:F2} of the baseline), {run.Gflops:F1} GFLOP/s = {run.Mfu:P1} of the {peak.Gflops:F1} GFLOP/s {peak.VectorBits}-bit FMA peak"));
        }
        return new StepBenchResult(
            config.Name, device.Id.Backend, device.Id.ToString(), spec.Batch, spec.Seq, spec.Precision.ToString().ToLowerInvariant(), spec.WarmupSteps, spec.Steps,
            config.ParameterCount, TrainingFlops.MatmulParameters(config), flopsPerToken, TrainingFlops.Formula, peak.Gflops, peak.VectorBits, runs);
    }

    /// <summary>The model's shape, checked against the spec, and the variants checked against what the engine runs.</summary>
    /// <exception cref="UsageException">an unknown model, a sequence longer than its context, or variants the engine cannot run.</exception>
    public static ModelConfig Config(StepBenchSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        if (!ModelConfig.Names.Contains(spec.Model, StringComparer.Ordinal))
        {
            throw new UsageException($"--model {spec.Model}: unknown model; known models: {string.Join(", ", ModelConfig.Names)}");
        }
        var config = spec.VocabSize is { } v ? ModelConfig.Named(spec.Model, v) : ModelConfig.Named(spec.Model);
        if (spec.Seq > config.ContextLength)
        {
            throw new UsageException($"--seq {spec.Seq} is longer than the context of model '{spec.Model}' ({config.ContextLength} tokens); use --seq {config.ContextLength} or less");
        }
        ValidateVariants(spec);
        return config;
    }

    /// <summary>The figures of one variant from its step times: tokens/s and GFLOP/s at the median step, and where its model states were.</summary>
    internal static StepBenchRun Figures(string name, StepTimes times, StepBenchSpec spec, double flopsPerToken, double peakGflops)
    {
        double median = Median(times.StepSeconds);
        double tokensPerSec = median > 0 ? spec.Batch * (double)spec.Seq / median : 0;
        double gflops = tokensPerSec * flopsPerToken / 1e9;
        var run = new StepBenchRun(name, tokensPerSec, median * 1e3, gflops, peakGflops > 0 ? gflops / peakGflops : 0, times.PeakDeviceBytes, times.LastLoss,
            DeviceBudgetBytes: times.DeviceBudgetBytes, TierTrafficBytesPerStep: times.TierTrafficBytesPerStep);
        if (times.Memory is { } m)
        {
            long all = m.DeviceStateBytes + m.HostBytes + m.NvmeBytes;
            run = run with { HostBytes = m.HostBytes, NvmeBytes = m.NvmeBytes, OffDeviceFraction = all > 0 ? (m.HostBytes + m.NvmeBytes) / (double)all : 0 };
        }
        return run;
    }

    internal static double Median(IReadOnlyList<double> values)
    {
        if (values.Count == 0)
        {
            return 0;
        }
        var sorted = values.Order().ToArray();
        int mid = sorted.Length / 2;
        return sorted.Length % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
    }

    /// <summary>
    /// Wall time of each timed step, the device's allocator peak and the last loss; for an engine variant also where
    /// its states were after the timed steps, the tier traffic per timed step and the device budget it ran under.
    /// </summary>
    internal sealed record StepTimes(IReadOnlyList<double> StepSeconds, long PeakDeviceBytes, double LastLoss,
        ZeroMemoryStats? Memory = null, double TierTrafficBytesPerStep = 0, long? DeviceBudgetBytes = null);

    /// <summary>
    /// Builds the model (initialised from the spec's seed) on <paramref name="device"/>, with an AdamW optimizer
    /// (baseline) or in the chunks of a <see cref="ZeroEngine"/> set up as the trainer sets it up (a variant), then runs
    /// warm-up and timed steps (zero gradients, forward, backward, update) on random token ids drawn from the same seed.
    /// Each timed step ends with the loss read back to the host, so its wall time covers the device's work.
    /// </summary>
    private static StepTimes TimeSteps(IDevice device, ModelConfig config, StepBenchSpec spec, EngineVariant? variant, TextWriter progress)
    {
        var ops = new Ops(device);
        var dtype = spec.Precision switch
        {
            Precision.Bf16 => DType.BF16,
            Precision.Fp16 => DType.F16,
            _ => DType.F32,
        };
        var optimizerOptions = new OptimizerOptions { Kind = OptimizerKind.AdamW, Precision = spec.Precision };
        ZeroEngine? engine = null;
        Func<ParameterStore, IParameterBacking>? backing = variant is null ? null
            : declared => engine = new ZeroEngine(ops, declared, TransformerModel.VocabularyParameters(config), TransformerModel.SharedParameters(config),
                null, dtype, new ZeroEngineOptions { Stage = variant.Stage, Offload = variant.Offload, Optimizer = optimizerOptions });
        using var model = new TransformerModel(ops, config, new TransformerOptions { ComputeDType = dtype, Backing = backing });
        using var engineScope = engine;
        model.Initialize(spec.Seed);
        using var optimizer = engine is null ? new Optimizer(ops, model.Parameters, optimizerOptions) : null;
        // Ids [B, T] and targets [B, T] (the ids shifted by one): a window of a random token stream.
        var random = new Random(unchecked((int)spec.Seed));
        var stream = new double[(spec.Batch * spec.Seq) + 1];
        for (int i = 0; i < stream.Length; i++)
        {
            stream[i] = random.Next(config.VocabSize);
        }
        var shape = new Shape(spec.Batch, spec.Seq);
        using var ids = ops.FromArray(stream.AsSpan(0, stream.Length - 1), shape, DType.I32);
        using var targets = ops.FromArray(stream.AsSpan(1), shape, DType.I32);
        device.Allocator.ResetPeak();
        var seconds = new List<double>(spec.Steps);
        double loss = double.NaN;
        string label = variant is null ? "" : variant.Name + " ";
        ZeroMemoryStats? beforeTimed = null;
        for (int s = 1; s <= spec.WarmupSteps + spec.Steps; s++)
        {
            bool timed = s > spec.WarmupSteps;
            if (timed && beforeTimed is null)
            {
                beforeTimed = engine?.Stats;
            }
            long start = Stopwatch.GetTimestamp();
            model.Parameters.ZeroGrads(ops);
            loss = model.Forward(ids, targets);
            model.Backward(optimizer?.LossScale ?? 1);
            if (engine is not null)
            {
                engine.Step(1e-4, s);
            }
            else
            {
                optimizer!.Step(1e-4, s);
            }
            device.Synchronize();
            double elapsed = Stopwatch.GetElapsedTime(start).TotalSeconds;
            if (timed)
            {
                seconds.Add(elapsed);
            }
            progress.WriteLine(F($"step: {label}{(timed ? "timed" : "warm-up")} step {s}: {elapsed * 1e3:F1} ms, loss {loss:F4}"));
            if (s == 1 && engine?.PlanDescription is { } plan)
            {
                progress.WriteLine($"step: {label}{plan}");
            }
        }
        // The engine's warm-up step restarts the allocator's peak to measure intervals; it keeps the run's highest.
        long peakBytes = engine?.PeakDeviceBytes ?? device.Allocator.Stats.PeakBytesInUse;
        if (engine is null)
        {
            return new StepTimes(seconds, peakBytes, loss);
        }
        var after = engine.Stats;
        double trafficPerStep = (after.TierTrafficBytes - (beforeTimed?.TierTrafficBytes ?? 0)) / (double)spec.Steps;
        return new StepTimes(seconds, peakBytes, loss, after, trafficPerStep);
    }

    private static string F(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
