using Xunit.Abstractions;
using Hal.Backends.Cpu;
using Hal.Collectives.InProcess;
using Hal.Models.Training;
using Hal.Models.Transformer;
using Hal.Parallel.Mesh;

namespace Hal.Models.Tests;

// Legend: B batch rows, T time (whole sequence), Tl = T/sp tokens per rank, V vocabulary, tp tensor-parallel ranks,
// sp sequence-parallel ranks, dp data-parallel replicas, pp pipeline stages, H query heads, Hkv key/value heads.

/// <summary>
/// Tensor and sequence parallelism together on in-process CPU ranks: each tp rank runs H/tp heads of its T/sp tokens,
/// ring or Ulysses attention over the sp group. One forward/backward gives the single-device loss and, summed over sp
/// and gathered over tp, the single-device gradients; the trainer's five-step curves (plain, dp, pp, ZeRO-1) follow the
/// single-device one; checkpoints move to other layouts; Ulysses with too few heads per tp rank is refused.
/// </summary>
public sealed class TensorSequenceParallelTrainingTests(ITestOutputHelper output)
{
    private const int Batch = 4, Time = 16, Vocab = 37;
    // The tensor-parallel tests' single-device reference initialises from this seed.
    private const ulong Seed = 2024;

    /// <summary>A tiny model with 8 heads (LLaMA: 4 key/value heads), C 64: tp 2 leaves 4 (2) heads, which Ulysses splits over sp 2.</summary>
    private static ModelConfig Heads8(string family, int vocab = Vocab) => family == "gpt"
        ? ModelConfig.Gpt2("gpt-h8", layers: 2, heads: 8, channels: 64, vocab, contextLength: Time)
        : ModelConfig.Llama("llama-h8", layers: 2, heads: 8, kvHeads: 4, channels: 64, vocab, contextLength: Time);

