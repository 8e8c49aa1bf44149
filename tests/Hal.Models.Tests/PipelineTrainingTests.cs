using Xunit.Abstractions;
using Hal.Backends.Cpu;
using Hal.Collectives.InProcess;
using Hal.Models.Checkpoints;
using Hal.Models.Data;
using Hal.Models.Training;
using Hal.Models.Transformer;
using Hal.Parallel.Pipeline;

namespace Hal.Models.Tests;

// Legend: B batch rows, T time, V vocabulary, p pipeline stages, v chunks per stage, m micro-batches.

/// <summary>
/// Pipeline parallelism of GPT-2 and LLaMA on in-process CPU ranks: one step under every schedule gives the
/// single-device loss and gradients; the trainer's five-step curves under pp and its hybrids follow the single-device
/// one; checkpoints move between layouts; impossible layouts are refused; the bubble and peak memory are reported.
/// </summary>
public sealed class PipelineTrainingTests(ITestOutputHelper output)
{
    private const int Batch = 4, Vocab = 37;
    // The tensor-parallel tests' single-device reference initialises from this seed.
    private const ulong Seed = 2024;

    /// <summary>A tiny GPT-2 or LLaMA with <paramref name="layers"/> blocks, C 32, 4 heads (LLaMA: 2 key/value heads), context 16.</summary>
    private static ModelConfig Deep(string family, int layers, int vocab = Vocab) => family == "gpt"
        ? ModelConfig.Gpt2("gpt-deep", layers, heads: 4, channels: 32, vocab, contextLength: 16)
        : ModelConfig.Llama("llama-deep", layers, heads: 4, kvHeads: 2, channels: 32, vocab, contextLength: 16);

    /// <summary>
    /// One step of a p-stage pipeline: m micro-batches of B/m rows each, every stage on its own device; returns the
    /// loss (the last stage's mean over micro-batches), every gradient by name (a tied matrix's two copies summed, as
    /// the trainer sums them) and each stage's device peak.
    /// </summary>
    private static (double Loss, Dictionary<string, double[]> Grads, long[] Peaks) Pipelined(
        ModelConfig config, int pp, PipelineScheduleKind kind, int chunks, int microBatches, int[] ids, int[] targets, bool checkpoint = false)
    {
        var backend = new CpuBackend();
        var devices = Enumerable.Range(0, pp).Select(_ => backend.Open(0)).ToArray();
        double loss = 0;
        var grads = new Dictionary<string, double[]>(StringComparer.Ordinal);
        var peaks = new long[pp];
        var gate = new object();
        int time = ids.Length / Batch, rows = Batch / microBatches;
        try
        {
            InProcessWorld.Run(devices, world =>
            {
                var ops = new Ops(devices[world.Rank]);
                var stage = new PipelineStage(PipelineStage.Partition(config, pp, chunks), world.Rank);
                using var model = new TransformerModel(ops, config, new TransformerOptions { Stage = stage, CheckpointActivations = checkpoint });
                model.Initialize(Seed);
                var idTensors = new List<Tensor>();
                var targetTensors = new List<Tensor>();
                for (int i = 0; i < microBatches; i++)
                {
                    var range = new Range(i * rows * time, (i + 1) * rows * time);
                    idTensors.Add(ops.FromArray(Array.ConvertAll(ids[range], v => (double)v), new Shape(rows, time), DType.I32));
                    targetTensors.Add(ops.FromArray(Array.ConvertAll(targets[range], v => (double)v), new Shape(rows, time), DType.I32));
                }
                var adapter = new TransformerStage(model);
                adapter.SetStep(idTensors, targetTensors, 1.0 / microBatches);
                using (var executor = new PipelineExecutor(world, adapter))
                {
                    executor.Run(PipelineSchedule.Build(kind, world.Rank, pp, microBatches, chunks));
                }
                lock (gate)
                {
                    loss += adapter.LossSum / microBatches;
                    peaks[world.Rank] = devices[world.Rank].Allocator.Stats.PeakBytesInUse;
                    for (int i = 0; i < model.Parameters.Infos.Count; i++)
                    {
                        var g = ops.ToDoubleArray(model.Parameters.Grad(i));
                        string name = model.Parameters.Infos[i].Name;
                        if (grads.TryGetValue(name, out var existing))
                        {
                            grads[name] = [.. existing.Zip(g, (a, b) => a + b)];
                        }
                        else
                        {
                            grads[name] = g;
                        }
                    }
                }
                foreach (var t in idTensors.Concat(targetTensors))
                {
                    t.Dispose();
                }
            });
        }
        finally
        {
            foreach (var d in devices)
            {
                d.Dispose();
            }
        }
        return (loss, grads, peaks);
    }

