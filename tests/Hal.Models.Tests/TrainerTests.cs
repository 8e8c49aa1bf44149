using Hal.Backends.Cpu;
using Hal.Models.Training;

namespace Hal.Models.Tests;

/// <summary>Whole training runs on the CPU backend: the loss falls, data parallel and gradient accumulation give the
/// single-device curve, and a resumed run continues bit for bit.</summary>
public sealed class TrainerTests
{
    // A short gpt-tiny run; small enough for the test suite on two cores.
    private static readonly TrainConfig Tiny = new()
    {
        Model = "gpt-tiny",
        Steps = 6,
        Batch = 4,
        Seq = 16,
        WarmupSteps = 2,
        LearningRate = 3e-3,
        LogEvery = 1,
    };

    [Fact]
    public void LossFallsTowardTheCorpusEntropy()
    {
        var end = Train(Tiny with { Steps = 40, Batch = 32, Seq = 32, WarmupSteps = 5 }, 1);
        double first = end.Losses[0];
        Assert.True(end.CorpusEntropy is > 0, "the synthetic corpus reports its entropy");
        // The first loss is near ln V (uniform guessing); the default run closes ~90% of the gap to the entropy in 400
        // steps, and these first 40 must already close a tenth of it (runs here closed about a fifth).
        Assert.True(end.FinalLoss < first - (0.1 * (first - end.CorpusEntropy!.Value)),
            $"final loss {end.FinalLoss:F4} did not close 10% of the gap from {first:F4} to the entropy {end.CorpusEntropy:F4}");
    }

    [Theory]
    [InlineData(2)]
    [InlineData(4)]
    public void DataParallelRanksGiveTheSingleDeviceLosses(int dp)
    {
        var single = Train(Tiny, 1);
        var parallel = Train(Tiny with { Dp = dp }, dp);
        // fp32 sums over a different grouping of the batch (per-rank means, then the mean over ranks): the losses agree
        // to a few float ulps per step; 1e-5 relative is the bound the parallel-layout tests use.
        AssertCurvesClose(single.Losses, parallel.Losses, 1e-5, $"dp={dp}");
    }

    [Fact]
    public void ModelStateBytesCountParametersGradientsAndAdamMomentsOverAllRanks()
    {
        long n = Transformer.ModelConfig.Named("gpt-tiny", 32).ParameterCount;
        // fp32 AdamW: 4 bytes each of parameter, gradient, first and second moment per parameter, on every rank.
        Assert.Equal(16 * n, Train(Tiny with { Steps = 1 }, 1).ModelStateBytes);
        Assert.Equal(2 * 16 * n, Train(Tiny with { Steps = 1, Dp = 2 }, 2).ModelStateBytes);
        // ZeRO-1 keeps each rank's moments only for its shard: 8 bytes per parameter once over the ranks.
        Assert.Equal((2 * 8 * n) + (8 * n), Train(Tiny with { Steps = 1, Dp = 2, Zero = 1 }, 2).ModelStateBytes);
    }

    [Fact]
    public void GradientAccumulationGivesTheFullBatchLosses()
    {
        var full = Train(Tiny, 1);
        var accumulated = Train(Tiny with { GradAccum = 2 }, 1);
        AssertCurvesClose(full.Losses, accumulated.Losses, 1e-5, "grad-accum 2");
    }

    [Fact]
    public void ResumedRunEqualsTheUninterruptedOneBitForBit()
    {
        string dir = Path.Combine(Path.GetTempPath(), "hal-resume-" + Guid.NewGuid().ToString("N"));
        try
        {
            var whole = Train(Tiny, 1);
            Train(Tiny with { Steps = 6, OutDir = dir, CheckpointEvery = 3 }, 1);
            // Resume from the step-3 checkpoint, not the final one.
            string step3 = Path.Combine(dir, "step-00000003");
            var resumed = Train(Tiny with { ResumeDir = step3 }, 1);
            Assert.Equal(whole.Losses.Count, resumed.Losses.Count);
            for (int i = 0; i < whole.Losses.Count; i++)
            {
                Assert.True(BitConverter.DoubleToInt64Bits(whole.Losses[i]) == BitConverter.DoubleToInt64Bits(resumed.Losses[i]),
                    $"step {i + 1}: uninterrupted {whole.Losses[i]:R} vs resumed {resumed.Losses[i]:R}");
            }
        }
        finally
        {
            if (Directory.Exists(dir))
            {
                Directory.Delete(dir, recursive: true);
            }
        }
    }