    /// <summary>
    /// One forward/backward over a tp × sp mesh: every rank takes its placed Tl tokens of all B rows; gradients are
    /// summed over sp and gathered over tp. Returns world rank 0's loss, the full gradients and the largest loss
    /// difference between ranks.
    /// </summary>
    private static (double Loss, Dictionary<string, double[]> Grads, double LossSpread) Parallel(
        ModelConfig config, int tp, int sp, SequenceParallelMode mode, int[] ids, int[] targets)
    {
        var backend = new CpuBackend();
        var devices = Enumerable.Range(0, tp * sp).Select(_ => backend.Open(0)).ToArray();
        var losses = new double[tp * sp];
        var grads = new Dictionary<string, double[]>(StringComparer.Ordinal);
        var gate = new object();
        try
        {
            InProcessWorld.Run(devices, world =>
            {
                using var mesh = new DeviceMesh(world, 1, tp, 1, sp);
                var ops = new Ops(devices[world.Rank]);
                using var model = new TransformerModel(ops, config, new TransformerOptions
                {
                    TensorParallel = mesh.TpGroup,
                    SequenceParallel = new SequenceParallelOptions(mesh.SpGroup, mode),
                });
                model.Initialize(Seed);
                int local = Time / sp;
                var positions = SequenceParallelTrainingTests.PlacedPositions(mode, sp, mesh.SpRank);
                var myIds = new double[Batch * local];
                var myTargets = new double[Batch * local];
                for (int r = 0; r < Batch; r++)
                {
                    for (int i = 0; i < local; i++)
                    {
                        myIds[(r * local) + i] = ids[(r * Time) + positions[i]];
                        myTargets[(r * local) + i] = targets[(r * Time) + positions[i]];
                    }
                }
                using var idsT = ops.FromArray(myIds, new Shape(Batch, local), DType.I32);
                using var targetsT = ops.FromArray(myTargets, new Shape(Batch, local), DType.I32);
                double loss = model.Forward(idsT, targetsT);
                model.Backward();
                var store = model.Parameters;
                mesh.SpGroup.AllReduce(store.Grads, store.Grads, ReduceOp.Sum);
                var full = new Nn.ParameterStore();
                TransformerModel.DeclareParameters(full, config);
                var mine = new Dictionary<string, double[]>(StringComparer.Ordinal);
                for (int i = 0; i < store.Infos.Count; i++)
                {
                    var info = full.Infos[i];
                    using var whole = ops.Empty(info.Shape, store.DType);
                    TensorParallelLayout.Gather(ops, mesh.TpGroup, TensorParallelLayout.SpecOf(config, info.Name), store.Grad(i), whole);
                    mine[info.Name] = ops.ToDoubleArray(whole);
                }
                lock (gate)
                {
                    losses[world.Rank] = loss;
                    if (world.Rank == 0)
                    {
                        foreach (var (name, values) in mine)
                        {
                            grads[name] = values;
                        }
                    }
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
        return (losses[0], grads, losses.Max() - losses.Min());
    }

    [Theory]
    [InlineData("gpt", SequenceParallelMode.Ring)]
    [InlineData("gpt", SequenceParallelMode.Ulysses)]
    [InlineData("llama", SequenceParallelMode.Ring)]
    [InlineData("llama", SequenceParallelMode.Ulysses)]
    public void OneStepGivesTheSingleDeviceLossAndGatheredGradients(string family, SequenceParallelMode mode)
    {
        const int seed = 71;
        var config = Heads8(family);
        var (ids, targets) = TensorParallelTrainingTests.Tokens(seed, Time);
        var (expectedLoss, expectedGrads) = TensorParallelTrainingTests.SingleDevice(config, ids, targets);
        var (loss, grads, spread) = Parallel(config, 2, 2, mode, ids, targets);
        string what = $"{family} tp 2 sp 2 {mode} seed {seed}";
        output.WriteLine($"{what}: loss {loss:R} vs {expectedLoss:R}, spread over ranks {spread:E2}");
        // fp32 reordered sums: the loss over the sp ranks, the vocabulary-parallel softmax, ring attention's lse merges.
        Assert.True(Math.Abs(loss - expectedLoss) <= 1e-5 * Math.Abs(expectedLoss), $"{what}: loss {loss:R} vs single-device {expectedLoss:R}");
        Assert.True(spread <= 1e-5 * Math.Abs(expectedLoss), $"{what}: ranks' losses differ by {spread:E2}");
        foreach (var (name, expected) in expectedGrads)
        {
            // Split GEMMs, sp partial sums and reordered attention: fp32 rounding, far below the 1e-4 relative Frobenius bound.
            double relative = PipelineTrainingTests.RelativeFrobenius(expected, grads[name]);
            Assert.True(relative <= 1e-4, $"{what}: gradient {name} relative Frobenius difference {relative:E2}");
        }
    }

    /// <summary>Five AdamW steps of <paramref name="family"/>'s 8-head model on one device and under <paramref name="layout"/>: the second curve follows the first.</summary>
    private void AssertFollowsOneDevice(string family, TrainConfig layout, int ranks, string what)
    {
        PipelineTrainingTests.WithInit(vocab => Heads8(family, vocab), dir =>
        {
            var job = TensorParallelTrainingTests.FiveSteps with { InitDir = dir, Batch = 8, MicroBatches = 2 };
            var single = TrainerTests.Train(job, 1);
            var parallel = TrainerTests.Train(layout with { InitDir = dir, Batch = 8, MicroBatches = 2 }, ranks);
            output.WriteLine($"{what}: worst loss relative difference over 5 steps {TensorParallelTrainingTests.WorstRelative(single.Losses, parallel.Losses):E2}, " +
                $"{parallel.CommunicationBytesPerStep:F0} bytes per step per rank");
            // fp32 reordered sums (split GEMMs, ring merges, gradients averaged over dp × sp); the clipping norm is the
            // full gradient's (summed over tp with replicated tensors once), else a clipped step would part the curves.
            TensorParallelTrainingTests.AssertCurvesClose(single.Losses, parallel.Losses, 1e-5, what);
        });
    }

    [Theory]
    [InlineData("gpt", SequenceParallelMode.Ring)]
    [InlineData("gpt", SequenceParallelMode.Ulysses)]
    [InlineData("llama", SequenceParallelMode.Ring)]
    [InlineData("llama", SequenceParallelMode.Ulysses)]
    public void FiveAdamWStepsUnderTpTimesSpFollowTheSingleDeviceCurve(string family, SequenceParallelMode mode) =>
        AssertFollowsOneDevice(family, TensorParallelTrainingTests.FiveSteps with { Tp = 2, Sp = 2, SpMode = mode }, 4, $"{family} tp 2 sp 2 {mode}");

    [Fact]
    public void FiveAdamWStepsUnderDpTimesTpTimesSpFollowTheSingleDeviceCurve() =>
        AssertFollowsOneDevice("gpt", TensorParallelTrainingTests.FiveSteps with { Dp = 2, Tp = 2, Sp = 2 }, 8, "gpt dp 2 tp 2 sp 2 ring");

    [Fact]
    public void FiveAdamWStepsUnderTpTimesPpTimesSpFollowTheSingleDeviceCurve() =>
        AssertFollowsOneDevice("llama", TensorParallelTrainingTests.FiveSteps with { Tp = 2, Pp = 2, Sp = 2 }, 8, "llama tp 2 pp 2 sp 2 ring 1f1b");

    [Fact]
    public void FiveAdamWStepsUnderTpTimesSpWithZeroOneFollowTheSingleDeviceCurve() =>
        AssertFollowsOneDevice("gpt", TensorParallelTrainingTests.FiveSteps with { Tp = 2, Sp = 2, Zero = 1 }, 4, "gpt tp 2 sp 2 ring zero 1");

    [Theory]
    [InlineData(1, 1)]
    [InlineData(1, 2)]
    public void ACheckpointWrittenUnderTpTimesSpResumesUnderAnotherLayout(int resumeTp, int resumePp)
    {
        PipelineTrainingTests.WithInit(vocab => Heads8("llama", vocab), init =>
        {
            string dir = Path.Combine(Path.GetTempPath(), "hal-tpsp-ckpt-" + Guid.NewGuid().ToString("N"));
            try
            {
                var job = TensorParallelTrainingTests.FiveSteps with { InitDir = init, Steps = 4, Batch = 8, MicroBatches = 2 };
                var whole = TrainerTests.Train(job, 1);
                TrainerTests.Train(job with { Steps = 2, OutDir = dir, Tp = 2, Sp = 2 }, 4);
                var resumed = TrainerTests.Train(job with { ResumeDir = dir, Tp = resumeTp, Pp = resumePp }, resumeTp * resumePp);
                string what = $"written at tp 2 sp 2, resumed at tp {resumeTp} pp {resumePp}";
                output.WriteLine($"{what}: worst loss relative difference {TensorParallelTrainingTests.WorstRelative(whole.Losses, resumed.Losses):E2}");
                // Whole tensors and moments in the files (the tp gather of the sp-0 replica): the resumed curve
                // continues the uninterrupted one up to fp32 reordering.
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

    [Fact]
    public void UlyssesWithTooFewHeadsPerTpRankIsRefusedBeforeAnyWork()
    {
        // llama-tiny: 4 query heads and 2 key/value heads, so a tp 2 rank holds 1 key/value head, which sp 2 cannot split.
        var e = Assert.Throws<TrainConfigException>(() => TrainerTests.Train(
            TensorParallelTrainingTests.FiveSteps with { Model = "llama-tiny", Tp = 2, Sp = 2, SpMode = SequenceParallelMode.Ulysses }, 4));
        Assert.Contains("query heads (4/2 = 2)", e.Message, StringComparison.Ordinal);
        Assert.Contains("key/value heads (2/2 = 1)", e.Message, StringComparison.Ordinal);
        Assert.Contains("multiples of 2", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void UlyssesWithTooFewHeadsPerTpRankIsRefusedByTheModel()
    {
        var config = TensorParallelTrainingTests.Tiny("llama-tiny");
        var backend = new CpuBackend();
        var devices = Enumerable.Range(0, 4).Select(_ => backend.Open(0)).ToArray();
        var messages = new string?[4];
        try
        {
            InProcessWorld.Run(devices, world =>
            {
                using var mesh = new DeviceMesh(world, 1, 2, 1, 2);
                var e = Assert.Throws<ArgumentException>(() => new TransformerModel(new Ops(devices[world.Rank]), config, new TransformerOptions
                {
                    TensorParallel = mesh.TpGroup,
                    SequenceParallel = new SequenceParallelOptions(mesh.SpGroup, SequenceParallelMode.Ulysses),
                }));
                messages[world.Rank] = e.Message;
            });
        }
        finally
        {
            foreach (var d in devices)
            {
                d.Dispose();
            }
        }
        Assert.All(messages, m => Assert.Contains("key/value heads (2/2 = 1)", m, StringComparison.Ordinal));
    }
}
