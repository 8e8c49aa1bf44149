using Hal.Models.Optim;
using Hal.Models.Training;

namespace Hal.Models.Tests;

/// <summary>Warm-up, cosine decay to a tenth, constant, and the edges of <see cref="LearningRateSchedule"/>.</summary>
public sealed class OptimScheduleTests
{
    // Expected values are exact decimal arithmetic on the formula; 1e-12 allows the double rounding of cos and the products.
    private const double Tolerance = 1e-12;

    [Fact]
    public void CosineWarmsUpLinearlyThenDecaysToATenthOfThePeak()
    {
        var s = new LearningRateSchedule(ScheduleKind.Cosine, peak: 2.0, warmupSteps: 20, totalSteps: 120);
        Assert.Equal(0.1, s.At(1), Tolerance);
        Assert.Equal(1.0, s.At(10), Tolerance);
        Assert.Equal(2.0, s.At(20), Tolerance);
        // Halfway through the decay (step 70 of 20…120) the cosine is at its midpoint: 0.2 + (2 − 0.2)/2.
        Assert.Equal(1.1, s.At(70), Tolerance);
        // A quarter of the way: 0.2 + 0.9·(1 + cos(π/4)).
        Assert.Equal(0.2 + (0.9 * (1 + Math.Sqrt(0.5))), s.At(45), Tolerance);
        Assert.Equal(0.2, s.At(120), Tolerance);
        Assert.Equal(0.2, s.At(500), Tolerance);
        for (int step = 21; step <= 130; step++)
        {
            Assert.True(s.At(step) <= s.At(step - 1), $"step {step}: {s.At(step)} > {s.At(step - 1)}");
        }
        for (int step = 2; step <= 20; step++)
        {
            Assert.True(s.At(step) > s.At(step - 1), $"warm-up step {step}");
        }
    }

    [Fact]
    public void ConstantHoldsThePeakAfterTheWarmUp()
    {
        var s = new LearningRateSchedule(ScheduleKind.Constant, peak: 3e-3, warmupSteps: 4, totalSteps: 10);
        Assert.Equal(0.75e-3, s.At(1), Tolerance);
        Assert.Equal(2.25e-3, s.At(3), Tolerance);
        Assert.Equal(3e-3, s.At(4), Tolerance);
        Assert.Equal(3e-3, s.At(10), Tolerance);
        Assert.Equal(3e-3, s.At(11), Tolerance);
    }

    [Fact]
    public void NoWarmUpStartsAtThePeak()
    {
        var cosine = new LearningRateSchedule(ScheduleKind.Cosine, peak: 1.0, warmupSteps: 0, totalSteps: 4);
        // progress 1/4: 0.1 + 0.45·(1 + cos(π/4)).
        Assert.Equal(0.1 + (0.45 * (1 + Math.Sqrt(0.5))), cosine.At(1), Tolerance);
        Assert.Equal(0.1, cosine.At(4), Tolerance);
        Assert.Equal(1.0, new LearningRateSchedule(ScheduleKind.Constant, 1.0, 0, 4).At(1), Tolerance);
    }

    [Fact]
    public void AWarmUpAsLongAsTheRunEndsAtThePeak()
    {
        var s = new LearningRateSchedule(ScheduleKind.Cosine, peak: 1.0, warmupSteps: 5, totalSteps: 5);
        Assert.Equal(0.2, s.At(1), Tolerance);
        Assert.Equal(1.0, s.At(5), Tolerance);
        Assert.Equal(1.0, s.At(6), Tolerance);
    }

    [Fact]
    public void BadArgumentsAreRefused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new LearningRateSchedule(ScheduleKind.Cosine, -1, 0, 10));
        Assert.Throws<ArgumentOutOfRangeException>(() => new LearningRateSchedule(ScheduleKind.Cosine, double.NaN, 0, 10));
        Assert.Throws<ArgumentOutOfRangeException>(() => new LearningRateSchedule(ScheduleKind.Cosine, 1, -1, 10));
        Assert.Throws<ArgumentOutOfRangeException>(() => new LearningRateSchedule(ScheduleKind.Cosine, 1, 0, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => new LearningRateSchedule((ScheduleKind)7, 1, 0, 10));
        var s = new LearningRateSchedule(ScheduleKind.Cosine, 1, 0, 10);
        Assert.Throws<ArgumentOutOfRangeException>(() => s.At(0));
    }
}
