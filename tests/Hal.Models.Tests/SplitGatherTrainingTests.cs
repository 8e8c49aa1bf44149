using Xunit.Abstractions;
using Hal.Backends.Cpu;
using Hal.Models.Training;
using Hal.Models.Transformer;

namespace Hal.Models.Tests;

// Legend: B batch rows, T time, C channels, L layers, p tp ranks, dp data-parallel replicas, N = (B/dp)·T rows of a
// replica, Nl = N/p rows of a rank between the tensor-parallel linears.

/// <summary>
/// Megatron sequence parallelism (<c>--sp-mode split-gather</c>) inside the tp group of GPT-2 and LLaMA on in-process
/// CPU ranks: one forward/backward gives the single-device loss and gathered gradients; the traffic equals plain tensor
/// parallelism's (an all-reduce is a reduce-scatter plus an all-gather) while each rank saves fewer activation bytes;
/// the trainer's loss curves agree; checkpoints move to plain tp and to one device; impossible layouts are refused.
/// </summary>
public sealed class SplitGatherTrainingTests(ITestOutputHelper output)
{
    private const int Batch = 4, Time = 8, DataSeed = 7;

    private static TrainConfig FiveSteps => TensorParallelTrainingTests.FiveSteps with { SpMode = SequenceParallelMode.SplitGather };

    [Theory]
    [InlineData("gpt-tiny", 1, 2)]
    [InlineData("gpt-tiny", 1, 4)]
    [InlineData("gpt-tiny", 2, 2)]
    [InlineData("llama-tiny", 1, 2)]
    [InlineData("llama-tiny", 2, 2)]
    public void OneStepGivesTheSingleDeviceLossAndGatheredGradients(string name, int dp, int tp)
    {
        var config = TensorParallelTrainingTests.Tiny(name);
        var (ids, targets) = TensorParallelTrainingTests.Tokens(DataSeed);
        var single = TensorParallelTrainingTests.SingleDevice(config, ids, targets);
        var parallel = TensorParallelTrainingTests.Parallel(config, dp, tp, ids, targets, splitGather: true);
        string what = $"{name} dp {dp} tp {tp} split-gather, data seed {DataSeed}";
        // fp32: partial sums over heads, hidden units and vocabulary columns are added by reduce-scatters in another
        // order than one GEMM's, and the residual adds in another order than plain tp's: a few ulps of the ~3.6 loss.
        Assert.True(Math.Abs(parallel.Loss - single.Loss) <= 1e-5 * Math.Abs(single.Loss), $"{what}: loss {parallel.Loss:R} vs {single.Loss:R}");
        double worst = 0;
        foreach (var (param, expected) in single.Grads)
        {
            var actual = parallel.Grads[param];
            double diff = 0, norm = 0;
            for (int i = 0; i < expected.Length; i++)
            {
                diff += (actual[i] - expected[i]) * (actual[i] - expected[i]);
                norm += expected[i] * expected[i];
            }
            worst = Math.Max(worst, Math.Sqrt(diff / norm));
            // 1e-4 relative Frobenius: the bound for fp32 gradients through reordered sums (the norm
            // gradients are sums over p ranks' rows instead of one pass over all N).
            Assert.True(Math.Sqrt(diff) <= 1e-4 * Math.Sqrt(norm), $"{what}: gradient of {param} differs by {Math.Sqrt(diff):E3} (norm {Math.Sqrt(norm):E3})");
        }
        output.WriteLine($"{what}: loss relative difference {Math.Abs(parallel.Loss - single.Loss) / single.Loss:E2}, worst gradient relative Frobenius {worst:E2}");
        // The norm gradients are all-reduced and the position and bias gradients come from gathered rows: every tp
        // rank holds the same replicated gradients, bit for bit.
        Assert.True(parallel.ReplicaSpread == 0, $"{what}: replicated gradients differ between tp ranks by {parallel.ReplicaSpread:E3}");
    }

