using Xunit.Abstractions;
using Hal.Backends.Cpu;
using Hal.Collectives.InProcess;
using Hal.Models.Checkpoints;
using Hal.Models.Nn;
using Hal.Models.Optim;
using Hal.Models.Training;
using Hal.Models.Transformer;
using Hal.Parallel.Mesh;

namespace Hal.Models.Tests;

// Legend: B batch rows, T time, V vocabulary, p tp ranks; 2D q×q, 2.5D q×q×d, 3D c×c×c.

/// <summary>
/// 2D, 2.5D and 3D tensor parallelism inside GPT-2 and LLaMA on in-process CPU ranks: one forward/backward gives the
/// single-device loss and, gathered, the single-device gradients; the trainer's curves agree; checkpoints move between
/// grid and 1-D layouts; impossible grids are refused; the bytes a block sends match their formula.
/// </summary>
public sealed class GridTensorParallelTrainingTests(ITestOutputHelper output)
{
    // V = 40: divisible by q = 2 and by c² = 4 (the 3D table's vocabulary blocks); the token ids stay below 37.
    // OddVocab = 37: divisible by neither, so the grid pads the table (to 38 on 2d, 40 on 3d) and masks the padding.
    private const int Batch = 4, Time = 8, Vocab = 40, OddVocab = 37;
    private const ulong Seed = 2024;

    private static ModelConfig Tiny(string name) => ModelConfig.Named(name, Vocab) with { ContextLength = 16 };

    private static TensorParallelMode Mode(string mode) => TensorParallelModes.Parse(mode)!.Value;

