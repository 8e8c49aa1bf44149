using Hal.Backends.Cpu;
using Hal.Memory;
using Hal.Models.Training;
using Hal.Models.Zero;

namespace Hal.Models.Tests;

/// <summary>
/// ZeRO stages 2 and 3 and offloading through the chunked engine: every stage, rank count and placement computes
/// what plain data parallelism computes, a device budget is never exceeded, and running out of host memory or disk
/// is a typed error that names the tier and the numbers.
/// </summary>
public sealed class ZeroChunkedTests
{
    private static readonly TrainConfig Job = ZeroTests.Job;

    // Relative tolerance against plain data parallelism in fp32: the chunked path sums the same gradients in the same
    // order per rank, but the reduce-scatter, the fp32 gradient copy and the norm's summation order differ from the
    // slab path's all-reduce; observed differences are ~1e-7 over 6 steps.
    private const double Fp32Tolerance = 1e-5;

    [Theory]
    [InlineData(2, 1)]
    [InlineData(2, 2)]
    [InlineData(2, 4)]
    [InlineData(3, 1)]
    [InlineData(3, 2)]
    [InlineData(3, 4)]
    public void StagesTwoAndThreeGiveTheLossesOfPlainDataParallel(int stage, int dp)
    {
        var plain = TrainerTests.Train(Job with { Dp = dp }, dp);
        var zero = TrainerTests.Train(Job with { Dp = dp, Zero = stage }, dp);
        AssertCurvesClose(plain.Losses, zero.Losses, Fp32Tolerance, $"zero {stage} dp {dp}");
    }

    [Fact]
    public void LlamaWithGroupedQueryAttentionUnderStageThreeFollowsPlainDataParallel()
    {
        var job = Job with { Model = "llama-tiny", Dp = 2 };
        var plain = TrainerTests.Train(job, 2);
        var zero = TrainerTests.Train(job with { Zero = 3 }, 2);
        AssertCurvesClose(plain.Losses, zero.Losses, Fp32Tolerance, "llama-tiny zero 3 dp 2");
    }

    [Fact]
    public void GradientAccumulationAndCheckpointedActivationsUnderStageThreeFollowPlainDataParallel()
    {
        var job = Job with { Dp = 2, GradAccum = 2, CheckpointActivations = true };
        var plain = TrainerTests.Train(job, 2);
        var zero = TrainerTests.Train(job with { Zero = 3 }, 2);
        AssertCurvesClose(plain.Losses, zero.Losses, Fp32Tolerance, "zero 3 dp 2 grad-accum 2 checkpointed");
    }

    [Fact]
    public void Bf16UnderStageThreeFollowsBf16DataParallel()
    {
        var job = Job with { Dp = 2, Precision = Precision.Bf16 };
        var plain = TrainerTests.Train(job, 2);
        var zero = TrainerTests.Train(job with { Zero = 3 }, 2);
        // Both keep fp32 masters and reduce bf16 gradients in bf16; the chunked path casts each rank's reduced shard
        // to fp32 where the slab path casts the whole averaged slab, so a bf16 rounding (2^-8 relative) of a
        // gradient may land differently: 1e-3 on the loss after 6 steps.
        AssertCurvesClose(plain.Losses, zero.Losses, 1e-3, "bf16 zero 3 dp 2");
    }

    [Theory]
    [InlineData("static:0.5,0.5", 1)]
    [InlineData("static:1,1", 2)]
    [InlineData("static:0,1", 1)]
    [InlineData("auto", 1)]
    [InlineData("auto", 2)]
    public void OffloadedRunsFollowTheInMemoryRun(string offload, int dp)
    {
        var plain = TrainerTests.Train(Job with { Dp = dp }, dp);
        var spec = OffloadSpec.Parse(offload);
        var off = TrainerTests.Train(Job with { Dp = dp, Zero = 3, Offload = spec }, dp);
        // Host shards update with HostOptimizer, bit-equal to the device kernel; only the gradient norm's summation
        // order differs (double on the host, fp32 on the device).
        AssertCurvesClose(plain.Losses, off.Losses, Fp32Tolerance, $"--offload {offload} dp {dp}");
        if (spec.Policy == OffloadPolicy.Static && spec.OptimizerFraction > 0)
        {
            Assert.True(off.HostBytes > 0, $"--offload {offload}: no bytes in host memory");
            Assert.True(off.TierTrafficBytes > 0, $"--offload {offload}: nothing moved between tiers");
        }
    }