    [Theory]
    [InlineData("gpt-tiny", 1, 2)]
    [InlineData("gpt-tiny", 1, 4)]
    [InlineData("gpt-tiny", 2, 2)]
    [InlineData("llama-tiny", 1, 2)]
    public void TrafficEqualsPlainTpAndSavedActivationsShrink(string name, int dp, int tp)
    {
        var config = TensorParallelTrainingTests.Tiny(name);
        var (ids, targets) = TensorParallelTrainingTests.Tokens(DataSeed);
        var plain = TensorParallelTrainingTests.Parallel(config, dp, tp, ids, targets);
        var split = TensorParallelTrainingTests.Parallel(config, dp, tp, ids, targets, splitGather: true);
        int layers = config.Layers, c = config.Channels, n = Batch / dp * Time, local = n / tp;
        string what = $"{name} dp {dp} tp {tp}";
        output.WriteLine($"{what}: bytes sent per rank plain {plain.BytesCommunicated}, split-gather {split.BytesCommunicated} (+{split.GradientSumBytes} norm gradients); " +
            $"saved activations plain {plain.SavedActivationBytes}, split-gather {split.SavedActivationBytes}; workspace plain {plain.WorkspaceBytes}, split-gather {split.WorkspaceBytes}");

        // Per block each way: plain tp all-reduces twice, split-gather all-gathers twice and reduce-scatters twice;
        // the head: one all-reduce (backward) against one all-gather (forward) and one reduce-scatter (backward);
        // the embedding's gradient all-gather is the dual of its lookup's reduce-scatter (counted by the lookup).
        Assert.Equal((4L * layers) + 1, plain.AllReduces);
        Assert.Equal(0, split.AllReduces);
        Assert.Equal((4L * layers) + 2, split.AllGathers);
        Assert.Equal((4L * layers) + 1, split.ReduceScatters);
        // A ring all-reduce of S bytes sends 2·(p−1)/p·S, an all-gather or reduce-scatter (p−1)/p·S each: the same total.
        Assert.Equal(plain.BytesCommunicated, split.BytesCommunicated);
        // Besides: every norm's weight (and bias) gradient is summed over tp, one all-reduce each of its C values.
        int normTensorsPerNorm = config.Family == ModelFamily.Gpt2 ? 2 : 1;
        long normBytes = ((2L * layers) + 1) * normTensorsPerNorm * c * sizeof(float);
        Assert.Equal(2 * (tp - 1) * normBytes / tp, split.GradientSumBytes);
        Assert.Equal(0, plain.GradientSumBytes);

        // Saved per rank: the residual stream (L + 1 tensors), each block's mid, and the norms' row statistics (mean
        // and rstd for LayerNorm, rstd for RMSNorm; 2L + 1 norms) shrink from N to Nl rows; the gathered norm
        // outputs, attention and MLP internals and the head's are the same.
        long rowsSaved = n - local;
        long expectedShrink = (rowsSaved * c * sizeof(float) * ((layers + 1) + layers)) + (rowsSaved * sizeof(float) * normTensorsPerNorm * ((2L * layers) + 1));
        Assert.Equal(expectedShrink, plain.SavedActivationBytes - split.SavedActivationBytes);
        Assert.True(split.SavedActivationBytes < plain.SavedActivationBytes, $"{what}: saved {split.SavedActivationBytes} vs plain {plain.SavedActivationBytes}");
        // The scratch split-gather adds (the lookup's partial rows, an [Nl, C] buffer) is what it no longer needs (the
        // residual add's partial product, half the residual gradient), so the whole workspace shrinks by at least as much.
        Assert.True(plain.WorkspaceBytes - split.WorkspaceBytes >= expectedShrink,
            $"{what}: workspace {split.WorkspaceBytes} vs plain {plain.WorkspaceBytes}, expected at least {expectedShrink} less");
    }

    [Theory]
    [InlineData("gpt-tiny", 1, 2, 1)]
    [InlineData("gpt-tiny", 1, 4, 1)]
    [InlineData("gpt-tiny", 2, 2, 2)]
    [InlineData("llama-tiny", 1, 2, 2)]
    [InlineData("llama-tiny", 2, 2, 1)]
    public void FiveAdamWStepsFollowTheSingleDeviceCurve(string model, int dp, int tp, int sp)
    {
        var job = TensorParallelTrainingTests.FiveSteps with { Model = model };
        var single = TrainerTests.Train(job, 1);
        // --sp equal to --tp names the same ranks under split-gather: still dp × tp of them.
        var parallel = TrainerTests.Train(job with { Dp = dp, Tp = tp, Sp = sp, SpMode = SequenceParallelMode.SplitGather }, dp * tp);
        output.WriteLine($"{model} dp {dp} tp {tp} split-gather: worst loss relative difference over 5 steps {TensorParallelTrainingTests.WorstRelative(single.Losses, parallel.Losses):E2}");
        // fp32 reordered sums, as plain tp; the norm gradients are whole before clipping, so the clipping norm is the
        // full gradient's and the curves do not part at a clipped step.
        TensorParallelTrainingTests.AssertCurvesClose(single.Losses, parallel.Losses, 1e-5, $"{model} dp {dp} tp {tp} split-gather");
    }