    /// <summary>One forward/backward of the grid model on p in-process ranks: rank 0's loss, every gathered gradient, and block 0's bytes.</summary>
    private static (double Loss, Dictionary<string, double[]> Grads, long BlockBytes) Grid(ModelConfig config, string mode, int tp, int depth, int[] ids, int[] targets)
    {
        var (geometry, problem) = GridGeometry.For(Mode(mode), tp, depth);
        Assert.True(geometry is not null, problem);
        var backend = new CpuBackend();
        var devices = Enumerable.Range(0, tp).Select(_ => backend.Open(0)).ToArray();
        double loss = double.NaN;
        long bytes = 0;
        var grads = new Dictionary<string, double[]>(StringComparer.Ordinal);
        try
        {
            InProcessWorld.Run(devices, world =>
            {
                var ops = new Ops(devices[world.Rank]);
                using var model = new GridTransformerModel(ops, config, world, geometry!);
                model.Initialize(Seed);
                var shape = new Shape(Batch, Time);
                using var idsT = ops.FromArray(Array.ConvertAll(ids, v => (double)v), shape, DType.I32);
                using var targetsT = ops.FromArray(Array.ConvertAll(targets, v => (double)v), shape, DType.I32);
                double local = model.Forward(idsT, targetsT);
                model.Backward();
                var full = model.GatherFull(gradients: true);
                if (world.Rank == 0)
                {
                    loss = local;
                    bytes = model.BlockBytesCommunicated(0);
                    foreach (var (name, t) in full)
                    {
                        grads[name] = ops.ToDoubleArray(t);
                    }
                }
                foreach (var t in full.Values)
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
        return (loss, grads, bytes);
    }

    [Theory]
    [InlineData("gpt-tiny", "2d", 4, 0, Vocab)]
    [InlineData("gpt-tiny", "2.5d", 8, 2, Vocab)]
    [InlineData("gpt-tiny", "3d", 8, 0, Vocab)]
    [InlineData("llama-tiny", "2d", 4, 0, Vocab)]
    [InlineData("llama-tiny", "2.5d", 8, 2, Vocab)]
    [InlineData("llama-tiny", "3d", 8, 0, Vocab)]
    [InlineData("gpt-tiny", "2d", 4, 0, OddVocab)]
    [InlineData("gpt-tiny", "3d", 8, 0, OddVocab)]
    [InlineData("llama-tiny", "2d", 4, 0, OddVocab)]
    [InlineData("llama-tiny", "3d", 8, 0, OddVocab)]
    public void OneStepMatchesTheSingleDeviceLossAndGradients(string name, string mode, int tp, int depth, int vocab)
    {
        var config = Tiny(name) with { VocabSize = vocab };
        var (ids, targets) = TensorParallelTrainingTests.Tokens(11);
        var (loss, grads) = TensorParallelTrainingTests.SingleDevice(config, ids, targets);
        var grid = Grid(config, mode, tp, depth, ids, targets);
        // fp32: the grid sums GEMM partial products and softmax statistics in another order than one device (seed 11).
        Assert.True(Math.Abs(grid.Loss - loss) <= 1e-5 * Math.Abs(loss), $"{name} {mode} V {vocab}: loss {grid.Loss:R} vs single-device {loss:R} (tokens seed 11)");
        double worst = 0;
        foreach (var (param, expected) in grads)
        {
            var actual = grid.Grads[param];
            double diff = 0, norm = 0;
            for (int i = 0; i < expected.Length; i++)
            {
                diff += (actual[i] - expected[i]) * (actual[i] - expected[i]);
                norm += expected[i] * expected[i];
            }
            double relative = Math.Sqrt(diff) / Math.Max(Math.Sqrt(norm), 1e-30);
            worst = Math.Max(worst, relative);
            // fp32 reordered sums; 1e-4 relative Frobenius is the issue's bound for every layout (seed 11).
            Assert.True(relative <= 1e-4, $"{name} {mode} V {vocab}: gradient of {param} differs by {relative:E2} relative Frobenius (tokens seed 11)");
        }
        output.WriteLine($"{name} {mode} tp {tp} V {vocab}: loss {grid.Loss:R} vs {loss:R}; worst gradient relative difference {worst:E2}");
    }

    [Fact]
    public void A2DGpt2BlockSendsTheBytesOfItsFormula()
    {
        var config = Tiny("gpt-tiny");
        var (ids, targets) = TensorParallelTrainingTests.Tokens(12);
        var grid = Grid(config, "2d", 4, 0, ids, targets);
        // q = 2 ranks per row and column; R = N/q rows, Cb = C/q channels, Fb = F/q hidden units of a block; e = 4 (fp32).
        long q = 2, e = 4, r = Batch * Time / q, cb = config.Channels / q, fb = config.Hidden / q;
        // A SUMMA linear with bias b: forward (q−1)(|X| + |W|)e + (q−1)/q·|b|e; backward (q−1)(2|X| + 2|W|)e + 2(q−1)/q·|b|e.
        long Linear(long x, long w, long b) => ((q - 1) * (x + w) * e) + ((q - 1) * b * e / q) + ((q - 1) * ((2 * x) + (2 * w)) * e) + (2 * (q - 1) * b * e / q);
        // A layer norm: forward all-reduces Σx, Σx² [2R] over the row; backward [2R] over the row and dγ, dβ [2·Cb] over the column.
        long Norm() => (2 * (q - 1) * 2 * r * e / q) + (2 * (q - 1) * 2 * r * e / q) + (2 * (q - 1) * 2 * cb * e / q);
        long expected = (2 * Norm())
            + (3 * Linear(r * cb, cb * cb, cb))     // q, k, v: three [C, C] sections of c_attn
            + Linear(r * cb, cb * cb, cb)           // attention c_proj
            + Linear(r * cb, cb * fb, fb)           // c_fc
            + Linear(r * fb, fb * cb, cb);          // mlp c_proj
        output.WriteLine($"2D gpt-tiny block 0: {grid.BlockBytes} bytes per step on rank 0 (formula {expected})");
        Assert.Equal(expected, grid.BlockBytes);
    }

    [Fact]
    public void A3DGpt2BlockSendsTheBytesOfItsFormula()
    {
        var config = Tiny("gpt-tiny");
        var (ids, targets) = TensorParallelTrainingTests.Tokens(13);
        var grid = Grid(config, "3d", 8, 0, ids, targets);
        // c = 2 per cube axis; R = N/c² rows of a piece, Cb = C/c features, Wc = C/c² and Wf = F/c² weight rows of a piece, Fb = F/c; e = 4.
        long c = 2, e = 4, r = Batch * Time / (c * c), cb = config.Channels / c, wc = config.Channels / (c * c), wf = config.Hidden / (c * c), fb = config.Hidden / c;
        // A 3D linear with pieces x, w, y and bias b: forward all-gathers x and w, reduce-scatters the y terms, broadcasts
        // b: (c−1)(|x| + |w| + |y|)e + (c−1)/c·|b|e; backward all-gathers dy, x and w and reduce-scatters the dx and dw
        // terms: (c−1)(2|x| + 2|w| + |y|)e, and all-reduces db: 2(c−1)/c·|b|e.
        long Linear(long x, long w, long y, long b) => ((c - 1) * (x + w + y) * e) + ((c - 1) * b * e / c) + ((c - 1) * ((2 * x) + (2 * w) + y) * e) + (2 * (c - 1) * b * e / c);
        // A layer norm: forward [2R] over the hidden axis; backward [2R] over it and dγ, dβ [2·Cb] over axis 0 and the other feature axis.
        long Norm() => (2 * (c - 1) * 2 * r * e / c) + (2 * (c - 1) * 2 * r * e / c) + (2 * 2 * (c - 1) * 2 * cb * e / c);
        long expected = (2 * Norm())
            + (3 * Linear(r * cb, wc * cb, r * cb, cb))     // q, k, v: three [C, C] sections of c_attn
            + Linear(r * cb, wc * cb, r * cb, cb)           // attention c_proj
            + Linear(r * cb, wc * fb, r * fb, fb)           // c_fc
            + Linear(r * fb, wf * cb, r * cb, cb);          // mlp c_proj
        output.WriteLine($"3D gpt-tiny block 0: {grid.BlockBytes} bytes per step on rank 0 (formula {expected})");
        Assert.Equal(expected, grid.BlockBytes);
    }

    // Five AdamW steps of the trainer (warm-up 2, clipping at 1): the single-device curve under every grid.
    private static readonly TrainConfig FiveSteps = TensorParallelTrainingTests.FiveSteps;

    [Theory]
    [InlineData("gpt-tiny", "2d", 1, 4, 0)]
    [InlineData("gpt-tiny", "2.5d", 1, 8, 2)]
    [InlineData("gpt-tiny", "3d", 1, 8, 0)]
    [InlineData("llama-tiny", "2d", 1, 4, 0)]
    [InlineData("llama-tiny", "2.5d", 1, 8, 0)]
    [InlineData("llama-tiny", "3d", 1, 8, 0)]
    [InlineData("gpt-tiny", "2d", 2, 4, 0)]
    public void FiveAdamWStepsFollowTheSingleDeviceCurve(string model, string mode, int dp, int tp, int depth)
    {
        var job = FiveSteps with { Model = model };
        var single = TrainerTests.Train(job, 1);
        var grid = TrainerTests.Train(job with { Dp = dp, Tp = tp, TpMode = Mode(mode), TpDepth = depth }, dp * tp);
        // fp32 reordered sums in the grid GEMMs, norms and softmax; the clipping norm is the full gradient's (replicated
        // blocks counted once), else the curves would part at the first clipped step.
        output.WriteLine($"{model} {mode} dp {dp} tp {tp}: worst loss relative difference {TensorParallelTrainingTests.WorstRelative(single.Losses, grid.Losses):E2}, {grid.CommunicationBytesPerStep} bytes per step on rank 0");
        TensorParallelTrainingTests.AssertCurvesClose(single.Losses, grid.Losses, 1e-5, $"{model} {mode} dp {dp} tp {tp}");
        Assert.True(grid.CommunicationBytesPerStep > 0, "a grid rank communicates every step");
    }

    // Five AdamW steps on a vocabulary the grid must pad: decay 0.1 reaches the table (a decayed weight), clipping at 1.
    private static readonly OptimizerOptions PaddedAdamW = new() { WeightDecay = 0.1, Clip = 1.0 };
    private const double PaddedLearningRate = 3e-3;
    private const int PaddedSteps = 5;

    /// <summary>
    /// Five AdamW steps of the model (tp = 1: one device; else the grid) on the batches of token seeds 21..25: the loss
    /// of each step, and over every rank's local tables the padding rows seen and the largest |value| in them (weights
    /// and gradients) after the last step.
    /// </summary>
    private static (double[] Losses, int PaddingRows, double PaddingMax) AdamWSteps(ModelConfig config, string mode, int tp)
    {
        var batches = Enumerable.Range(21, PaddedSteps).Select(seed => TensorParallelTrainingTests.Tokens(seed)).ToArray();
        var losses = new double[PaddedSteps];
        var backend = new CpuBackend();
        var devices = Enumerable.Range(0, tp).Select(_ => backend.Open(0)).ToArray();
        int paddingRows = 0;
        double paddingMax = 0;
        var sync = new object();
        try
        {
            if (tp == 1)
            {
                var ops = new Ops(devices[0]);
                using var model = new TransformerModel(ops, config);
                model.Initialize(Seed);
                using var optimizer = new Optimizer(ops, model.Parameters, PaddedAdamW);
                Loop(ops, model.Parameters, optimizer, model.Forward, () => model.Backward(), losses, batches);
                return (losses, 0, 0);
            }
            var geometry = GridGeometry.For(Mode(mode), tp, null).Geometry!;
            InProcessWorld.Run(devices, world =>
            {
                var ops = new Ops(devices[world.Rank]);
                using var model = new GridTransformerModel(ops, config, world, geometry);
                model.Initialize(Seed);
                var weights = model.Layout.Select(p => 1.0 / geometry.Copies(p.Kind)).ToArray();
                using var optimizer = new Optimizer(ops, model.Parameters, PaddedAdamW, null, v => Parallel.DataParallel.SumScalar(world, ops, v), weights);
                var mine = new double[PaddedSteps];
                Loop(ops, model.Parameters, optimizer, model.Forward, () => model.Backward(), mine, batches);
                var (rows, max) = Padding(ops, model, world.Rank);
                lock (sync)
                {
                    paddingRows += rows;
                    paddingMax = Math.Max(paddingMax, max);
                    if (world.Rank == 0)
                    {
                        mine.CopyTo(losses, 0);
                    }
                }
            });
            return (losses, paddingRows, paddingMax);
        }
        finally
        {
            foreach (var d in devices)
            {
                d.Dispose();
            }
        }
    }

    private static void Loop(Ops ops, ParameterStore store, Optimizer optimizer, Func<Tensor, Tensor, double> forward, Action backward, double[] losses, (int[] Ids, int[] Targets)[] batches)
    {
        var shape = new Shape(Batch, Time);
        for (int step = 0; step < losses.Length; step++)
        {
            using var ids = ops.FromArray(Array.ConvertAll(batches[step].Ids, v => (double)v), shape, DType.I32);
            using var targets = ops.FromArray(Array.ConvertAll(batches[step].Targets, v => (double)v), shape, DType.I32);
            store.ZeroGrads(ops);
            losses[step] = forward(ids, targets);
            backward();
            optimizer.Step(PaddedLearningRate, step + 1);
        }
    }

    /// <summary>The padding rows (vocabulary row ≥ V) of this rank's local tables, and the largest |weight| or |gradient| in them.</summary>
    private static (int Rows, double Max) Padding(Ops ops, GridTransformerModel model, int rank)
    {
        int rows = 0;
        double max = 0;
        foreach (var p in model.Layout.Where(p => p.Kind == GridTensorKind.Table))
        {
            var local = model.Parameters.Param(p.Name);
            int localRows = local.Shape[0], cols = local.Shape[1];
            int first = model.Geometry.Block(GridTensorKind.Table, rank).RowBlock * localRows;
            double[] weight = ops.ToDoubleArray(local), grad = ops.ToDoubleArray(model.Parameters.Grad(p.Name));
            for (int r = Math.Max(0, p.FullShape[0] - first); r < localRows; r++)
            {
                rows++;
                for (int c = 0; c < cols; c++)
                {
                    max = Math.Max(max, Math.Max(Math.Abs(weight[(r * cols) + c]), Math.Abs(grad[(r * cols) + c])));
                }
            }
        }
        return (rows, max);
    }

    [Theory]
    [InlineData("gpt-tiny", "2d", 4, 2)]
    [InlineData("gpt-tiny", "3d", 8, 6)]
    [InlineData("llama-tiny", "2d", 4, 4)]
    [InlineData("llama-tiny", "3d", 8, 12)]
    public void FiveAdamWStepsOnAnOddVocabularyFollowOneDeviceAndKeepThePaddingZero(string name, string mode, int tp, int paddingRows)
    {
        var config = Tiny(name) with { VocabSize = OddVocab };
        var single = AdamWSteps(config, mode, 1);
        var grid = AdamWSteps(config, mode, tp);
        output.WriteLine($"{name} {mode} V {OddVocab}: losses {string.Join(", ", grid.Losses.Select(l => l.ToString("R", System.Globalization.CultureInfo.InvariantCulture)))}; worst relative difference {TensorParallelTrainingTests.WorstRelative(single.Losses, grid.Losses):E2}");
        // fp32 reordered sums in the grid GEMMs, norms and softmax (token seeds 21..25, init seed 2024); the issue's bound.
        TensorParallelTrainingTests.AssertCurvesClose(single.Losses, grid.Losses, 1e-5, $"{name} {mode} V {OddVocab}, token seeds 21..25");
        // Padding rows over all ranks' tables: Vp − V (1 on 2D's Vp = 38, 3 on 3D's 40) in the last table block, which
        // q = 2 (2D) or c = 2 (3D) ranks hold; LLaMA's untied head is a second table.
        Assert.Equal(paddingRows, grid.PaddingRows);
        // Zero-initialised, never an id, masked out of the softmax: no gradient, so AdamW and its decay keep them exactly 0.
        Assert.Equal(0.0, grid.PaddingMax);
    }

    [Fact]
    public void ACheckpointWrittenUnder3dWithAnOddVocabularyResumesOnOneDevice()
    {
        string root = Path.Combine(Path.GetTempPath(), "hal-grid-pad-" + Guid.NewGuid().ToString("N"));
        try
        {
            // A Hugging Face directory with V = 37 (the synthetic corpus's 32 tokens fit): --init gives every run the vocabulary.
            string init = Path.Combine(root, "gpt-odd");
            var config = Tiny("gpt-tiny") with { VocabSize = OddVocab };
            using (var device = new CpuBackend().Open(0))
            {
                var ops = new Ops(device);
                using var model = new TransformerModel(ops, config);
                model.Initialize(Seed);
                HuggingFace.WriteConfig(init, config);
                SafeTensors.Write(Path.Combine(init, HuggingFace.WeightsFile), Checkpoint.ParametersOf(model.Parameters), ops);
            }
            string outDir = Path.Combine(root, "out");
            var job = FiveSteps with { Steps = 4, InitDir = init, WeightDecay = 0.1 };
            var whole = TrainerTests.Train(job, 1);
            TrainerTests.Train(job with { Steps = 2, OutDir = outDir, Tp = 8, TpMode = TensorParallelMode.ThreeD }, 8);
            string stepDir = Path.Combine(outDir, "step-00000002");
            // The checkpoint holds the Hugging Face [V, C] table, padding dropped.
            using (var reader = SafeTensors.Open(Path.Combine(stepDir, HuggingFace.WeightsFile)))
            {
                Assert.Equal([OddVocab, config.Channels], reader.Tensors["transformer.wte.weight"].Shape);
            }
            var resumed = TrainerTests.Train(job with { ResumeDir = stepDir, InitDir = null }, 1);
            output.WriteLine($"3d V {OddVocab} -> one device: worst loss relative difference {TensorParallelTrainingTests.WorstRelative(whole.Losses, resumed.Losses):E2}");
            // Whole tensors and moments whatever the layout: the resumed run continues the uninterrupted one (fp32 bound).
            TensorParallelTrainingTests.AssertCurvesClose(whole.Losses, resumed.Losses, 1e-5, $"written 3d tp 8 with V {OddVocab}, resumed on one device");
        }
        finally
        {
            if (Directory.Exists(root))
            {
                Directory.Delete(root, recursive: true);
            }
        }
    }

    [Fact]
    public void Bf16Under2dFollowsTheBf16SingleDeviceCurve()
    {
        var job = FiveSteps with { Model = "llama-tiny", Precision = Precision.Bf16 };
        var single = TrainerTests.Train(job, 1);
        var grid = TrainerTests.Train(job with { Tp = 4, TpMode = TensorParallelMode.TwoD }, 4);
        output.WriteLine($"bf16 llama-tiny 2d: worst loss relative difference {TensorParallelTrainingTests.WorstRelative(single.Losses, grid.Losses):E2}");
        // bf16 activations round partial sums (and the grid norms' statistics) to 8 significant bits in another grouping
        // than one device; the 1-D tp bf16 test bounds the same comparison by 1e-3 relative.
        TensorParallelTrainingTests.AssertCurvesClose(single.Losses, grid.Losses, 1e-3, "bf16 llama-tiny 2d");
    }

    [Fact]
    public void InitFromAHuggingFaceDirectoryUnder3dStartsFromItsWeights()
    {
        string dir = Path.Combine(Path.GetTempPath(), "hal-grid-init-" + Guid.NewGuid().ToString("N"));
        try
        {
            TrainerTests.Train(FiveSteps with { Steps = 2, OutDir = dir }, 1);
            string stepDir = Path.Combine(dir, "step-00000002");
            var single = TrainerTests.Train(FiveSteps with { InitDir = stepDir, Steps = 2 }, 1);
            var grid = TrainerTests.Train(FiveSteps with { InitDir = stepDir, Steps = 2, Tp = 8, TpMode = TensorParallelMode.ThreeD }, 8);
            // Every rank reads the whole tensors and keeps its blocks: the same weights, so the same curve (fp32 bound).
            TensorParallelTrainingTests.AssertCurvesClose(single.Losses, grid.Losses, 1e-5, "--init under 3d");
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
    public void ActivationCheckpointingUnderAGridIsRefused()
    {
        var e = Assert.Throws<TrainConfigException>(() => TrainerTests.Train(FiveSteps with { Tp = 4, TpMode = TensorParallelMode.TwoD, CheckpointActivations = true }, 4));
        Assert.Contains("--checkpoint-activations do not run together yet", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("2d", 4, 0)]
    [InlineData("2.5d", 8, 2)]
    [InlineData("3d", 8, 0)]
    public void LocalBlocksHoldTheirShareOfTheParameters(string mode, int tp, int depth)
    {
        // Summed over the ranks, the local blocks are the model once per copy: weights once (2.5D: d times), norm
        // vectors and positions once per rank holding them.
        var config = Tiny("gpt-tiny");
        var geometry = GridGeometry.For(Mode(mode), tp, depth).Geometry!;
        long held = GridParameterLayout.Of(config).Sum(p => p.LocalShape(geometry).ElementCount * (long)tp / geometry.Copies(p.Kind == GridTensorKind.BiasIn || p.Kind == GridTensorKind.BiasOut ? GridTensorKind.VectorResidual : p.Kind));
        Assert.Equal(config.ParameterCount, held);
    }

    [Theory]
    [InlineData("2d", 4, "1d", 2)]
    [InlineData("2d", 4, "1d", 1)]
    [InlineData("1d", 1, "3d", 8)]
    public void CheckpointWrittenUnderOneLayoutResumesUnderAnother(string writeMode, int writeTp, string resumeMode, int resumeTp)
    {
        string dir = Path.Combine(Path.GetTempPath(), "hal-grid-resume-" + Guid.NewGuid().ToString("N"));
        try
        {
            var job = FiveSteps with { Model = "gpt-tiny", Steps = 4 };
            var whole = TrainerTests.Train(job, 1);
            TrainerTests.Train(job with { Steps = 2, OutDir = dir, Tp = writeTp, TpMode = Mode(writeMode) }, writeTp);
            var resumed = TrainerTests.Train(job with { ResumeDir = Path.Combine(dir, "step-00000002"), Tp = resumeTp, TpMode = Mode(resumeMode) }, resumeTp);
            // The checkpoint holds whole tensors and moments whatever the layout: the resumed run continues the
            // uninterrupted one up to reordered fp32 sums.
            output.WriteLine($"{writeMode} tp {writeTp} -> {resumeMode} tp {resumeTp}: worst loss relative difference {TensorParallelTrainingTests.WorstRelative(whole.Losses, resumed.Losses):E2}");
            TensorParallelTrainingTests.AssertCurvesClose(whole.Losses, resumed.Losses, 1e-5, $"written {writeMode} tp {writeTp}, resumed {resumeMode} tp {resumeTp}");
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
    [InlineData("2d", 8, 0, 1, 4, "needs a square number of ranks")]
    [InlineData("3d", 4, 0, 1, 4, "needs a cube number of ranks")]
    [InlineData("2.5d", 4, 0, 1, 4, "needs q²·d ranks")]
    [InlineData("2.5d", 8, 4, 1, 4, "--tp-depth 4 needs --tp = q²·4")]
    [InlineData("2d", 9, 0, 1, 9, "4 heads, not divisible by 3")]
    [InlineData("3d", 8, 0, 1, 2, "2 sequences per replica are not divisible by 4")]
    public void ImpossibleGridsAreRefusedBeforeAnyWork(string mode, int tp, int depth, int dp, int batch, string expected)
    {
        var e = Assert.Throws<TrainConfigException>(() => TrainerTests.Train(
            FiveSteps with { Tp = tp, Dp = dp, Batch = batch, TpMode = Mode(mode), TpDepth = depth }, tp * dp));
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(1, 0, "none", "sgd", 2, "--sp 2 do not run together yet")]
    [InlineData(1, 1, "none", "adamw", 1, "--zero 1 do not run together yet")]
    [InlineData(1, 0, "static:0.5,0.5", "adamw", 1, "do not run together yet")]
    [InlineData(1, 0, "none", "lamb", 1, "use adamw or sgd")]
    [InlineData(1, 0, "none", "lars", 1, "use adamw or sgd")]
    public void GridsWithUnsupportedCompanionsAreRefused(int dp, int zero, string offload, string optimizer, int sp, string expected)
    {
        var kind = Enum.Parse<OptimizerKind>(optimizer, ignoreCase: true);
        var e = Assert.Throws<TrainConfigException>(() => TrainerTests.Train(FiveSteps with
        {
            Dp = dp, Tp = 4, Sp = sp, TpMode = TensorParallelMode.TwoD, Zero = zero, Offload = Zero.OffloadSpec.Parse(offload), Optimizer = kind,
        }, dp * 4 * sp));
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void GridsWithPipelineStagesOrSplitGatherAreRefused()
    {
        var grid = FiveSteps with { Tp = 4, TpMode = TensorParallelMode.TwoD };
        var pp = Assert.Throws<TrainConfigException>(() => TrainerTests.Train(grid with { Pp = 2 }, 8));
        Assert.Contains("--pp 2 do not run together yet", pp.Message, StringComparison.Ordinal);
        var splitGather = Assert.Throws<TrainConfigException>(() => TrainerTests.Train(grid with { SpMode = SequenceParallelMode.SplitGather }, 4));
        Assert.Contains("--sp-mode split-gather do not run together", splitGather.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("2d", 4, 37, 38)]
    [InlineData("2.5d", 8, 37, 38)]
    [InlineData("3d", 8, 37, 40)]
    [InlineData("3d", 8, 40, 40)]
    [InlineData("2d", 4, 50257, 50258)]
    [InlineData("3d", 8, 50257, 50260)]
    public void AVocabularyThatDoesNotSplitIsPaddedNotRefused(string mode, int tp, int vocab, int padded)
    {
        // The table's vocabulary is cut q ways (2D, 2.5D) or c² ways (3D): V rounds up to the next multiple of that.
        var geometry = GridGeometry.For(Mode(mode), tp, null).Geometry!;
        Assert.Null(geometry.Problem(ModelConfig.Named("gpt-tiny", vocab), geometry.RowBlocks));
        Assert.Equal(padded, geometry.PaddedVocabSize(vocab));
        var table = GridParameterLayout.Of(ModelConfig.Named("gpt-tiny", vocab)).Single(p => p.Kind == GridTensorKind.Table);
        Assert.Equal(new Shape(vocab, 128), table.FullShape);
        Assert.Equal(padded / geometry.VocabBlocks, table.LocalShape(geometry)[0]);
    }

    [Theory]
    [InlineData("gpt2-small", "2d", 4)]
    [InlineData("gpt2-small", "3d", 8)]
    [InlineData("gpt2-124m", "2d", 4)]
    [InlineData("gpt2-124m", "3d", 8)]
    public void TheGpt2ModelsAreAcceptedOnAGrid(string model, string mode, int tp)
    {
        // 50257 tokens: once refused on every grid, now padded (no model is built: the check is before any work).
        var geometry = GridGeometry.For(Mode(mode), tp, null).Geometry!;
        Assert.Null(geometry.Problem(ModelConfig.Named(model, 0), 2 * geometry.RowBlocks));
    }

    [Theory]
    [InlineData(8, 2)]
    [InlineData(12, 3)]
    [InlineData(16, 4)]
    [InlineData(18, 2)]
    [InlineData(32, 2)]
    public void The25DDefaultDepthHasTheLargestSideWithDepthAtLeastTwo(int tp, int depth) =>
        Assert.Equal(depth, GridGeometry.DefaultDepth(tp));

    [Theory]
    [InlineData(4)]
    [InlineData(9)]
    [InlineData(7)]
    public void The25DDefaultDepthIsRefusedWithoutADepthOfTwoOrMore(int tp) =>
        Assert.Null(GridGeometry.DefaultDepth(tp));
}
