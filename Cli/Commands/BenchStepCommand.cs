using System.CommandLine;
using System.Globalization;
using System.Text.Encodings.Web;
using System.Text.Json;
using Hal.Cli.Bench;
using Hal.Cli.Training;
using Hal.Models.Transformer;
using Hal.Models.Zero;
using Spectre.Console;

namespace Hal.Cli.Commands;

/// <summary><c>hal bench step</c>: tokens/s, GFLOP/s and MFU of whole training steps of a named model on one backend's device 0.</summary>
internal static class BenchStepCommand
{
    /// <summary>Defaults: a batch a 2-core CPU steps through in seconds.</summary>
    internal const string DefaultModel = "gpt2-small";
    internal const int DefaultBatch = 4;
    internal const int DefaultSeq = 128;
    internal const int DefaultSteps = 5;
    internal const int DefaultWarmup = 2;

    // As Output.Json, without escaping '+' and '*' of the formula (the output is read by programs and people, never embedded in HTML).
    private static readonly JsonSerializerOptions JsonOptions = new(Output.Json) { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>Adds <c>step</c> to <c>hal bench</c>.</summary>
    public static void AddTo(Command bench, GlobalOptions globals)
    {
        ArgumentNullException.ThrowIfNull(bench);
        var model = new Option<string?>("--model") { Description = $"Model: {string.Join(", ", ModelConfig.Names)} (default {DefaultModel}).", HelpName = "NAME" };
        var backend = new Option<string?>("--backend") { Description = "Backend to measure (its device 0; default cpu).", HelpName = "NAME" };
        var batch = new Option<int?>("--batch") { Description = $"Sequences per step (default {DefaultBatch}).", HelpName = "N" };
        var seq = new Option<int?>("--seq") { Description = $"Sequence length (default {DefaultSeq}, or the model's context when shorter).", HelpName = "N" };
        var steps = new Option<int?>("--steps") { Description = $"Timed steps; the median is reported (default {DefaultSteps}).", HelpName = "N" };
        var warmup = new Option<int?>("--warmup") { Description = $"Untimed steps first (default {DefaultWarmup}).", HelpName = "N" };
        var vocab = new Option<int?>("--vocab") { Description = "Vocabulary of gpt-tiny / llama-tiny (default 50257; the other models have their own).", HelpName = "V" };
        var precision = new Option<string?>("--precision") { Description = "Compute precision (default fp32).", HelpName = "fp32|bf16|fp16" };
        precision.AcceptOnlyFromAmong([.. TrainArguments.Precisions.Keys]);
        var zero = new Option<int?>("--zero")
        {
            Description = "Also run the steps through the chunked ZeRO engine at stage 2 or 3, everything on the device (a run named zero2/zero3; default 0: the baseline only).",
            HelpName = "0|2|3",
        };
        var offload = new Option<string[]>("--offload")
        {
            Description = "Also run under this placement of the model states, repeatable: none, static:PARAMS,OPTIM or auto (auto under a device budget of the zero3 run's peak minus half of the model states; zero3 runs too). Stage max(2, --zero).",
            HelpName = "SPEC",
            Arity = ArgumentArity.ZeroOrMore,
            AllowMultipleArgumentsPerToken = false,
        };
        var layout = new Option<string[]>("--layout")
        {
            Description = "Also run the steps through hal train's trainer on in-process ranks under this parallel layout, repeatable: hal train options as key=value pairs separated by commas " +
                $"({string.Join(", ", StepBenchLayout.KeyNames)}), e.g. dp=2,tp=2. Reports tokens/s against one device through the same trainer, peak bytes per rank and bytes sent per rank per step (counted).",
            HelpName = "KEY=VALUE,...",
            Arity = ArgumentArity.ZeroOrMore,
            AllowMultipleArgumentsPerToken = false,
        };
        var json = new Option<bool>("--json") { Description = "Print one JSON object (see docs/training.md) instead of a table." };
        var step = new Command("step", "Tokens/s, achieved GFLOP/s (6·N + 12·L·C·T per token) and MFU of whole training steps: forward, backward, optimizer.")
        {
            model, backend, batch, seq, steps, warmup, vocab, precision, zero, offload, layout, json,
        };
        step.SetAction(parse =>
        {
            string name = parse.GetValue(model) ?? DefaultModel;
            if (!ModelConfig.Names.Contains(name, StringComparer.Ordinal))
            {
                throw new UsageException($"--model {name}: unknown model; known models: {string.Join(", ", ModelConfig.Names)}");
            }
            var spec = new StepBenchSpec(
                name,
                Positive("--batch", parse.GetValue(batch) ?? DefaultBatch),
                Positive("--seq", parse.GetValue(seq) ?? Math.Min(DefaultSeq, ModelConfig.Named(name).ContextLength)),
                Positive("--steps", parse.GetValue(steps) ?? DefaultSteps),
                NonNegative("--warmup", parse.GetValue(warmup) ?? DefaultWarmup),
                parse.GetValue(precision) is { } p ? TrainArguments.Precisions[p] : Models.Training.Precision.Fp32,
                parse.GetValue(vocab) is { } v ? AtLeastTwo(v) : null,
                Zero: parse.GetValue(zero) ?? 0,
                Offloads: [.. (parse.GetValue(offload) ?? []).Select(ParseOffload)]);
            StepBench.Config(spec);
            var layouts = (parse.GetValue(layout) ?? []).Select(StepBenchLayout.Parse).ToList();
            using var session = globals.OpenSession(parse);
            var b = session.Runtime.GetBackend(parse.GetValue(backend) ?? "cpu");
            var probe = b.Probe();
            if (!probe.Available)
            {
                throw new BackendUnavailableException(b.Name, probe.Reason ?? "no reason given");
            }
            using var device = b.Open(0);
            var stdout = parse.InvocationConfiguration.Output;
            // Progress goes to stderr so that --json output on stdout stays parseable.
            var result = StepBench.Run(device, spec, parse.InvocationConfiguration.Error);
            if (layouts.Count > 0)
            {
                result = result with { Layouts = StepBench.RunLayouts(() => b.Open(0), spec, layouts, parse.InvocationConfiguration.Error) };
            }
            if (parse.GetValue(json))
            {
                stdout.WriteLine(JsonSerializer.Serialize(result, JsonOptions));
            }
            else
            {
                WriteTable(stdout, result);
            }
            return 0;
        });
        bench.Subcommands.Add(step);
    }

    private static int Positive(string option, int value) =>
        value >= 1 ? value : throw new UsageException($"{option} {value}: must be at least 1");

    private static int NonNegative(string option, int value) =>
        value >= 0 ? value : throw new UsageException($"{option} {value}: must be 0 or more");

    private static OffloadSpec ParseOffload(string text)
    {
        try
        {
            return OffloadSpec.Parse(text);
        }
        catch (FormatException e)
        {
            throw new UsageException(e.Message);
        }
    }

    private static int AtLeastTwo(int vocab) =>
        vocab >= 2 ? vocab : throw new UsageException($"--vocab {vocab}: a vocabulary has at least 2 tokens");

    private static void WriteTable(TextWriter stdout, StepBenchResult r)
    {
        var console = Output.Console(stdout);
        console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{r.Model} on {r.Device}: batch {r.Batch} × seq {r.Seq}, {r.Precision}; {r.Parameters:N0} parameters ({r.MatmulParameters:N0} in matmuls), {r.FlopsPerToken / 1e6:F1} MFLOP/token by {r.FlopFormula}"));
        // The placement columns only when there is more than the baseline to compare.
        bool variants = r.Runs.Count > 1;
        var table = new Table().AddColumns("run", "tokens/s", "median step ms", "GFLOP/s", "peak GFLOP/s", "MFU", "peak device bytes");
        if (variants)
        {
            table.AddColumns("vs baseline", "off-device", "traffic/step", "budget");
        }
        foreach (var run in r.Runs)
        {
            var cells = new List<string>
            {
                Markup.Escape(run.Name),
                run.TokensPerSec.ToString("0", CultureInfo.InvariantCulture),
                run.MedianStepMs.ToString("0.0", CultureInfo.InvariantCulture),
                run.Gflops.ToString("0.0", CultureInfo.InvariantCulture),
                r.PeakGflops.ToString("0.0", CultureInfo.InvariantCulture),
                run.Mfu.ToString("P1", CultureInfo.InvariantCulture),
                run.PeakDeviceBytes.ToString("N0", CultureInfo.InvariantCulture),
            };
            if (variants)
            {
                cells.Add(run.RatioToBaseline.ToString("0.00", CultureInfo.InvariantCulture));
                cells.Add(run.OffDeviceFraction.ToString("P1", CultureInfo.InvariantCulture));
                cells.Add((run.TierTrafficBytesPerStep / (1024.0 * 1024.0)).ToString("0.0", CultureInfo.InvariantCulture) + " MiB");
                cells.Add(run.DeviceBudgetBytes is { } budget ? budget.ToString("N0", CultureInfo.InvariantCulture) : "-");
            }
            table.AddRow([.. cells]);
        }
        console.Write(table);
        if (r.Layouts is { } layouts)
        {
            var lt = new Table().AddColumns("layout", "ranks", "tokens/s", "median step ms", "vs one device", "peak bytes per rank", "bytes sent per rank per step", "bubble (theoretical)", "last loss");
            foreach (var l in layouts)
            {
                lt.AddRow(
                    Markup.Escape(l.Layout),
                    l.Ranks.ToString(CultureInfo.InvariantCulture),
                    l.TokensPerSec.ToString("0", CultureInfo.InvariantCulture),
                    l.MedianStepMs.ToString("0.0", CultureInfo.InvariantCulture),
                    l.RatioToSingle.ToString("0.00", CultureInfo.InvariantCulture),
                    l.PeakDeviceBytesPerRank.ToString("N0", CultureInfo.InvariantCulture),
                    l.CommBytesPerStep.ToString("N0", CultureInfo.InvariantCulture),
                    l.Bubble is { } bubble ? string.Create(CultureInfo.InvariantCulture, $"{bubble:0.000} ({l.BubbleTheoretical ?? double.NaN:0.000})") : "-",
                    l.LastLoss.ToString("0.0000", CultureInfo.InvariantCulture));
            }
            console.Write(lt);
        }
    }
}