    internal static double RelativeFrobenius(double[] expected, double[] actual)
    {
        double diff = 0, norm = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            diff += (actual[i] - expected[i]) * (actual[i] - expected[i]);
            norm += expected[i] * expected[i];
        }
        return Math.Sqrt(diff) / Math.Max(Math.Sqrt(norm), 1e-30);
    }

    [Theory]
    [InlineData("gpt", 4, 2, PipelineScheduleKind.GPipe, 1)]
    [InlineData("gpt", 4, 2, PipelineScheduleKind.OneFOneB, 1)]
    [InlineData("gpt", 4, 2, PipelineScheduleKind.Interleaved, 2)]
    [InlineData("gpt", 4, 4, PipelineScheduleKind.GPipe, 1)]
    [InlineData("gpt", 4, 4, PipelineScheduleKind.OneFOneB, 1)]
    [InlineData("gpt", 8, 4, PipelineScheduleKind.Interleaved, 2)]
    [InlineData("llama", 4, 2, PipelineScheduleKind.GPipe, 1)]
    [InlineData("llama", 4, 2, PipelineScheduleKind.OneFOneB, 1)]
    [InlineData("llama", 4, 2, PipelineScheduleKind.Interleaved, 2)]
    [InlineData("llama", 4, 4, PipelineScheduleKind.GPipe, 1)]
    [InlineData("llama", 4, 4, PipelineScheduleKind.OneFOneB, 1)]
    [InlineData("llama", 8, 4, PipelineScheduleKind.Interleaved, 2)]
    public void OneStepEqualsTheSingleDeviceModel(string family, int layers, int pp, PipelineScheduleKind kind, int chunks)
    {
        var config = Deep(family, layers);
        const int seed = 71;
        var (ids, targets) = TensorParallelTrainingTests.Tokens(seed);
        var single = TensorParallelTrainingTests.SingleDevice(config, ids, targets);
        var piped = Pipelined(config, pp, kind, chunks, microBatches: 4, ids, targets);
        string what = $"{family} L{layers} pp {pp} {PipelineSchedule.KindName(kind)} v {chunks} (token seed {seed})";
        // fp32: the micro-batch means are summed in another order than the single-device mean over all tokens.
        Assert.True(Math.Abs(piped.Loss - single.Loss) <= 1e-5 * single.Loss, $"{what}: loss {piped.Loss:R} vs {single.Loss:R}");
        Assert.Equal(single.Grads.Keys.Order(StringComparer.Ordinal), piped.Grads.Keys.Order(StringComparer.Ordinal));
        output.WriteLine($"{what}: loss relative difference {Math.Abs(piped.Loss - single.Loss) / single.Loss:E2}, " +
            $"worst gradient {single.Grads.Max(g => RelativeFrobenius(g.Value, piped.Grads[g.Key])):E2} relative Frobenius");
        foreach (var (name, expected) in single.Grads)
        {
            // fp32: gradients accumulated over 4 micro-batches instead of one GEMM over the batch.
            double error = RelativeFrobenius(expected, piped.Grads[name]);
            Assert.True(error <= 1e-4, $"{what}: gradient of {name} off by {error:E2} relative (Frobenius)");
        }
    }

    [Fact]
    public void TheLmHeadCountsOnTheLastStage()
    {
        // gpt2-small: a block's projections are 12·384² = 1.77 M parameters, the tied head 50257·384 = 19.3 M; over two
        // stages the last keeps one block (the least a chunk holds), so the first takes the other five.
        var gpt2 = PipelineStage.Partition(ModelConfig.Named("gpt2-small"), 2, 1);
        Assert.Equal((0, 5), gpt2.LayersOf(0));
        Assert.Equal((5, 1), gpt2.LayersOf(1));
        // A tiny vocabulary changes nothing: equal blocks split evenly.
        var tiny = PipelineStage.Partition(Deep("gpt", 4), 2, 1);
        Assert.Equal((0, 2), tiny.LayersOf(0));
    }

    [Fact]
    public void ActivationCheckpointingInsideStagesGivesTheSameGradients()
    {
        var config = Deep("gpt", 4);
        const int seed = 72;
        var (ids, targets) = TensorParallelTrainingTests.Tokens(seed);
        var single = TensorParallelTrainingTests.SingleDevice(config, ids, targets);
        var piped = Pipelined(config, 2, PipelineScheduleKind.OneFOneB, 1, 4, ids, targets, checkpoint: true);
        Assert.True(Math.Abs(piped.Loss - single.Loss) <= 1e-5 * single.Loss, $"checkpointed pp 2 (seed {seed}): loss {piped.Loss:R} vs {single.Loss:R}");
        foreach (var (name, expected) in single.Grads)
        {
            // fp32, as above; the recomputed forward is the same arithmetic.
            double error = RelativeFrobenius(expected, piped.Grads[name]);
            Assert.True(error <= 1e-4, $"checkpointed pp 2 (seed {seed}): gradient of {name} off by {error:E2}");
        }
    }

    [Fact]
    public void GPipeKeepsMoreActivationsThanOneFOneB()
    {
        // m = 2p: GPipe holds all 4 micro-batches' activations on stage 0, 1F1B at most p = 2.
        var config = Deep("gpt", 4);
        var (ids, targets) = TensorParallelTrainingTests.Tokens(73);
        var gpipe = Pipelined(config, 2, PipelineScheduleKind.GPipe, 1, 4, ids, targets);
        var oneF = Pipelined(config, 2, PipelineScheduleKind.OneFOneB, 1, 4, ids, targets);
        output.WriteLine($"stage peaks: gpipe {string.Join(", ", gpipe.Peaks)} B, 1f1b {string.Join(", ", oneF.Peaks)} B");
        Assert.True(gpipe.Peaks[0] > oneF.Peaks[0], $"stage 0 peak: gpipe {gpipe.Peaks[0]} B, 1f1b {oneF.Peaks[0]} B");
    }

    // ----- through the trainer -----

    private static readonly TrainConfig Job = TensorParallelTrainingTests.FiveSteps with { Batch = 8 };

    /// <summary>A Hugging Face directory holding a freshly initialised <paramref name="family"/> model of <paramref name="layers"/> blocks over the synthetic corpus's vocabulary.</summary>
    private static string InitDirectory(string family, int layers) => InitDirectory(vocab => Deep(family, layers, vocab));

    /// <summary>A Hugging Face directory holding a freshly initialised model <paramref name="configOfVocab"/> makes for the synthetic corpus's vocabulary.</summary>
    private static string InitDirectory(Func<int, ModelConfig> configOfVocab)
    {
        string dir = Path.Combine(Path.GetTempPath(), "hal-pp-init-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        using var data = TokenDatasets.Open("synthetic", Job.Seed);
        var config = configOfVocab(data.VocabSize);
        using var device = new CpuBackend().Open(0);
        var ops = new Ops(device);
        using var model = new TransformerModel(ops, config);
        model.Initialize(Seed);
        HuggingFace.WriteConfig(dir, config);
        SafeTensors.Write(Path.Combine(dir, "model.safetensors"), Checkpoint.ParametersOf(model.Parameters), ops);
        return dir;
    }

    private static void WithInit(string family, int layers, Action<string> body) => WithInit(vocab => Deep(family, layers, vocab), body);

    /// <summary>Runs <paramref name="body"/> with an --init directory of the model <paramref name="configOfVocab"/> makes for the synthetic corpus, deleted afterwards.</summary>
    internal static void WithInit(Func<int, ModelConfig> configOfVocab, Action<string> body)
    {
        string dir = InitDirectory(configOfVocab);
        try
        {
            body(dir);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Theory]
    [InlineData("gpt", 4, 1, 1, 2, 1, "gpipe", 1, 0)]
    [InlineData("gpt", 4, 1, 1, 2, 1, "1f1b", 1, 0)]
    [InlineData("gpt", 4, 1, 1, 2, 1, "interleaved", 2, 0)]
    [InlineData("gpt", 4, 1, 1, 4, 1, "gpipe", 1, 0)]
    [InlineData("gpt", 4, 1, 1, 4, 1, "1f1b", 1, 0)]
    [InlineData("gpt", 8, 1, 1, 4, 1, "interleaved", 2, 0)]
    [InlineData("llama", 8, 1, 1, 4, 1, "interleaved", 2, 0)]
    [InlineData("llama", 4, 1, 1, 4, 1, "gpipe", 1, 0)]
    [InlineData("llama", 4, 1, 1, 4, 1, "1f1b", 1, 0)]
    [InlineData("llama", 4, 1, 1, 2, 1, "gpipe", 1, 0)]
    [InlineData("llama", 4, 1, 1, 2, 1, "1f1b", 1, 0)]
    [InlineData("llama", 4, 1, 1, 2, 1, "interleaved", 2, 0)]
    [InlineData("gpt", 4, 2, 1, 2, 1, "1f1b", 1, 0)]
    [InlineData("llama", 4, 2, 1, 2, 1, "1f1b", 1, 0)]
    [InlineData("gpt", 4, 1, 2, 2, 1, "1f1b", 1, 0)]
    [InlineData("llama", 4, 1, 2, 2, 1, "interleaved", 2, 0)]
    [InlineData("gpt", 4, 2, 1, 2, 2, "1f1b", 1, 1)]
    [InlineData("llama", 4, 2, 1, 2, 2, "gpipe", 1, 1)]
    [InlineData("gpt", 4, 2, 2, 1, 1, "1f1b", 1, 1)]
    public void FiveAdamWStepsFollowTheSingleDeviceCurve(string family, int layers, int dp, int tp, int pp, int sp, string schedule, int chunks, int zero)
    {
        WithInit(family, layers, dir =>
        {
            var job = Job with { InitDir = dir, MicroBatches = 4 };
            var single = TrainerTests.Train(job, 1);
            var parallel = TrainerTests.Train(job with
            {
                Dp = dp, Tp = tp, Pp = pp, Sp = sp, Zero = zero,
                PpSchedule = PipelineSchedule.ParseKind(schedule), PpChunks = chunks,
            }, dp * tp * pp * sp);
            string what = $"{family} L{layers} dp {dp} tp {tp} pp {pp} sp {sp} {schedule} v {chunks} zero {zero}";
            output.WriteLine($"{what}: worst loss relative difference {TensorParallelTrainingTests.WorstRelative(single.Losses, parallel.Losses):E2}, " +
                $"bubble {parallel.PipelineBubble:F3} (ideal {parallel.PipelineBubbleTheoretical:F3})");
            // fp32 reordered sums (micro-batch accumulation, split GEMMs, ring attention); the clipping norm is the whole model's.
            TensorParallelTrainingTests.AssertCurvesClose(single.Losses, parallel.Losses, 1e-5, what);
        });
    }

    [Theory]
    [InlineData("gpipe", 1)]
    [InlineData("1f1b", 1)]
    [InlineData("interleaved", 2)]
    public void TheBubbleIsReportedBesideTheTheoreticalOne(string schedule, int chunks)
    {
        WithInit("gpt", 4, dir =>
        {
            var end = TrainerTests.Train(Job with { InitDir = dir, Steps = 3, MicroBatches = 4, Pp = 2, PpSchedule = PipelineSchedule.ParseKind(schedule), PpChunks = chunks }, 2);
            output.WriteLine($"{schedule}: bubble {end.PipelineBubble:F3}, ideal {end.PipelineBubbleTheoretical:F3}");
            Assert.NotNull(end.PipelineBubble);
            Assert.InRange(end.PipelineBubble!.Value, 0, 0.999999);
            // (p − 1)/(v·m + p − 1) with p 2, m 4.
            Assert.Equal(1.0 / ((chunks * 4) + 1), end.PipelineBubbleTheoretical!.Value, 12);
            Assert.Equal(2, end.PeakDeviceBytesPerRank.Count);
        });
    }

    [Fact]
    public void GPipePeakMemoryPerRankExceedsOneFOneBsThroughTheTrainer()
    {
        WithInit("gpt", 4, dir =>
        {
            var job = Job with { InitDir = dir, Steps = 1, MicroBatches = 4, Pp = 2 };
            var gpipe = TrainerTests.Train(job with { PpSchedule = PipelineScheduleKind.GPipe }, 2);
            var oneF = TrainerTests.Train(job with { PpSchedule = PipelineScheduleKind.OneFOneB }, 2);
            output.WriteLine($"peak per rank: gpipe {string.Join(", ", gpipe.PeakDeviceBytesPerRank)} B, 1f1b {string.Join(", ", oneF.PeakDeviceBytesPerRank)} B");
            Assert.True(gpipe.PeakDeviceBytesPerRank[0] > oneF.PeakDeviceBytesPerRank[0],
                $"stage 0: gpipe {gpipe.PeakDeviceBytesPerRank[0]} B, 1f1b {oneF.PeakDeviceBytesPerRank[0]} B");
        });
    }

    [Theory]
    [InlineData(1, 2, 1, 1, 1, 0)]
    [InlineData(1, 1, 1, 4, 1, 0)]
    [InlineData(2, 2, 1, 1, 1, 0)]
    [InlineData(1, 2, 1, 1, 2, 1)]
    public void ACheckpointResumesUnderAnotherLayout(int writeTp, int writePp, int resumeTp, int resumePp, int writeDp, int writeZero)
    {
        WithInit("gpt", 4, init =>
        {
            string dir = Path.Combine(Path.GetTempPath(), "hal-pp-ckpt-" + Guid.NewGuid().ToString("N"));
            try
            {
                var job = Job with { InitDir = init, Steps = 4, MicroBatches = 4 };
                var whole = TrainerTests.Train(job, 1);
                TrainerTests.Train(job with { Steps = 2, OutDir = dir, Dp = writeDp, Tp = writeTp, Pp = writePp, Zero = writeZero }, writeDp * writeTp * writePp);
                var resumed = TrainerTests.Train(job with { ResumeDir = dir, Tp = resumeTp, Pp = resumePp }, resumeTp * resumePp);
                string what = $"written at dp {writeDp} tp {writeTp} pp {writePp} zero {writeZero}, resumed at tp {resumeTp} pp {resumePp}";
                output.WriteLine($"{what}: worst loss relative difference {TensorParallelTrainingTests.WorstRelative(whole.Losses, resumed.Losses):E2}");
                // Whole tensors and moments in the files: the resumed curve continues the uninterrupted one (fp32 reordering).
                TensorParallelTrainingTests.AssertCurvesClose(whole.Losses, resumed.Losses, 1e-5, what);
            }
            finally
            {
                if (Directory.Exists(dir))
                {
                    Directory.Delete(dir, recursive: true);
                }
            }
        });
    }

    [Theory]
    [InlineData(2, 1, "1f1b", 1, 4, 0, "none", 3, "= 2 ranks, but 3 are running")]
    [InlineData(2, 1, "interleaved", 2, 4, 0, "none", 2, "fewer than --pp 2 × --pp-chunks 2")]
    [InlineData(2, 1, "interleaved", 1, 4, 0, "none", 2, "needs --pp-chunks 2 or more")]
    [InlineData(2, 1, "1f1b", 2, 4, 0, "none", 2, "use --pp-schedule interleaved")]
    [InlineData(2, 1, "1f1b", 1, 4, 2, "none", 2, "use --zero 1 or --zero 0")]
    [InlineData(2, 1, "1f1b", 1, 4, 0, "static:0.5,0.5", 2, "use --zero 1 or --zero 0")]
    [InlineData(2, 2, "1f1b", 1, 4, 0, "none", 2, "disagree")]
    public void ImpossibleLayoutsAreRefused(int pp, int gradAccum, string schedule, int chunks, int microBatches, int zero, string offload, int ranks, string message)
    {
        // gpt-tiny has 2 blocks: 2 stages × 2 chunks cannot be filled.
        var e = Assert.Throws<TrainConfigException>(() => TrainerTests.Train(Job with
        {
            Pp = pp, GradAccum = gradAccum, PpSchedule = PipelineSchedule.ParseKind(schedule), PpChunks = chunks,
            MicroBatches = microBatches, Zero = zero, Offload = Zero.OffloadSpec.Parse(offload),
        }, ranks));
        Assert.Contains(message, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void MicroBatchesWithoutPipelineStagesAreGradientAccumulation()
    {
        var accumulated = TrainerTests.Train(Job with { GradAccum = 4 }, 1);
        var micro = TrainerTests.Train(Job with { MicroBatches = 4 }, 1);
        // The same job spelled two ways: the same arithmetic, so the same numbers bit for bit.
        Assert.Equal(accumulated.Losses, micro.Losses);
    }

    [Fact]
    public void InterleavedWithMicroBatchesNotAMultipleOfTheStagesIsRefused()
    {
        WithInit("gpt", 4, dir =>
        {
            var e = Assert.Throws<TrainConfigException>(() => TrainerTests.Train(
                Job with { InitDir = dir, Pp = 2, PpSchedule = PipelineScheduleKind.Interleaved, PpChunks = 2, MicroBatches = 1 }, 2));
            Assert.Contains("is not a multiple of 2", e.Message, StringComparison.Ordinal);
        });
    }
}
