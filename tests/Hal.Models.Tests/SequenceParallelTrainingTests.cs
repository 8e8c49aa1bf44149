using Xunit.Abstractions;
using Hal.Backends.Cpu;
using Hal.Collectives.InProcess;
using Hal.Models.Training;
using Hal.Models.Transformer;
using Hal.Parallel.Mesh;

namespace Hal.Models.Tests;

// Legend: B batch rows, T time (whole sequence), Tl = T/sp tokens per rank, V vocabulary, sp sequence ranks,
// dp data-parallel replicas.

/// <summary>
/// Sequence parallelism inside GPT-2 and LLaMA on in-process CPU ranks: each rank holds T/sp tokens of every
/// sequence (zig-zag for ring attention, contiguous for Ulysses); one forward/backward gives the single-device loss
/// and, summed over sp, the single-device gradients; the trainer's loss curves agree; impossible splits are refused.
/// </summary>
public sealed class SequenceParallelTrainingTests(ITestOutputHelper output)
{
    private const int Batch = 4, Time = 16, Vocab = 37;
    private const ulong Seed = 2024;

    private static ModelConfig Tiny(string name) => ModelConfig.Named(name, Vocab) with { ContextLength = 16 };

    /// <summary>
    /// The global positions rank r holds, written out independently of the code under test: ring cuts T into 2·sp
    /// chunks and gives rank r chunks r and 2·sp−1−r; Ulysses gives rank r the run [r·Tl, (r+1)·Tl).
    /// </summary>
    internal static int[] PlacedPositions(SequenceParallelMode mode, int sp, int rank)
    {
        int local = Time / sp;
        var positions = new int[local];
        for (int i = 0; i < local; i++)
        {
            if (mode == SequenceParallelMode.Ulysses)
            {
                positions[i] = (rank * local) + i;
            }
            else
            {
                int chunk = local / 2;
                int which = i < chunk ? rank : (2 * sp) - 1 - rank;
                positions[i] = (which * chunk) + (i % chunk);
            }
        }
        return positions;
    }

