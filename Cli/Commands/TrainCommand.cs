using System.CommandLine;
using System.Globalization;
using Hal.Models.Training;

namespace Hal.Cli.Commands;

/// <summary>
/// <c>hal train</c>: trains a next-token model on the built-in synthetic corpus (known entropy, no download) on any
/// backend's device 0, and reports how close the loss came to the corpus's entropy floor.
/// </summary>
internal static class TrainCommand
{
    public static Command Create(GlobalOptions globals)
    {
        var backend = new Option<string>("--backend")
        {
            Description = "Backend to train on (its device 0).",
            HelpName = "NAME",
            DefaultValueFactory = _ => "cpu",
        };
        var defaults = new TrainOptions();
        var steps = PositiveInt("--steps", $"Number of optimizer steps (default {defaults.Steps}).", "N");
        var batch = PositiveInt("--batch-tokens", $"Tokens per step (default {defaults.BatchTokens}).", "N");
        var vocab = PositiveInt("--vocab", $"Vocabulary of the synthetic corpus (default {defaults.VocabSize}).", "V");
        var channels = PositiveInt("--channels", $"Embedding channels C; the hidden layer has 4C (default {defaults.Channels}).", "C");
        var seed = new Option<ulong?>("--seed") { Description = $"Seed of the corpus and the initial weights (default {defaults.Seed}).", HelpName = "N" };
        var lr = new Option<double?>("--lr") { Description = $"AdamW learning rate (default {defaults.LearningRate.ToString(CultureInfo.InvariantCulture)}).", HelpName = "X" };
        lr.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<double?>() is { } v && !(v > 0 && double.IsFinite(v)))
            {
                r.AddError("--lr: must be a positive finite number");
            }
        });
        var command = new Command("train", "Train a next-token model on the synthetic corpus; the loss should approach the corpus's entropy.")
        {
            backend, steps, batch, vocab, channels, seed, lr,
        };
        command.SetAction(parse =>
        {
            using var session = globals.OpenSession(parse);
            var b = session.Runtime.GetBackend(parse.GetValue(backend) ?? "cpu");
            var probe = b.Probe();
            if (!probe.Available)
            {
                throw new BackendUnavailableException(b.Name, probe.Reason ?? "no reason given");
            }
            var options = defaults with
            {
                Steps = parse.GetValue(steps) ?? defaults.Steps,
                BatchTokens = parse.GetValue(batch) ?? defaults.BatchTokens,
                VocabSize = parse.GetValue(vocab) ?? defaults.VocabSize,
                Channels = parse.GetValue(channels) ?? defaults.Channels,
                Seed = parse.GetValue(seed) ?? defaults.Seed,
                LearningRate = parse.GetValue(lr) ?? defaults.LearningRate,
            };
            if (options.VocabSize < 2)
            {
                throw new HalException("--vocab: the corpus needs at least 2 tokens");
            }
            options = options with { Successors = Math.Min(options.Successors, options.VocabSize) };
            var stdout = parse.InvocationConfiguration.Output;
            using var device = b.Open(0);
            var result = TrainJob.Run(device, options, stdout);
            stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"done: final loss {result.FinalLoss:F4} nats, entropy floor {result.EntropyRateNats:F4}, gap {result.FinalLoss - result.EntropyRateNats:F4}; " +
                $"{result.TokensPerSecond:F0} tokens/s; peak device memory {device.Allocator.Stats.PeakBytesInUse:N0} bytes"));
            return 0;
        });
        return command;
    }

    private static Option<int?> PositiveInt(string name, string description, string helpName)
    {
        var o = new Option<int?>(name) { Description = description, HelpName = helpName };
        o.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<int?>() is <= 0)
            {
                r.AddError($"{name}: must be a positive number");
            }
        });
        return o;
    }
}
