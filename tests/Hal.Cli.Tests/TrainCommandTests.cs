using Hal.Cli.Commands;
using Hal.Models.Training;

namespace Hal.Cli.Tests;

/// <summary><c>hal train</c>: every bad option exits 2 with a message that names it, before any work; good options reach the trainer as a TrainConfig.</summary>
public sealed class TrainCommandTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("hal-train-cli-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Theory]
    [InlineData("unknown model; known models: gpt-tiny, gpt2-small", "--model", "gpt-huge")]
    [InlineData("--dp 0: must be at least 1", "--dp", "0")]
    [InlineData("--dp -2: must be at least 1", "--dp", "-2")]
    [InlineData("--batch 8 is not divisible by dp × grad-accum = 3 × 1 = 3", "--dp", "3", "--batch", "8")]
    [InlineData("use --batch 6 or 12", "--dp", "2", "--grad-accum", "3", "--batch", "8")]
    [InlineData("--seq 65 is longer than the context of model 'gpt-tiny' (64 tokens)", "--seq", "65")]
    [InlineData("--seq 257 is longer than the context of model 'gpt2-small' (256 tokens)", "--model", "gpt2-small", "--seq", "257")]
    [InlineData("--steps 0: must be at least 1", "--steps", "0")]
    [InlineData("--lr -0.1: must be a positive finite number", "--lr", "-0.1")]
    [InlineData("--lr 0: must be a positive finite number", "--lr", "0")]
    [InlineData("--lr NaN: must be a positive finite number", "--lr", "NaN")]
    [InlineData("--lr Infinity: must be a positive finite number", "--lr", "Infinity")]
    [InlineData("--clip -1: must be a finite number ≥ 0", "--clip", "-1")]
    [InlineData("--weight-decay -0.01: must be a finite number ≥ 0", "--weight-decay", "-0.01")]
    [InlineData("--plot loss.jpg: the plot is a PNG image; give a file name ending in .png", "--plot", "loss.jpg")]
    [InlineData("--grad-accum 0: must be at least 1", "--grad-accum", "0")]
    [InlineData("--batch 0: must be at least 1", "--batch", "0")]
    [InlineData("--warmup -1: must be 0 or more steps", "--warmup", "-1")]
    [InlineData("--log-every 0: must be at least 1", "--log-every", "0")]
    [InlineData("--checkpoint-every 5 needs --out DIR", "--checkpoint-every", "5")]
    [InlineData("--resume /nonexistent/hal-ckpt: no such directory", "--resume", "/nonexistent/hal-ckpt")]
    [InlineData("--data /nonexistent/corpus.txt: no such file", "--data", "/nonexistent/corpus.txt")]
    [InlineData("--init /nonexistent/hf: no such directory", "--init", "/nonexistent/hf")]
    [InlineData("--json-log /nonexistent/dir/log.jsonl: the folder /nonexistent/dir does not exist", "--json-log", "/nonexistent/dir/log.jsonl")]
    [InlineData("backend 'nosuch' is not available", "--backend", "nosuch")]
    [InlineData("registered: cpu", "--backend", "nosuch")]
    public void BadOptionExitsTwoWithAMessageSayingWhatToChange(string expected, params string[] args)
    {
        var r = CliRunner.Run(["train", .. args]);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains(expected, r.Stderr);
        Assert.StartsWith("hal: ", r.Stderr);
        Assert.Equal("", r.Stdout);
    }

    [Theory]
    [InlineData("--precision", "fp8")]
    [InlineData("--optimizer", "adam")]
    [InlineData("--schedule", "linear")]
    [InlineData("--steps", "many")]
    [InlineData("--lr", "fast")]
    public void UnparsableOptionExitsTwoAndNamesTheValue(string option, string value)
    {
        var r = CliRunner.Run("train", option, value);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains(value, r.Stderr);
        Assert.Contains("hal train --help", r.Stderr);
    }

    [Fact]
    public void InitAndModelTogetherIsAUsageError()
    {
        File.WriteAllText(Path.Combine(_dir, "config.json"), "{\"n_positions\": 32}");
        var r = CliRunner.Run("train", "--init", _dir, "--model", "gpt-tiny");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("--init and --model both name the model", r.Stderr);
    }

    [Fact]
    public void InitDirectoryContextBoundsSeq()
    {
        File.WriteAllText(Path.Combine(_dir, "config.json"), "{\"n_positions\": 32}");
        var r = CliRunner.Run("train", "--init", _dir, "--seq", "33");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains($"--seq 33 is longer than the context of the model in {_dir} (32 tokens)", r.Stderr);
    }

    [Fact]
    public void UnderMpirunDpMustEqualTheWorldSize()
    {
        var args = new Training.TrainArguments { Config = new TrainConfig { Dp = 2, Batch = 8 }, DpGiven = true };
        var e = Assert.Throws<UsageException>(() => args.Validate(worldSize: 4));
        Assert.Equal("--dp 2 differs from the 4 processes mpirun started; under mpirun omit --dp or give -np's value", e.Message);
        (args with { Config = args.Config with { Dp = 4 } }).Validate(worldSize: 4);
    }

    [Theory]
    [InlineData("{\"n_positions\": 1024}", 1024)]
    [InlineData("{\"max_position_embeddings\": 2048, \"model_type\": \"llama\"}", 2048)]
    [InlineData("{\"model_type\": \"gpt2\"}", int.MaxValue)]
    public void InitContextLengthComesFromConfigJson(string json, int expected)
    {
        File.WriteAllText(Path.Combine(_dir, "config.json"), json);
        Assert.Equal(expected, Training.TrainArguments.InitContextLength(_dir));
    }

    [Fact]
    public void InitDirectoryWithoutConfigIsAUsageError()
    {
        var r = CliRunner.Run("train", "--init", _dir);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("it has no config.json", r.Stderr);
    }

    [Fact]
    public void OptionsReachTheTrainerAsATrainConfigWithOneDevicePerRank()
    {
        TrainConfig? seen = null;
        int deviceCount = -1;
        string log = Path.Combine(_dir, "log.jsonl");
        var r = WithTrainer((config, devices, world, observer, _) =>
        {
            seen = config;
            deviceCount = devices.Count;
            Assert.Null(world);
            return FakeRun(config, observer, [3.0, 2.5, 2.25]);
        }, "train", "--model", "llama-tiny", "--dp", "2", "--precision", "bf16", "--optimizer", "lamb", "--lr", "0.01",
            "--schedule", "constant", "--warmup", "5", "--weight-decay", "0.1", "--clip", "0", "--steps", "3", "--batch", "12",
            "--seq", "32", "--grad-accum", "3", "--seed", "42", "--shuffle", "--out", _dir, "--checkpoint-every", "2",
            "--checkpoint-activations", "--log-every", "1", "--json-log", log, "--device-memory", "64MiB");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.NotNull(seen);
        var expected = new TrainConfig
        {
            Model = "llama-tiny",
            Dp = 2,
            Precision = Precision.Bf16,
            Optimizer = OptimizerKind.Lamb,
            LearningRate = 0.01,
            Schedule = ScheduleKind.Constant,
            WarmupSteps = 5,
            WeightDecay = 0.1,
            Clip = 0,
            Steps = 3,
            Batch = 12,
            Seq = 32,
            GradAccum = 3,
            Seed = 42,
            Shuffle = true,
            OutDir = _dir,
            CheckpointEvery = 2,
            CheckpointActivations = true,
            LogEvery = 1,
            DeviceMemoryBytes = 64L << 20,
        };
        Assert.Equal(expected, seen);
        Assert.Equal(2, deviceCount);
        Assert.Equal(5, File.ReadAllLines(log).Length);
        Assert.Contains("done: 3 steps, final loss 2.2500 nats/token, corpus entropy 2.0000, gap 0.2500", r.Stdout);
    }

    [Fact]
    public void DefaultsComeFromTrainConfig()
    {
        TrainConfig? seen = null;
        var r = WithTrainer((config, devices, world, observer, _) =>
        {
            seen = config;
            return FakeRun(config, observer, [1.0]);
        }, "train");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Equal(new TrainConfig(), seen);
    }

    [Fact]
    public void TrainerErrorsExitTwoWithTheirMessage()
    {
        var r = WithTrainer((_, _, _, _, _) => throw new HalException("the trainer says no"), "train", "--steps", "1");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("hal: the trainer says no", r.Stderr);
    }

    [Fact]
    public void TrainEndToEndWritesTheJsonLinesContract()
    {
        string log = Path.Combine(_dir, "run.jsonl");
        var r = CliRunner.Run("train", "--steps", "3", "--batch", "2", "--seq", "16", "--log-every", "1", "--json-log", log, "--device-memory", "512MiB");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var lines = File.ReadAllLines(log).Select(l => System.Text.Json.JsonDocument.Parse(l).RootElement).ToArray();
        Assert.Equal(5, lines.Length);
        Assert.Equal("start", lines[0].GetProperty("event").GetString());
        Assert.Equal("gpt-tiny", lines[0].GetProperty("model").GetString());
        Assert.Equal(1, lines[0].GetProperty("dp").GetInt32());
        // The synthetic corpus has a known entropy rate, in nats/token: positive and below ln(vocabulary).
        double entropy = lines[0].GetProperty("corpusEntropy").GetDouble();
        Assert.True(entropy > 0, $"corpusEntropy {entropy}");
        for (int s = 1; s <= 3; s++)
        {
            var step = lines[s];
            Assert.Equal(s, step.GetProperty("step").GetInt64());
            Assert.True(double.IsFinite(step.GetProperty("loss").GetDouble()));
            Assert.True(step.GetProperty("lr").GetDouble() > 0);
            Assert.True(step.GetProperty("tokensPerSec").GetDouble() > 0);
            Assert.True(step.GetProperty("gradNorm").GetDouble() > 0);
        }
        var end = lines[4];
        Assert.Equal("end", end.GetProperty("event").GetString());
        Assert.Equal(3, end.GetProperty("steps").GetInt64());
        Assert.True(end.GetProperty("peakDeviceBytes").GetInt64() > 0);
        Assert.True(end.GetProperty("modelStateBytes").GetInt64() > 0);
        Assert.Contains("step 3/3", r.Stdout);
        Assert.Contains("done: 3 steps, final loss ", r.Stdout);
        Assert.Contains(", corpus entropy ", r.Stdout);
    }

    [Fact]
    public void TrainReportsAnOutOfMemoryLimitWithItsNumbers()
    {
        var r = CliRunner.Run("train", "--steps", "1", "--device-memory", "4KiB");
        Assert.Equal(2, r.ExitCode);
        Assert.StartsWith("hal: model 'gpt-tiny' needs about ", r.Stderr);
        Assert.Contains("or a larger --device-memory", r.Stderr);
        Assert.Equal("", r.Stdout);
    }

    [Fact]
    public void ACancellationThatIsNotCtrlCIsAnInternalError()
    {
        var r = WithTrainer((_, _, _, _, _) => throw new OperationCanceledException(), "train", "--steps", "1");
        // Only Ctrl+C on the process's own console cancels; an OperationCanceledException from elsewhere is a bug (exit 1).
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("internal error: System.OperationCanceledException", r.Stderr);
    }

    private static CliRunner.Result WithTrainer(TrainCommand.TrainerRun trainer, params string[] args)
    {
        TrainCommand.TrainerOverride.Value = trainer;
        try
        {
            return CliRunner.Run(args);
        }
        finally
        {
            TrainCommand.TrainerOverride.Value = null;
        }
    }

    /// <summary>
    /// Runs <c>hal</c> with <paramref name="args"/> against a trainer that only records what it was given (a one-step fake
    /// run); asserts exit code 0 and returns the configuration and the number of devices the command handed over.
    /// </summary>
    internal static (TrainConfig Config, int Devices) SeenByTrainer(params string[] args)
    {
        TrainConfig? seen = null;
        int devices = 0;
        TrainCommand.TrainerOverride.Value = (config, ranks, world, observer, _) =>
        {
            seen = config;
            devices = ranks.Count;
            return FakeRun(config, observer, [1.0]);
        };
        try
        {
            var r = CliRunner.Run(args);
            Assert.True(r.ExitCode == 0, r.Stderr);
        }
        finally
        {
            TrainCommand.TrainerOverride.Value = null;
        }
        Assert.NotNull(seen);
        return (seen, devices);
    }

    /// <summary>Reports a run with the given losses, as a trainer would, on a corpus of entropy 2 nats.</summary>
    internal static TrainEnd FakeRun(TrainConfig config, ITrainingObserver observer, double[] losses)
    {
        observer.OnStart(new TrainStart(config.Model, 1000, "cpu", config.Dp, 2.0, losses.Length, config.Batch, config.Seq, config.Data, "fp32", "adamw", 1));
        for (int i = 0; i < losses.Length; i++)
        {
            observer.OnStep(new TrainStep(i + 1, losses[i], 1e-3, 1000, 0.5, false, 1));
        }
        var end = new TrainEnd(losses[^1], 1000, 4096, losses.Length, 0, 2.0, losses, null, TimeSpan.FromSeconds(1.5));
        observer.OnEnd(end);
        return end;
    }
}
