using System.Globalization;
using Hal.Cli.Training;
using Hal.Models.Training;

namespace Hal.Cli.Bench;

/// <summary>
/// One parallel layout of <c>hal bench step --layout</c>: the <c>hal train</c> options that shape it, written as
/// <c>key=value</c> pairs separated by commas (<c>dp=2,tp=2</c>, <c>sp=2,sp-mode=ulysses</c>); <see cref="Text"/> is
/// the spelling the user gave, <see cref="Ranks"/> the number of in-process ranks it runs on.
/// </summary>
internal sealed record StepBenchLayout(string Text, Func<TrainConfig, TrainConfig> Apply, int Ranks)
{
    /// <summary>The keys a layout may set, each with what it does to the train configuration.</summary>
    private static readonly Dictionary<string, Func<TrainConfig, string, TrainConfig>> Keys = new(StringComparer.Ordinal)
    {
        ["dp"] = (c, v) => c with { Dp = Int("dp", v) },
        ["tp"] = (c, v) => c with { Tp = Int("tp", v) },
        ["sp"] = (c, v) => c with { Sp = Int("sp", v) },
        ["sp-mode"] = (c, v) => c with { SpMode = TrainArguments.SpModes.TryGetValue(v, out var m) ? m : throw new UsageException($"--layout sp-mode={v}: use one of {string.Join(", ", TrainArguments.SpModes.Keys)}") },
        ["tp-mode"] = (c, v) => c with { TpMode = TrainArguments.TpModes.TryGetValue(v, out var m) ? m : throw new UsageException($"--layout tp-mode={v}: use one of {string.Join(", ", TrainArguments.TpModes.Keys)}") },
        ["tp-depth"] = (c, v) => c with { TpDepth = Int("tp-depth", v) },
        ["pp"] = (c, v) => c with { Pp = Int("pp", v) },
        ["pp-schedule"] = (c, v) => c with { PpSchedule = TrainArguments.PpSchedules.TryGetValue(v, out var k) ? k : throw new UsageException($"--layout pp-schedule={v}: use one of {string.Join(", ", TrainArguments.PpSchedules.Keys)}") },
        ["pp-chunks"] = (c, v) => c with { PpChunks = Int("pp-chunks", v) },
        ["microbatches"] = (c, v) => c with { MicroBatches = Int("microbatches", v) },
        ["zero"] = (c, v) => c with { Zero = Int("zero", v) },
        ["grad-accum"] = (c, v) => c with { GradAccum = Int("grad-accum", v) },
        ["checkpoint-activations"] = (c, v) => c with { CheckpointActivations = v is "1" or "true" ? true : v is "0" or "false" ? false : throw new UsageException($"--layout checkpoint-activations={v}: use true or false") },
    };

    /// <summary>The layout keys, for help and messages.</summary>
    public static IEnumerable<string> KeyNames => Keys.Keys;

    /// <summary>Parses <c>key=value[,key=value...]</c>; the number of ranks is the product of the axis sizes.</summary>
    /// <exception cref="UsageException">an unknown key, a value that is not what the key takes, or a key given twice.</exception>
    public static StepBenchLayout Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var setters = new List<Func<TrainConfig, TrainConfig>>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (string pair in text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            int eq = pair.IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0 || eq == pair.Length - 1)
            {
                throw new UsageException($"--layout {text}: '{pair}' is not key=value; a layout is hal train options as key=value pairs separated by commas, e.g. dp=2,tp=2");
            }
            string key = pair[..eq], value = pair[(eq + 1)..];
            if (!Keys.TryGetValue(key, out var set))
            {
                throw new UsageException($"--layout {text}: unknown key '{key}'; known keys: {string.Join(", ", Keys.Keys)}");
            }
            if (!seen.Add(key))
            {
                throw new UsageException($"--layout {text}: '{key}' is given twice");
            }
            setters.Add(c => set(c, value));
        }
        if (setters.Count == 0)
        {
            throw new UsageException($"--layout '{text}' sets nothing; give key=value pairs, e.g. dp=2,tp=2");
        }
        TrainConfig Apply(TrainConfig c) => setters.Aggregate(c, (acc, s) => s(acc));
        var probe = Apply(new TrainConfig());
        // Split-gather runs on the tp ranks themselves (its sp, if given, names the same ranks).
        int sp = probe.SpMode == Hal.Models.Transformer.SequenceParallelMode.SplitGather ? 1 : probe.Sp;
        long ranks = (long)probe.Dp * probe.Tp * probe.Pp * sp;
        if (ranks > 64)
        {
            throw new UsageException($"--layout {text}: {ranks} ranks; in-process layouts run up to 64 ranks");
        }
        return new StepBenchLayout(text, Apply, (int)ranks);
    }

    private static int Int(string key, string value) =>
        int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out int n) && n >= 0
            ? n
            : throw new UsageException($"--layout {key}={value}: give a whole number");
}