    [Fact]
    public void AutoKeepsTheDeviceBudgetWhileStatesAreSeveralTimesLarger()
    {
        // gpt-tiny's states are 16 bytes × 409 088 parameters ≈ 6.2 MiB; the budget is 3 MiB, of which the warm-up
        // step of 4 checkpointed sequences of 16 tokens needs about 1.4 MiB besides model states.
        const long budget = 3L << 20;
        var job = Job with { Batch = 4, CheckpointActivations = true };
        var end = TrainWithBudget(job with { Zero = 3, Offload = OffloadSpec.Parse("auto") }, budget);
        var plain = TrainerTests.Train(job, 1);
        Assert.True(end.PeakDeviceBytes <= budget, $"peak {end.PeakDeviceBytes} bytes exceeds the budget of {budget}");
        Assert.True(end.ModelStateBytes >= 2 * budget, $"model states {end.ModelStateBytes} bytes are not at least twice the budget {budget}");
        Assert.True(end.HostBytes > 0);
        AssertCurvesClose(plain.Losses, end.Losses, Fp32Tolerance, "auto under a 3 MiB budget");
    }

    [Fact]
    public void StatesBeyondTheHostLimitGoToNvmeFilesAndTheCurveHolds()
    {
        string dir = Directory.CreateTempSubdirectory("hal-nvme-").FullName;
        try
        {
            var plain = TrainerTests.Train(Job, 1);
            var messages = new TrainerTests.RecordingObserver();
            TrainEnd end;
            using (var device = new CpuBackend().Open(0))
            {
                end = Trainer.Run(Job with { Zero = 3, Offload = OffloadSpec.Parse("static:0,1"), HostMemoryBytes = 2L << 20, NvmeDir = dir }, [device], null, messages);
            }
            Assert.True(end.NvmeBytes > 0, "nothing went to NVMe");
            // Each step's forward and backward read the next layer's masters ahead; at least one per step did.
            string prefetch = Assert.Single(messages.Messages, m => m.StartsWith("NVMe: ", StringComparison.Ordinal));
            int ahead = int.Parse(prefetch.Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture);
            Assert.True(ahead >= Job.Steps, prefetch);
            Assert.True(end.HostBytes <= 2L << 20, $"host bytes {end.HostBytes} exceed the 2 MiB limit");
            AssertCurvesClose(plain.Losses, end.Losses, Fp32Tolerance, "NVMe");
            // The engine's files are gone with the run.
            Assert.Empty(Directory.EnumerateFileSystemEntries(dir));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void HostMemoryFullWithoutNvmeNamesTheTierAndTheNumbers()
    {
        var e = Assert.Throws<OffloadSpaceException>(() => TrainerTests.Train(Job with { Zero = 3, Offload = OffloadSpec.Parse("static:0,1"), HostMemoryBytes = 1L << 20 }, 1));
        Assert.Equal(Tier.Host, e.Tier);
        Assert.Equal(1L << 20, e.LimitBytes);
        // Every state chunk (16 bytes per parameter, padded per chunk) was meant for host memory.
        Assert.InRange(e.NeededBytes, 16 * 409_088L, (16 * 409_088L) + 1024);
        Assert.Equal(string.Create(System.Globalization.CultureInfo.InvariantCulture, $"the optimizer states placed in the Host tier need {e.NeededBytes:N0} bytes but its limit is 1,048,576 bytes; give --nvme-dir DIR for the states beyond it, raise --host-memory, or keep more on the device (a smaller OPTIM fraction)"), e.Message);
    }

    [Fact]
    public void AFullDiskUnderTheNvmeDirectoryNamesTheFileAndTheNumbers()
    {
        // /dev/full accepts opens and fails every write with ENOSPC: a disk that is full (Linux; CI runs there).
        Assert.True(File.Exists("/dev/full"), "this test needs /dev/full");
        string dir = Directory.CreateTempSubdirectory("hal-nvme-full-").FullName;
        try
        {
            using var device = new CpuBackend().Open(0);
            var ops = new Ops(device);
            var config = Transformer.ModelConfig.Named("gpt-tiny", 32);
            var e = Assert.Throws<NvmeDiskFullException>(() =>
            {
                using var model = new Transformer.TransformerModel(ops, config, new Transformer.TransformerOptions
                {
                    Backing = store => new ZeroEngine(ops, store, Transformer.TransformerModel.VocabularyParameters(config),
                        Transformer.TransformerModel.SharedParameters(config), null, DType.F32, new ZeroEngineOptions
                        {
                            Offload = OffloadSpec.Parse("static:0,1"),
                            HostLimitBytes = 1L << 20,
                            NvmeDirectory = dir,
                            NvmeFileOpener = _ => File.OpenHandle("/dev/full", FileMode.Open, FileAccess.Write, FileShare.ReadWrite, FileOptions.Asynchronous),
                        }),
                });
            });
            Assert.True(e.BytesRequested > 0);
            Assert.StartsWith(dir, e.Path, StringComparison.Ordinal);
            Assert.Contains("the disk under the Nvme tier is full", e.Message, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Theory]
    [InlineData(OptimizerKind.Lamb, Precision.Fp32, "updates with AdamW")]
    [InlineData(OptimizerKind.AdamW, Precision.Fp16, "use --precision bf16")]
    public void WhatTheChunkedPathDoesNotDoIsRefusedBeforeAnyWork(OptimizerKind optimizer, Precision precision, string expected)
    {
        var e = Assert.Throws<TrainConfigException>(() => TrainerTests.Train(Job with { Zero = 3, Optimizer = optimizer, Precision = precision }, 1));
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void StageThreeShardsEveryModelStateOverTheRanks()
    {
        var one = TrainerTests.Train(Job with { Zero = 3, Steps = 1 }, 1);
        var four = TrainerTests.Train(Job with { Zero = 3, Steps = 1, Dp = 4 }, 4);
        // States are 16 bytes per parameter however many ranks share them (each holds a quarter, padded to a
        // multiple of 4 elements per chunk); nothing is gathered at the end of a step under stage 3 without offload.
        const long parameters = 409_088;
        Assert.Equal(16 * parameters, one.ModelStateBytes);
        Assert.InRange(four.ModelStateBytes, 16 * parameters, (16 * parameters) + (16 * 4 * 16));
    }

    [Theory]
    [InlineData(3, 2, "none", 0, 1, "none")]
    [InlineData(0, 1, "none", 3, 2, "static:1,1")]
    [InlineData(2, 4, "auto", 3, 1, "none")]
    public void CheckpointsMoveBetweenChunkedAndPlainRuns(int writeZero, int writeDp, string writeOffload, int readZero, int readDp, string readOffload)
    {
        string dir = Directory.CreateTempSubdirectory("hal-zero-ckpt-").FullName;
        try
        {
            var whole = TrainerTests.Train(Job with { Zero = writeZero, Dp = writeDp, Offload = OffloadSpec.Parse(writeOffload), OutDir = dir, CheckpointEvery = 3 }, writeDp);
            var resumed = TrainerTests.Train(Job with
            {
                Zero = readZero,
                Dp = readDp,
                Offload = OffloadSpec.Parse(readOffload),
                ResumeDir = Path.Combine(dir, "step-00000003"),
            }, readDp);
            // The resumed run's curve is the checkpoint's three losses, then three more that follow the whole run
            // (another dp count sums the same gradients in another order).
            AssertCurvesClose(whole.Losses, resumed.Losses, Fp32Tolerance, $"zero {writeZero} dp {writeDp} {writeOffload} → zero {readZero} dp {readDp} {readOffload}");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void ACrashDuringTheRunLosesNoCheckpoint()
    {
        string dir = Directory.CreateTempSubdirectory("hal-zero-crash-").FullName;
        try
        {
            var job = Job with { Zero = 3, Offload = OffloadSpec.Parse("static:0.5,0.5"), OutDir = dir, CheckpointEvery = 2 };
            var whole = TrainerTests.Train(job with { OutDir = null }, 1);
            using (var device = new CpuBackend().Open(0))
            {
                // The process dies in step 5, after the checkpoint of step 4 and before that of step 6.
                Assert.Throws<TrainerTests.SimulatedCrashException>(() => Trainer.Run(job, [device], null, new TrainerTests.RecordingObserver(crashAtStep: 5)));
            }
            string latest = Checkpoints.Checkpoint.Resolve(dir);
            Assert.Equal("step-00000004", Path.GetFileName(latest));
            var resumed = TrainerTests.Train(job with { OutDir = null, ResumeDir = dir }, 1);
            AssertCurvesClose(whole.Losses, resumed.Losses, Fp32Tolerance, "resumed after a crash in step 5");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void ChunkTensorsMoveThroughTheLegalStatesAndEndEachPassHeldOrFree()
    {
        using var device = new CpuBackend().Open(0);
        var ops = new Ops(device);
        var config = Transformer.ModelConfig.Named("gpt-tiny", 32);
        ZeroEngine? engine = null;
        using var model = new Transformer.TransformerModel(ops, config, new Transformer.TransformerOptions
        {
            Backing = store => engine = new ZeroEngine(ops, store, Transformer.TransformerModel.VocabularyParameters(config),
                Transformer.TransformerModel.SharedParameters(config), null, DType.F32, new ZeroEngineOptions { Stage = 3 }),
        });
        using var scope = engine;
        model.Initialize(7);
        Assert.All(engine!.ChunkStates, s => Assert.Equal(TensorState.Free, s));
        using var ids = ops.FromArray([.. Enumerable.Range(0, 32).Select(i => (double)(i % 32))], new Shape(2, 16), DType.I32);
        model.Parameters.ZeroGrads(ops);
        model.Forward(ids, ids);
        // Stage 3 releases each layer's parameters after its forward: every chunk is free again.
        Assert.All(engine.ChunkStates, s => Assert.Equal(TensorState.Free, s));
        model.Backward();
        // Every gradient was reduced (ready-for-reduce → free), none waits.
        Assert.All(engine.ChunkStates, s => Assert.Equal(TensorState.Free, s));
        // A parameter used outside its layer's Begin/End is refused, naming it.
        var e = Assert.Throws<InvalidOperationException>(() => model.Parameters.Param("transformer.h.0.ln_1.weight"));
        Assert.Contains("transformer.h.0.ln_1.weight", e.Message, StringComparison.Ordinal);
    }

    private static TrainEnd TrainWithBudget(TrainConfig config, long budget)
    {
        using var device = new CpuBackend(new CpuBackendOptions { DeviceMemoryBytes = budget }).Open(0);
        return Trainer.Run(config, [device], null, new TrainerTests.RecordingObserver());
    }

    private static void AssertCurvesClose(IReadOnlyList<double> expected, IReadOnlyList<double> actual, double relative, string what)
    {
        Assert.Equal(expected.Count, actual.Count);
        for (int i = 0; i < expected.Count; i++)
        {
            double diff = Math.Abs(expected[i] - actual[i]);
            Assert.True(diff <= relative * Math.Abs(expected[i]), $"{what}: step {i + 1} loss {actual[i]:R} vs {expected[i]:R} (|diff| {diff:E2} > {relative:E0} relative)");
        }
    }
}
