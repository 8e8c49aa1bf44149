using Hal.Models.Training;

namespace Hal.Models.Optim;

/// <summary>
/// The learning rate of each step: a linear warm-up from peak/warmup at step 1 to the peak at step warmup, then
/// either the peak (<see cref="ScheduleKind.Constant"/>) or a cosine decay to 0.1·peak at the last step
/// (<see cref="ScheduleKind.Cosine"/>); steps past the last keep the last value.
/// </summary>
public sealed class LearningRateSchedule
{
    /// <summary>The fraction of the peak the cosine decay ends at.</summary>
    public const double CosineFloorFraction = 0.1;

    /// <summary>Creates a schedule.</summary>
    /// <param name="kind">Constant or cosine after the warm-up.</param>
    /// <param name="peak">Peak learning rate (finite, ≥ 0).</param>
    /// <param name="warmupSteps">Steps of linear warm-up (≥ 0; 0: start at the peak).</param>
    /// <param name="totalSteps">The last step (≥ 1).</param>
    /// <exception cref="ArgumentOutOfRangeException">a value outside those ranges.</exception>
    public LearningRateSchedule(ScheduleKind kind, double peak, int warmupSteps, int totalSteps)
    {
        if (!double.IsFinite(peak) || peak < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(peak), peak, "the peak learning rate must be finite and ≥ 0");
        }
        ArgumentOutOfRangeException.ThrowIfNegative(warmupSteps);
        ArgumentOutOfRangeException.ThrowIfLessThan(totalSteps, 1);
        if (!Enum.IsDefined(kind))
        {
            throw new ArgumentOutOfRangeException(nameof(kind), kind, "unknown schedule");
        }
        Kind = kind;
        Peak = peak;
        WarmupSteps = warmupSteps;
        TotalSteps = totalSteps;
    }

    /// <summary>Constant or cosine after the warm-up.</summary>
    public ScheduleKind Kind { get; }

    /// <summary>Peak learning rate.</summary>
    public double Peak { get; }

    /// <summary>Steps of linear warm-up.</summary>
    public int WarmupSteps { get; }

    /// <summary>The last step.</summary>
    public int TotalSteps { get; }

    /// <summary>The learning rate of <paramref name="step"/> (counted from 1).</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="step"/> &lt; 1.</exception>
    public double At(long step)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(step, 1L);
        if (step <= WarmupSteps)
        {
            return Peak * step / WarmupSteps;
        }
        if (Kind == ScheduleKind.Constant || TotalSteps <= WarmupSteps)
        {
            return Peak;
        }
        double progress = Math.Min(1.0, (double)(step - WarmupSteps) / (TotalSteps - WarmupSteps));
        double floor = CosineFloorFraction * Peak;
        return floor + (0.5 * (Peak - floor) * (1 + Math.Cos(Math.PI * progress)));
    }
}
