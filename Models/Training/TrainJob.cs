using System.Diagnostics;
using Hal.Models.Data;

namespace Hal.Models.Training;

/// <summary>Options of a training run on the synthetic corpus.</summary>
public sealed record TrainOptions
{
    public int Steps { get; init; } = 300;

    public int BatchTokens { get; init; } = 256;

    public int VocabSize { get; init; } = 64;

    public int Successors { get; init; } = 4;

    public int Channels { get; init; } = 64;

    /// <summary>Peak learning rate, reached after <see cref="WarmupSteps"/> and decayed by a cosine to 10% of itself at the last step.</summary>
    public double LearningRate { get; init; } = 1e-2;

    public int WarmupSteps { get; init; } = 20;

    public ulong Seed { get; init; } = 1337;

    public int LogEvery { get; init; } = 25;
}

/// <summary>The outcome of a run: the loss per step and the corpus's entropy floor.</summary>
public sealed record TrainResult(IReadOnlyList<double> Losses, double EntropyRateNats, double UniformLossNats, long ParameterCount, double TokensPerSecond)
{
    /// <summary>Mean loss over the last 10% of steps (at least one).</summary>
    public double FinalLoss
    {
        get
        {
            int k = Math.Max(1, Losses.Count / 10);
            return Losses.Skip(Losses.Count - k).Average();
        }
    }
}

/// <summary>
/// The training loop as a story: build the corpus and the model, then per step forward, backward, update.
/// The loss must approach the corpus's entropy rate, which is known exactly.
/// </summary>
public static class TrainJob
{
    /// <exception cref="ArgumentOutOfRangeException">an option is out of range.</exception>
    public static TrainResult Run(IDevice device, TrainOptions options, TextWriter log)
    {
        ArgumentNullException.ThrowIfNull(device);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.Steps, 1, nameof(options.Steps));
        ArgumentOutOfRangeException.ThrowIfLessThan(options.BatchTokens, 1, nameof(options.BatchTokens));
        ArgumentOutOfRangeException.ThrowIfLessThan(options.Channels, 1, nameof(options.Channels));
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(options.LearningRate, nameof(options.LearningRate));

        var ops = new Ops(device);
        var corpus = new MarkovCorpus(options.VocabSize, options.Successors, options.Seed);
        using var model = new MlpLanguageModel(ops, options.VocabSize, options.Channels, options.Seed);
        log.WriteLine($"model: mlp-lm V={model.V} C={model.C} F={model.F}, {model.ParameterCount:N0} parameters on {device.Id} ({device.Capabilities.Name})");
        log.WriteLine($"data: synthetic Markov corpus, {corpus.Successors} successors per token, entropy rate {corpus.EntropyRateNats:F4} nats (uniform guess {Math.Log(corpus.VocabSize):F4})");

        var losses = new List<double>(options.Steps);
        var clock = Stopwatch.StartNew();
        for (int step = 1; step <= options.Steps; step++)
        {
            var (inputs, targets) = corpus.NextBatch(options.BatchTokens);
            using var ids = ops.FromArray(inputs, new Shape(inputs.Length));
            using var tgt = ops.FromArray(targets, new Shape(targets.Length));
            double loss = model.Forward(ids, tgt);
            model.Backward();
            model.Step(new AdamWConfig(LearningRateAt(options, step), 0.9, 0.95, 1e-8, 0.0), step);
            losses.Add(loss);
            if (step == 1 || step % options.LogEvery == 0 || step == options.Steps)
            {
                log.WriteLine($"step {step,5}/{options.Steps}  loss {loss:F4}  (floor {corpus.EntropyRateNats:F4})");
            }
        }
        device.Synchronize();
        double tokensPerSecond = (double)options.Steps * options.BatchTokens / clock.Elapsed.TotalSeconds;
        return new TrainResult(losses, corpus.EntropyRateNats, Math.Log(corpus.VocabSize), model.ParameterCount, tokensPerSecond);
    }

    /// <summary>Linear warm-up to the peak, then a cosine decay to 10% of it at the last step.</summary>
    public static double LearningRateAt(TrainOptions options, int step)
    {
        double peak = options.LearningRate;
        if (step <= options.WarmupSteps)
        {
            return peak * step / Math.Max(1, options.WarmupSteps);
        }
        double progress = (double)(step - options.WarmupSteps) / Math.Max(1, options.Steps - options.WarmupSteps);
        double minimum = 0.1 * peak;
        return minimum + (0.5 * (peak - minimum) * (1 + Math.Cos(Math.PI * Math.Min(1, progress))));
    }
}