    [Fact]
    public void InitFromACheckpointDirectoryStartsFromItsWeights()
    {
        string dir = Path.Combine(Path.GetTempPath(), "hal-init-" + Guid.NewGuid().ToString("N"));
        try
        {
            Train(Tiny with { Steps = 3, OutDir = dir }, 1);
            string stepDir = Path.Combine(dir, "step-00000003");
            var started = Train(Tiny with { InitDir = stepDir, Steps = 2 }, 1);

            // The first loss of the new run is the loss of the checkpoint's weights on the first batch, computed here
            // without the trainer: Hugging Face loading, the loader's first batch, one forward.
            using var device = new CpuBackend().Open(0);
            var ops = new Ops(device);
            using var model = new Transformer.TransformerModel(ops, Checkpoints.HuggingFace.ReadConfig(stepDir));
            Checkpoints.HuggingFace.LoadWeights(stepDir, model.Parameters, ops);
            using var data = Data.TokenDatasets.Open("synthetic", Tiny.Seed);
            var loader = new Data.BatchLoader(data, Tiny.Batch, Tiny.Seq, shuffle: false, Tiny.Seed);
            var inputs = new int[Tiny.Batch * Tiny.Seq];
            var targets = new int[inputs.Length];
            loader.Next(inputs, targets);
            var shape = new Shape(Tiny.Batch, Tiny.Seq);
            using var ids = ops.FromArray(Array.ConvertAll(inputs, t => (double)t), shape, DType.I32);
            using var tgt = ops.FromArray(Array.ConvertAll(targets, t => (double)t), shape, DType.I32);
            double expected = model.Forward(ids, tgt);
            Assert.Equal(expected, started.Losses[0]);
        }
        finally
        {
            if (Directory.Exists(dir))
            {
                Directory.Delete(dir, recursive: true);
            }
        }
    }

    [Theory]
    [InlineData(Precision.Bf16, "llama-tiny")]
    [InlineData(Precision.Fp16, "gpt-tiny")]
    public void SixteenBitComputeFollowsTheFp32Curve(Precision precision, string model)
    {
        var job = Tiny with { Model = model, Steps = 12, Batch = 16, Seq = 32 };
        var fp32 = Train(job, 1);
        var half = Train(job with { Precision = precision }, 1);
        Assert.Equal(fp32.Losses.Count, half.Losses.Count);
        for (int i = 0; i < fp32.Losses.Count; i++)
        {
            // Activations rounded to 8 (bf16) or 11 (fp16) significant bits with fp32 master weights; the loss is a mean
            // over 512 tokens, so rounding errors largely cancel: measured ≤ 1e-4 relative over these 12 steps. 1e-3
            // leaves room for other summation orders and still catches a broken cast or a lost update.
            Assert.True(Math.Abs(half.Losses[i] - fp32.Losses[i]) <= 1e-3 * fp32.Losses[i],
                $"{precision} {model}: step {i + 1} loss {half.Losses[i]:F5} vs fp32 {fp32.Losses[i]:F5}");
        }
        // fp16 starts at a loss scale of 65536; a skipped step would end the curves' agreement above, so none happened.
        Assert.Equal(0, half.SkippedSteps);
    }

    [Fact]
    public void BatchNotDivisibleByRanksIsRefusedBeforeAnyWork()
    {
        var e = Assert.Throws<TrainConfigException>(() => Train(Tiny with { Batch = 5, Dp = 2 }, 2));
        Assert.Contains("not divisible", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ModelThatDoesNotFitTheMemoryLimitIsRefusedWithTheNumbers()
    {
        var e = Assert.Throws<TrainConfigException>(() => Train(Tiny with { Model = "gpt2-small", DeviceMemoryBytes = 16L << 20, Data = "synthetic" }, 1));
        Assert.Contains("MiB", e.Message, StringComparison.Ordinal);
        Assert.Contains("--device-memory", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void SequenceLongerThanTheContextIsRefused()
    {
        var e = Assert.Throws<TrainConfigException>(() => Train(Tiny with { Seq = 65 }, 1));
        Assert.Contains("context", e.Message, StringComparison.Ordinal);
    }

    internal static TrainEnd Train(TrainConfig config, int ranks)
    {
        var backend = new CpuBackend();
        var devices = Enumerable.Range(0, ranks).Select(_ => backend.Open(0)).ToArray();
        try
        {
            return Trainer.Run(config, devices, null, new RecordingObserver());
        }
        finally
        {
            foreach (var d in devices)
            {
                d.Dispose();
            }
        }
    }

    private static void AssertCurvesClose(IReadOnlyList<double> expected, IReadOnlyList<double> actual, double relative, string what)
    {
        Assert.Equal(expected.Count, actual.Count);
        for (int i = 0; i < expected.Count; i++)
        {
            double bound = relative * Math.Abs(expected[i]);
            Assert.True(Math.Abs(expected[i] - actual[i]) <= bound,
                $"{what}: step {i + 1} loss {actual[i]:R} vs single-device {expected[i]:R} (bound {bound:E2})");
        }
    }

    /// <summary>Keeps the trainer's messages; with <paramref name="crashAtStep"/>, throws <see cref="SimulatedCrashException"/> at that step (a process dying mid-run).</summary>
    internal sealed class RecordingObserver(long crashAtStep = 0) : ITrainingObserver
    {
        public List<string> Messages { get; } = [];

        public void OnStart(TrainStart start)
        {
        }

        public void OnStep(TrainStep step)
        {
            if (step.Step == crashAtStep)
            {
                throw new SimulatedCrashException();
            }
        }

        public void OnMessage(string message) => Messages.Add(message);

        public void OnEnd(TrainEnd end)
        {
        }
    }

    internal sealed class SimulatedCrashException() : Exception("simulated crash");
}