    /// <summary>One forward/backward of the single-device model: loss and every gradient by name.</summary>
    /// <summary>
    /// One forward/backward over a dp × sp mesh: each replica takes its B/dp rows, each sp rank its placed tokens of
    /// them; gradients are summed over sp and averaged over dp. Returns rank 0's loss (averaged over dp), its
    /// gradients, and the largest loss difference between the ranks of a replica.
    /// </summary>
    private static (double Loss, Dictionary<string, double[]> Grads, double LossSpread) Parallel(
        ModelConfig config, int dp, int sp, SequenceParallelMode mode, int[] ids, int[] targets)
    {
        var backend = new CpuBackend();
        var devices = Enumerable.Range(0, dp * sp).Select(_ => backend.Open(0)).ToArray();
        double loss = double.NaN;
        var losses = new double[dp * sp];
        var grads = new Dictionary<string, double[]>(StringComparer.Ordinal);
        var lockObject = new object();
        try
        {
            InProcessWorld.Run(devices, world =>
            {
                using var mesh = new DeviceMesh(world, dp, 1, 1, sp);
                var ops = new Ops(devices[world.Rank]);
                using var model = new TransformerModel(ops, config, new TransformerOptions
                {
                    SequenceParallel = new SequenceParallelOptions(mesh.SpGroup, mode),
                });
                model.Initialize(Seed);
                int rows = Batch / dp, local = Time / sp;
                var positions = PlacedPositions(mode, sp, mesh.SpRank);
                var myIds = new double[rows * local];
                var myTargets = new double[rows * local];
                for (int r = 0; r < rows; r++)
                {
                    for (int i = 0; i < local; i++)
                    {
                        int global = (((mesh.DpRank * rows) + r) * Time) + positions[i];
                        myIds[(r * local) + i] = ids[global];
                        myTargets[(r * local) + i] = targets[global];
                    }
                }
                var shape = new Shape(rows, local);
                using var idsT = ops.FromArray(myIds, shape, DType.I32);
                using var targetsT = ops.FromArray(myTargets, shape, DType.I32);
                double replicaLoss = model.Forward(idsT, targetsT);
                model.Backward();
                var store = model.Parameters;
                mesh.SpGroup.AllReduce(store.Grads, store.Grads, ReduceOp.Sum);
                mesh.DpGroup.AllReduce(store.Grads, store.Grads, ReduceOp.Mean);
                using var lossT = ops.FromArray([replicaLoss], new Shape(1), DType.F64);
                mesh.DpGroup.AllReduce(lossT, lossT, ReduceOp.Mean);
                lock (lockObject)
                {
                    if (world.Rank == 0)
                    {
                        loss = ops.ToDoubleArray(lossT)[0];
                        for (int i = 0; i < store.Infos.Count; i++)
                        {
                            grads[store.Infos[i].Name] = ops.ToDoubleArray(store.Grad(i));
                        }
                    }
                    losses[world.Rank] = replicaLoss;
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
        double spread = 0;
        for (int r = 0; r < losses.Length; r++)
        {
            spread = Math.Max(spread, Math.Abs(losses[r] - losses[r / sp * sp]));
        }
        return (loss, grads, spread);
    }

    [Theory]
    [InlineData("gpt-tiny", 1, 2, SequenceParallelMode.Ring)]
    [InlineData("gpt-tiny", 1, 4, SequenceParallelMode.Ring)]
    [InlineData("gpt-tiny", 1, 2, SequenceParallelMode.Ulysses)]
    [InlineData("gpt-tiny", 1, 4, SequenceParallelMode.Ulysses)]
    [InlineData("gpt-tiny", 2, 2, SequenceParallelMode.Ring)]
    [InlineData("gpt-tiny", 2, 2, SequenceParallelMode.Ulysses)]
    [InlineData("llama-tiny", 1, 2, SequenceParallelMode.Ring)]
    [InlineData("llama-tiny", 1, 4, SequenceParallelMode.Ring)]
    [InlineData("llama-tiny", 1, 2, SequenceParallelMode.Ulysses)]
    [InlineData("llama-tiny", 2, 2, SequenceParallelMode.Ring)]
    public void OneStepGivesTheSingleDeviceLossAndSummedGradients(string name, int dp, int sp, SequenceParallelMode mode)
    {
        const int dataSeed = 11;
        var config = Tiny(name);
        var (ids, targets) = TensorParallelTrainingTests.Tokens(dataSeed, Time);
        var single = TensorParallelTrainingTests.SingleDevice(config, ids, targets);
        var parallel = Parallel(config, dp, sp, mode, ids, targets);
        string what = $"{name} dp {dp} sp {sp} {mode}, data seed {dataSeed}";
        // fp32: the loss is a sum of the same per-token losses in another grouping, and ring attention merges partial
        // softmaxes by their lse: a few ulps of the ~3.6 loss, far below the 1e-5 relative.
        Assert.True(Math.Abs(parallel.Loss - single.Loss) <= 1e-5 * Math.Abs(single.Loss), $"{what}: loss {parallel.Loss:R} vs {single.Loss:R}");
        // The loss all-reduce hands every rank of a replica the same value.
        Assert.True(parallel.LossSpread == 0, $"{what}: the ranks of a replica report losses {parallel.LossSpread:E3} apart");
        double worstGradient = 0;
        foreach (var (param, expected) in single.Grads)
        {
            var actual = parallel.Grads[param];
            double diff = 0, norm = 0;
            for (int i = 0; i < expected.Length; i++)
            {
                diff += (actual[i] - expected[i]) * (actual[i] - expected[i]);
                norm += expected[i] * expected[i];
            }
            worstGradient = Math.Max(worstGradient, Math.Sqrt(diff) / Math.Sqrt(norm));
            // 1e-4 relative Frobenius: the bound for fp32 gradients through reordered sums.
            Assert.True(Math.Sqrt(diff) <= 1e-4 * Math.Sqrt(norm), $"{what}: gradient of {param} differs by {Math.Sqrt(diff):E3} (norm {Math.Sqrt(norm):E3})");
        }
        output.WriteLine($"{what}: loss relative difference {Math.Abs(parallel.Loss - single.Loss) / single.Loss:E2}, worst gradient relative Frobenius {worstGradient:E2}");
    }

    [Fact]
    public void UlyssesWithHeadsNotDivisibleBySpIsRefusedByTheModel()
    {
        // llama-tiny has 2 key/value heads: 4 ranks cannot each hold whole ones.
        var backend = new CpuBackend();
        var devices = Enumerable.Range(0, 4).Select(_ => backend.Open(0)).ToArray();
        var messages = new string[4];
        try
        {
            InProcessWorld.Run(devices, world =>
            {
                var ops = new Ops(devices[world.Rank]);
                var e = Assert.Throws<ArgumentException>(() => new TransformerModel(ops, Tiny("llama-tiny"), new TransformerOptions
                {
                    SequenceParallel = new SequenceParallelOptions(world, SequenceParallelMode.Ulysses),
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
        Assert.All(messages, m => Assert.Contains("key/value heads (2)", m, StringComparison.Ordinal));
    }

    // Five AdamW steps of the trainer (warm-up 2, clipping at 1 on): the loss curve of every layout.
    [Theory]
    [InlineData("gpt-tiny", 1, 2, SequenceParallelMode.Ring)]
    [InlineData("gpt-tiny", 1, 4, SequenceParallelMode.Ring)]
    [InlineData("gpt-tiny", 1, 2, SequenceParallelMode.Ulysses)]
    [InlineData("gpt-tiny", 1, 4, SequenceParallelMode.Ulysses)]
    [InlineData("gpt-tiny", 2, 2, SequenceParallelMode.Ring)]
    [InlineData("llama-tiny", 1, 2, SequenceParallelMode.Ring)]
    [InlineData("llama-tiny", 1, 4, SequenceParallelMode.Ring)]
    [InlineData("llama-tiny", 1, 2, SequenceParallelMode.Ulysses)]
    [InlineData("llama-tiny", 2, 2, SequenceParallelMode.Ulysses)]
    public void FiveAdamWStepsFollowTheSingleDeviceCurve(string model, int dp, int sp, SequenceParallelMode mode)
    {
        var job = TensorParallelTrainingTests.FiveSteps with { Model = model };
        var single = TrainerTests.Train(job, 1);
        var parallel = TrainerTests.Train(job with { Dp = dp, Sp = sp, SpMode = mode }, dp * sp);
        // fp32 reordered sums (the loss over ranks, ring attention's lse merges, gradients summed over sp): the same
        // 1e-5 relative bound as one forward; the clipping norm sees the full gradient, else clipped steps would part.
        double worst = TensorParallelTrainingTests.WorstRelative(single.Losses, parallel.Losses);
        output.WriteLine($"{model} dp {dp} sp {sp} {mode}: worst loss relative difference over 5 steps {worst:E2}");
        TensorParallelTrainingTests.AssertCurvesClose(single.Losses, parallel.Losses, 1e-5, $"{model} dp {dp} sp {sp} {mode}");
    }

    [Theory]
    [InlineData(SequenceParallelMode.Ring, 2, 10, "multiple of 4")]
    [InlineData(SequenceParallelMode.Ring, 4, 12, "multiple of 8")]
    [InlineData(SequenceParallelMode.Ulysses, 4, 10, "multiple of 4")]
    public void SequenceNotDivisibleIsRefusedBeforeAnyWork(SequenceParallelMode mode, int sp, int seq, string reason)
    {
        var e = Assert.Throws<TrainConfigException>(() => TrainerTests.Train(TensorParallelTrainingTests.FiveSteps with { Sp = sp, SpMode = mode, Seq = seq }, sp));
        Assert.Contains($"--seq {seq}", e.Message, StringComparison.Ordinal);
        Assert.Contains(reason, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void UlyssesWithHeadsNotDivisibleBySpIsRefused()
    {
        // llama-tiny has 2 key/value heads: 4 ranks cannot each hold whole ones (ring could: it splits tokens only).
        var e = Assert.Throws<TrainConfigException>(() => TrainerTests.Train(TensorParallelTrainingTests.FiveSteps with { Model = "llama-tiny", Sp = 4, SpMode = SequenceParallelMode.Ulysses }, 4));
        Assert.Contains("key/value heads (2)", e.Message, StringComparison.Ordinal);
    }

    // ZeRO-1 with sp runs (PipelineTrainingTests), so does tp with sp (TensorSequenceParallelTrainingTests); the chunked stages do not.
    [Theory]
    [InlineData(1, 2, "none")]
    [InlineData(1, 0, "static:0.5,0.5")]
    public void SpWithTpZeroOrOffloadIsRefused(int tp, int zero, string offload)
    {
        var e = Assert.Throws<TrainConfigException>(() => TrainerTests.Train(
            TensorParallelTrainingTests.FiveSteps with { Sp = 2, Tp = tp, Zero = zero, Offload = Zero.OffloadSpec.Parse(offload) }, 2 * tp));
        Assert.Contains("do not run together yet", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void DpTimesSpDifferentFromTheRanksIsRefused()
    {
        var e = Assert.Throws<TrainConfigException>(() => TrainerTests.Train(TensorParallelTrainingTests.FiveSteps with { Dp = 2, Sp = 2 }, 2));
        Assert.Contains("--dp 2 × --tp 1 × --sp 2 = 4 ranks, but 2 are running", e.Message, StringComparison.Ordinal);
    }
}