/// <summary>
/// One layout's figures in <c>hal bench step --json</c> (<c>layouts[]</c>): its spelling and ranks, tokensPerSec (the
/// global batch's tokens over the median timed step), ratioToSingle (over the single-device run's), peakDeviceBytesPerRank
/// (the largest allocator peak of any rank), commBytesPerStep (bytes one rank sends per step, mean over ranks, counted
/// per call), commBytesPerStepMax (the busiest rank), the last step's loss, and under pipeline parallelism the measured
/// bubble (mean over stages and steps after the first) beside the schedule's theoretical one (null otherwise).
/// </summary>
internal sealed record StepBenchLayoutRun(string Layout, int Ranks, double TokensPerSec, double MedianStepMs, double RatioToSingle,
    long PeakDeviceBytesPerRank, double CommBytesPerStep, double CommBytesPerStepMax, double LastLoss, double? Bubble = null, double? BubbleTheoretical = null);

internal static partial class StepBench
{
    /// <summary>
    /// Runs the spec's steps through the trainer under each layout on in-process ranks (one device of
    /// <paramref name="openDevice"/> per rank), after a single-device run through the same trainer, the peer the
    /// ratios are taken against. The data is the synthetic corpus; the batch and sequence are the spec's, global.
    /// </summary>
    /// <exception cref="UsageException">a layout the trainer refuses, with its reason.</exception>
    public static IReadOnlyList<StepBenchLayoutRun> RunLayouts(Func<IDevice> openDevice, StepBenchSpec spec, IReadOnlyList<StepBenchLayout> layouts, TextWriter progress)
    {
        ArgumentNullException.ThrowIfNull(openDevice);
        ArgumentNullException.ThrowIfNull(spec);
        ArgumentNullException.ThrowIfNull(layouts);
        ArgumentNullException.ThrowIfNull(progress);
        var runs = new List<StepBenchLayoutRun>();
        var single = new StepBenchLayout("single", c => c, 1);
        foreach (var layout in layouts.Prepend(single))
        {
            var run = RunLayout(openDevice, spec, layout, progress);
            if (runs.Count > 0)
            {
                run = run with { RatioToSingle = runs[0].TokensPerSec > 0 ? run.TokensPerSec / runs[0].TokensPerSec : 0 };
            }
            runs.Add(run);
            progress.WriteLine(F($"step: layout {layout.Text} on {layout.Ranks} rank(s): {run.TokensPerSec:F0} tokens/s ({run.RatioToSingle:F2} of one device), ") +
                F($"peak {run.PeakDeviceBytesPerRank:N0} bytes per rank, {run.CommBytesPerStep:N0} bytes sent per rank per step, last loss {run.LastLoss:F4}") +
                (run.Bubble is { } bubble ? F($", bubble {bubble:F3} (theoretical {run.BubbleTheoretical ?? double.NaN:F3})") : ""));
        }
        return runs;
    }

    private static StepBenchLayoutRun RunLayout(Func<IDevice> openDevice, StepBenchSpec spec, StepBenchLayout layout, TextWriter progress)
    {
        var baseConfig = new TrainConfig
        {
            Model = spec.Model,
            Batch = spec.Batch,
            Seq = spec.Seq,
            Steps = spec.WarmupSteps + spec.Steps,
            Precision = spec.Precision,
            Seed = spec.Seed,
            LogEvery = int.MaxValue,
        };
        var config = layout.Apply(baseConfig);
        var devices = new List<IDevice>();
        try
        {
            for (int i = 0; i < layout.Ranks; i++)
            {
                devices.Add(openDevice());
            }
            var observer = new StepCollector(spec.WarmupSteps, progress, layout.Text);
            TrainEnd end;
            try
            {
                end = Trainer.Run(config, devices, null, observer);
            }
            catch (TrainConfigException e)
            {
                throw new UsageException($"--layout {layout.Text}: {e.Message}");
            }
            double median = Median(observer.TimedStepSeconds);
            return new StepBenchLayoutRun(layout.Text, layout.Ranks, median > 0 ? spec.Batch * (double)spec.Seq / median : 0, median * 1e3, 1,
                end.PeakDeviceBytes, end.CommunicationBytesPerStep, end.CommunicationBytesPerStepMax, end.Losses.Count > 0 ? end.Losses[^1] : double.NaN,
                end.PipelineBubble, end.PipelineBubbleTheoretical);
        }
        finally
        {
            foreach (var device in devices)
            {
                device.Dispose();
            }
        }
    }

    /// <summary>The wall time of each step after the warm-up ones (from the trainer's per-step tokens/s).</summary>
    private sealed class StepCollector(int warmupSteps, TextWriter progress, string layout) : ITrainingObserver
    {
        private int _tokensPerStep;

        public List<double> TimedStepSeconds { get; } = [];

        public void OnStart(TrainStart start) => _tokensPerStep = start.Batch * start.Seq;

        public void OnStep(TrainStep step)
        {
            double seconds = step.TokensPerSec > 0 ? _tokensPerStep / step.TokensPerSec : 0;
            bool timed = step.Step > warmupSteps;
            if (timed)
            {
                TimedStepSeconds.Add(seconds);
            }
            progress.WriteLine(F($"step: layout {layout} {(timed ? "timed" : "warm-up")} step {step.Step}: {seconds * 1e3:F1} ms, loss {step.Loss:F4}"));
        }

        public void OnMessage(string message)
        {
        }

        public void OnEnd(TrainEnd end)
        {
        }
    }
}
