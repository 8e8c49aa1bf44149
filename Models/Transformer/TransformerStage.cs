using Hal.Parallel.Pipeline;

namespace Hal.Models.Transformer;

// Legend: m micro-batches, B rows per micro-batch, T (local) sequence length, C channels.

/// <summary>
/// A <see cref="TransformerModel"/> built as a pipeline stage, seen by the <see cref="PipelineExecutor"/>: model chunk 0
/// reads the step's token ids of each micro-batch, the last model chunk its targets, and every micro-batch's backward
/// differentiates <see cref="LossScale"/> times that micro-batch's mean loss. Set the step's micro-batches with
/// <see cref="SetStep"/> before running the schedule; <see cref="LossSum"/> then holds the sum of the micro-batch
/// losses this stage computed (0 on a stage without the last chunk).
/// </summary>
public sealed class TransformerStage : IPipelineStage
{
    private readonly TransformerModel _model;
    private readonly PipelineStage _stage;
    private IReadOnlyList<Tensor> _ids = [];
    private IReadOnlyList<Tensor> _targets = [];

    /// <summary>The adapter for <paramref name="model"/>, which must have been built with <see cref="TransformerOptions.Stage"/>.</summary>
    /// <exception cref="ArgumentException">the model is not a pipeline stage.</exception>
    public TransformerStage(TransformerModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        _model = model;
        _stage = model.Stage ?? throw new ArgumentException("the model is not a pipeline stage (TransformerOptions.Stage is null)", nameof(model));
    }

    /// <summary>Factor on every micro-batch's mean loss in backward (e.g. the loss scale over m).</summary>
    public double LossScale { get; private set; } = 1;

    /// <summary>Sum over the micro-batches of the losses this stage's last chunk computed in the current step.</summary>
    public double LossSum { get; private set; }

    /// <inheritdoc />
    public int ChunkCount => _stage.ChunksPerStage;

    /// <summary>
    /// The step's m micro-batches: <paramref name="ids"/> and <paramref name="targets"/>, one [B, T] I32 tensor each per
    /// micro-batch (the caller keeps them alive for the step and disposes them), and the backward's loss factor.
    /// </summary>
    public void SetStep(IReadOnlyList<Tensor> ids, IReadOnlyList<Tensor> targets, double lossScale)
    {
        ArgumentNullException.ThrowIfNull(ids);
        ArgumentNullException.ThrowIfNull(targets);
        if (ids.Count == 0 || ids.Count != targets.Count)
        {
            throw new ArgumentException($"one ids and one targets tensor per micro-batch, got {ids.Count} and {targets.Count}", nameof(targets));
        }
        _ids = ids;
        _targets = targets;
        LossScale = lossScale;
        LossSum = 0;
    }

    /// <inheritdoc />
    public PipelineTensorSpec InputSpec(int chunk) => Activation();

    /// <inheritdoc />
    public PipelineTensorSpec OutputSpec(int chunk) => Activation();

    /// <inheritdoc />
    public Tensor? Forward(int chunk, int micro, Tensor? input)
    {
        var output = _model.StageForward(chunk, micro, input, _ids[micro], _targets[micro]);
        if (_stage.IsLastChunk(chunk))
        {
            LossSum += _model.StageLoss(micro);
        }
        return output;
    }

    /// <inheritdoc />
    public Tensor? Backward(int chunk, int micro, Tensor? outputGradient) => _model.StageBackward(chunk, micro, outputGradient, LossScale);

    /// <summary>What crosses every stage boundary: the residual stream of one micro-batch, [B, T, C].</summary>
    private PipelineTensorSpec Activation()
    {
        if (_ids.Count == 0)
        {
            throw new InvalidOperationException("SetStep before running a schedule");
        }
        var shape = _ids[0].Shape;
        return new PipelineTensorSpec(new Shape(shape[0], shape[1], _model.Config.Channels), _model.Options.ComputeDType);
    }
}