    [Fact]
    public void ActivationCheckpointingUnderSplitGatherFollowsTheSingleDeviceCurve()
    {
        var job = TensorParallelTrainingTests.FiveSteps with { Model = "llama-tiny", CheckpointActivations = true };
        var single = TrainerTests.Train(job, 1);
        var parallel = TrainerTests.Train(job with { Tp = 2, SpMode = SequenceParallelMode.SplitGather }, 2);
        // Recomputing a block repeats its gathers and reduce-scatters on every tp rank together: the same curve (fp32 bound).
        TensorParallelTrainingTests.AssertCurvesClose(single.Losses, parallel.Losses, 1e-5, "checkpointed activations tp 2 split-gather");
    }

    [Fact]
    public void Bf16UnderSplitGatherFollowsTheBf16SingleDeviceCurve()
    {
        var job = TensorParallelTrainingTests.FiveSteps with { Model = "llama-tiny", Precision = Precision.Bf16 };
        var single = TrainerTests.Train(job, 1);
        var parallel = TrainerTests.Train(job with { Tp = 2, SpMode = SequenceParallelMode.SplitGather }, 2);
        output.WriteLine($"bf16 llama-tiny tp 2 split-gather: worst loss relative difference {TensorParallelTrainingTests.WorstRelative(single.Losses, parallel.Losses):E2}");
        // bf16 activations round the reduce-scattered partial sums to 8 significant bits in another grouping than one
        // GEMM's: the bound of plain tp's bf16 test (1e-3 relative over 5 steps); measured 4.1e-4.
        TensorParallelTrainingTests.AssertCurvesClose(single.Losses, parallel.Losses, 1e-3, "bf16 llama-tiny tp 2 split-gather");
    }

    [Theory]
    [InlineData(2)]
    [InlineData(1)]
    public void CheckpointWrittenUnderSplitGatherResumesUnderPlainLayouts(int resumeTp)
    {
        string dir = Path.Combine(Path.GetTempPath(), "hal-sg-resume-" + Guid.NewGuid().ToString("N"));
        try
        {
            var job = TensorParallelTrainingTests.FiveSteps with { Model = "gpt-tiny", Steps = 4 };
            var whole = TrainerTests.Train(job, 1);
            TrainerTests.Train(job with { Steps = 2, OutDir = dir, Tp = 2, SpMode = SequenceParallelMode.SplitGather }, 2);
            var resumed = TrainerTests.Train(job with { ResumeDir = Path.Combine(dir, "step-00000002"), Tp = resumeTp }, resumeTp);
            // The tp shards are gathered into the one layout-independent checkpoint (split-gather changes no parameter
            // layout): the resumed run continues the uninterrupted one up to reordered fp32 sums.
            TensorParallelTrainingTests.AssertCurvesClose(whole.Losses, resumed.Losses, 1e-5, $"written at tp 2 split-gather, resumed at tp {resumeTp}");
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
    public void SplitGatherWithoutTpIsRefusedBeforeAnyWork()
    {
        var e = Assert.Throws<TrainConfigException>(() => TrainerTests.Train(FiveSteps, 1));
        Assert.Contains("needs --tp 2 or more", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void SplitGatherWithAnSpOtherThanOneOrTpIsRefused()
    {
        var e = Assert.Throws<TrainConfigException>(() => TrainerTests.Train(FiveSteps with { Tp = 2, Sp = 4 }, 8));
        Assert.Contains("give --sp 1 (or leave it out) or --sp 2", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void TokensNotDivisibleByTpAreRefused()
    {
        // One sequence of 15 tokens cannot be split into 2 equal row blocks.
        var e = Assert.Throws<TrainConfigException>(() => TrainerTests.Train(FiveSteps with { Tp = 2, Batch = 1, Seq = 15 }, 2));
        Assert.Contains("= 15 tokens over --tp 2 ranks", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void SequenceParallelRegionsWithoutATensorParallelGroupAreRefusedByTheModel()
    {
        using var device = new CpuBackend().Open(0);
        var e = Assert.Throws<ArgumentException>(() => new TransformerModel(new Ops(device), TensorParallelTrainingTests.Tiny("gpt-tiny"),
            new TransformerOptions { SequenceParallelRegions = true }));
        Assert.Contains("set TensorParallel too", e.Message, StringComparison.Ordinal);
    }
}
