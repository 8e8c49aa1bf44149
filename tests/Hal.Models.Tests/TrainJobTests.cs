using Hal.Backends.Cpu;
using Hal.Models.Training;

namespace Hal.Models.Tests;

public sealed class TrainJobTests
{
    [Fact]
    public void TheLossApproachesTheSourceEntropy()
    {
        using var device = new CpuBackend().Open(0);
        var options = new TrainOptions { Steps = 150, BatchTokens = 256, VocabSize = 32, Successors = 3, Channels = 32, LearningRate = 2e-2, Seed = 7 };
        var result = TrainJob.Run(device, options, TextWriter.Null);
        Assert.Equal(150, result.Losses.Count);
        // Step 1 is near the uniform guess ln V (small initial weights).
        Assert.InRange(result.Losses[0], result.UniformLossNats - 0.1, result.UniformLossNats + 0.1);
        // After training the loss sits close to the entropy floor: within 0.15 nats, measured ≈ 0.05 above it with batch noise.
        Assert.True(result.FinalLoss < result.EntropyRateNats + 0.15,
            $"final loss {result.FinalLoss:F4} vs entropy floor {result.EntropyRateNats:F4}");
        // No predictor beats the entropy rate by more than sampling noise of a 256-token batch averaged over 15 steps.
        Assert.True(result.FinalLoss > result.EntropyRateNats - 0.1);
    }

    [Fact]
    public void TheSameSeedGivesTheSameLosses()
    {
        using var device = new CpuBackend().Open(0);
        var options = new TrainOptions { Steps = 5, BatchTokens = 64, VocabSize = 16, Channels = 16, Seed = 3 };
        var a = TrainJob.Run(device, options, TextWriter.Null);
        var b = TrainJob.Run(device, options, TextWriter.Null);
        Assert.Equal(a.Losses, b.Losses);
    }

    [Fact]
    public void BadOptionsAreRefused()
    {
        using var device = new CpuBackend().Open(0);
        Assert.Throws<ArgumentOutOfRangeException>(() => TrainJob.Run(device, new TrainOptions { Steps = 0 }, TextWriter.Null));
        Assert.Throws<ArgumentOutOfRangeException>(() => TrainJob.Run(device, new TrainOptions { LearningRate = 0 }, TextWriter.Null));
    }

    [Fact]
    public void ItRunsInsideADeviceMemoryLimitOrSaysHowMuchWasMissing()
    {
        var backend = new CpuBackend(new CpuBackendOptions { DeviceMemoryBytes = 64 * 1024 });
        using var device = backend.Open(0);
        var e = Assert.Throws<OutOfDeviceMemoryException>(() =>
            TrainJob.Run(device, new TrainOptions { Steps = 1, VocabSize = 64, Channels = 64 }, TextWriter.Null));
        Assert.Equal(64 * 1024, e.LimitBytes);
        Assert.True(e.BytesRequested > 0);
    }
}

public sealed class LearningRateScheduleTests
{
    [Fact]
    public void WarmsUpLinearlyThenDecaysByACosineToATenth()
    {
        var o = new TrainOptions { Steps = 120, WarmupSteps = 20, LearningRate = 1.0 };
        Assert.Equal(0.05, TrainJob.LearningRateAt(o, 1), 12);
        Assert.Equal(0.5, TrainJob.LearningRateAt(o, 10), 12);
        Assert.Equal(1.0, TrainJob.LearningRateAt(o, 20), 12);
        // Halfway through the decay the cosine is at its midpoint: 0.1 + 0.45.
        Assert.Equal(0.55, TrainJob.LearningRateAt(o, 70), 12);
        Assert.Equal(0.1, TrainJob.LearningRateAt(o, 120), 12);
        for (int s = 21; s <= 120; s++)
        {
            Assert.True(TrainJob.LearningRateAt(o, s) <= TrainJob.LearningRateAt(o, s - 1), $"step {s}");
        }
    }
}
