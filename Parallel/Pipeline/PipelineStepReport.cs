namespace Hal.Parallel.Pipeline;

/// <summary>
/// What one pipeline step measured on one stage. Bubble fraction = 1 − busy/wall: the share of the step (the interval
/// every stage shares) this stage spent waiting (for its neighbours, or on messages) rather than computing.
/// </summary>
/// <param name="Kind">The schedule run.</param>
/// <param name="Stage">This stage.</param>
/// <param name="Stages">Number of stages p.</param>
/// <param name="MicroBatches">Micro-batches m.</param>
/// <param name="ChunksPerStage">Local chunks per stage v.</param>
/// <param name="BusySeconds">Time inside the stage's forward and backward calls.</param>
/// <param name="WallSeconds">Time of the whole step: from the common start to the slowest stage's last send delivered.</param>
/// <param name="BubbleFraction">1 − BusySeconds / WallSeconds, in [0, 1].</param>
/// <param name="MeanBubbleFraction">BubbleFraction averaged over the stages of the pipeline.</param>
/// <param name="TheoreticalBubbleFraction">The ideal (p − 1)/(v·m + p − 1) for equal chunks and free messages.</param>
/// <param name="StageBubbleFractions">Every stage's BubbleFraction, in stage order.</param>
public readonly record struct PipelineStepReport(
    PipelineScheduleKind Kind, int Stage, int Stages, int MicroBatches, int ChunksPerStage,
    double BusySeconds, double WallSeconds, double BubbleFraction, double MeanBubbleFraction, double TheoreticalBubbleFraction,
    IReadOnlyList<double> StageBubbleFractions)
{
    /// <inheritdoc />
    public override string ToString() =>
        $"{PipelineSchedule.KindName(Kind)} pp {Stages} m {MicroBatches} v {ChunksPerStage} stage {Stage}: busy {BusySeconds * 1e3:F2} ms of " +
        $"{WallSeconds * 1e3:F2} ms, bubble {BubbleFraction:F3} (mean over stages {MeanBubbleFraction:F3}, ideal {TheoreticalBubbleFraction:F3})";
}
