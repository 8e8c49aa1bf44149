using Hal.Models.Nn;

namespace Hal.Models.Transformer;

/// <summary>
/// A GPT-2 or LLaMA language model with explicit forward and backward: embeddings, L pre-norm blocks, a final norm
/// and the LM head with fused cross-entropy. Parameters live in one <see cref="ParameterStore"/> under their Hugging
/// Face names; activations live in a workspace that is reused while shapes repeat. With activation checkpointing the
/// blocks share one set of internal buffers and only the residual stream (every block's input) is kept.
/// Legend: B batch, T time, C channels, V vocabulary, L layers, N = B·T.
/// </summary>
public sealed partial class TransformerModel : IDisposable
{
    private readonly Workspace _ws;
    private readonly RotaryTables? _rotary;
    private readonly Embedding? _embedding;
    private readonly TiledEmbedding? _tiledEmbedding;
    private readonly Block[] _blocks;
    private readonly INorm? _finalNorm;
    private readonly LmHead? _head;
    private readonly TiledLmHead? _tiledHead;
    private readonly IParameterBacking? _backing;
    private readonly TensorParallelContext? _tensorParallel;
    private readonly SequenceParallelContext? _sequenceParallel;
    private readonly ParameterStore? _fullDeclaration;
    private readonly List<IDisposable> _tensorParallelModules = [];
    private bool _canBackward;
    private int _batch, _time;
    private long _savedBytes;

    /// <summary>Declares the parameters of <paramref name="config"/> and allocates the store (gradients zero, parameters uninitialised: call <see cref="Initialize"/> or load them).</summary>
    /// <exception cref="ArgumentException">an invalid configuration.</exception>
    public TransformerModel(Ops ops, ModelConfig config, TransformerOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(ops);
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        Ops = ops;
        Config = config;
        Options = options ?? new TransformerOptions();
        if (!Options.ComputeDType.IsFloatingPoint())
        {
            throw new ArgumentException($"compute dtype {Options.ComputeDType} is not a floating-point dtype", nameof(options));
        }
        if (Options.TensorParallel is not null && Options.Backing is not null)
        {
            throw new ArgumentException("tensor parallelism and a chunked parameter backing (ZeRO 2/3, offload) do not run together yet", nameof(options));
        }
        if (Options.TensorParallel is { } tpGroup && TensorParallelLayout.Problem(config, tpGroup.Size) is { } problem)
        {
            throw new ArgumentException(problem, nameof(options));
        }
        CheckSequenceParallelOptions(config);
        CheckSplitGatherOptions();
        if (Options.Stage is not null && Options.Backing is not null)
        {
            throw new ArgumentException("a pipeline stage and a chunked parameter backing (ZeRO 2/3, offload) do not run together", nameof(options));
        }
        if (Options.Stage is not null && Options.SequenceParallelRegions)
        {
            throw new ArgumentException("a pipeline stage and split-gather sequence parallelism do not run together yet", nameof(options));
        }
        Parameters = new ParameterStore();
        if (Options.Stage is { } stage)
        {
            _stageDeclaration = DeclareStage(Parameters, config, stage, Options.TensorParallel?.Size ?? 1);
        }
        else if (Options.TensorParallel is { } group)
        {
            _fullDeclaration = TensorParallelLayout.DeclareShards(Parameters, config, group.Size);
        }
        else
        {
            DeclareParameters(Parameters, config);
        }
        _ws = new Workspace(ops);
        if (Options.TensorParallel is { } tp)
        {
            _tensorParallel = new TensorParallelContext(_ws, tp);
        }
        if (Options.SequenceParallel is { } sp)
        {
            _sequenceParallel = new SequenceParallelContext(_ws, sp);
        }
        try
        {
            if (Options.Backing is { } makeBacking)
            {
                _backing = makeBacking(Parameters);
                Parameters.Attach(_backing, Options.ComputeDType);
            }
            else
            {
                Parameters.Allocate(ops, Options.ComputeDType);
            }
            if (config.Family == ModelFamily.Llama)
            {
                _rotary = new RotaryTables(ops, config.ContextLength, config.HeadSize, config.RopeTheta);
            }
            if (Options.Stage is null)
            {
                (_embedding, _blocks, _finalNorm, _head) = BuildModules();
                BuildSplitGather();
            }
            else
            {
                // A stage builds its chunks' modules per micro-batch in flight (TransformerModel.Pipeline.cs).
                _blocks = [];
                _stageSlots = [.. Enumerable.Range(0, Options.Stage.ChunksPerStage).Select(_ => new List<StageSlot>())];
            }
            if (_backing is not null)
            {
                // Under a backing that tiles the vocabulary matrices, the embedding and the head run tile by tile.
                (_tiledEmbedding, _tiledHead) = BuildTiledModules(_backing);
                if (_tiledEmbedding is not null)
                {
                    _embedding = null;
                }
                if (_tiledHead is not null)
                {
                    _head = null;
                }
            }
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>The model's shape.</summary>
    public ModelConfig Config { get; }

    /// <summary>Compute dtype and checkpointing.</summary>
    public TransformerOptions Options { get; }

    /// <summary>Every parameter and its gradient, by Hugging Face name.</summary>
    public ParameterStore Parameters { get; }

    /// <summary>The entry the model runs its kernels through.</summary>
    public Ops Ops { get; }

    /// <summary>The tensor-parallel group and its traffic counters; null for a model on one device.</summary>
    public TensorParallelContext? TensorParallel => _tensorParallel;

    /// <summary>The sequence-parallel group and its traffic counter; null for a model that holds whole sequences.</summary>
    public SequenceParallelContext? SequenceParallel => _sequenceParallel;

    /// <summary>Bytes of activations saved by the last <see cref="Forward"/> (for reports).</summary>
    public long SavedActivationBytes => _savedBytes;

    /// <summary>Bytes of every activation and scratch buffer the model holds now (saved activations plus backward scratch).</summary>
    public long WorkspaceBytes => _ws.TotalBytes;

    /// <summary>
    /// Runs the forward on ids and targets [B, T] (I32, T ≤ ContextLength) and keeps what backward needs. Returns the
    /// mean cross-entropy over the B·T tokens (a negative target contributes 0 but counts in the denominator).
    /// Under sequence parallelism ids and targets are [B, T/sp], this rank's tokens, and the mean is over every
    /// rank's tokens (collective over the group).
    /// </summary>
    /// <exception cref="ArgumentException">ids or targets of the wrong shape or dtype.</exception>
    public double Forward(Tensor ids, Tensor targets)
    {
        ThrowIfStaged();
        ArgumentNullException.ThrowIfNull(targets);
        CheckIds(ids, nameof(ids));
        if (targets.Shape != ids.Shape || !targets.DType.IsIndex())
        {
            throw new ArgumentException($"targets must be I32/I64 of the ids' shape {ids.Shape}, not {targets.DType} {targets.Shape}", nameof(targets));
        }
        _canBackward = false;
        _ws.ResetSaved();
        int n = _batch * _time;
        var savedTargets = _ws.Get("targets", new Shape(n), targets.DType, saved: true);
        Ops.Copy(targets.Reshape(n), savedTargets);
        var xf = _splitGatherBlocks is not null ? RunTrunkSplitGather(ids) : RunTrunk(ids);
        var losses = _tiledHead is not null ? _tiledHead.Forward(xf, savedTargets) : _head!.Forward(xf, savedTargets);
        _backing?.EndForward(Config.Layers + 1);
        _savedBytes = _ws.SavedBytes;
        _canBackward = true;
        double sum = 0;
        foreach (double loss in Ops.ToDoubleArray(losses))
        {
            sum += loss;
        }
        if (_sequenceParallel is { } sp)
        {
            // Every rank holds the same number of tokens: the global mean is the summed local sums over sp·N.
            return sp.Sum(sum) / ((double)n * sp.Size);
        }
        return sum / n;
    }

    /// <summary>
    /// Adds d(lossScale · meanLoss)/dθ into <see cref="ParameterStore.Grads"/>. After the head and final norm, after
    /// each block l (L down to 1), and after the embeddings, calls <paramref name="gradientsReadyFrom"/> with
    /// <see cref="ParameterStore.LayerStart"/> of that layer: every gradient at slab offsets ≥ it is final.
    /// </summary>
    /// <exception cref="InvalidOperationException">no <see cref="Forward"/> since the last backward or <see cref="Logits"/>.</exception>
    public void Backward(double lossScale = 1.0, Action<long>? gradientsReadyFrom = null)
    {
        if (!_canBackward)
        {
            throw new InvalidOperationException("Backward needs a Forward first (Logits and a previous Backward discard the saved activations)");
        }
        _canBackward = false;
        if (_splitGatherBlocks is not null)
        {
            BackwardSplitGather(lossScale, gradientsReadyFrom);
            return;
        }
        int layers = Config.Layers, b = _batch, t = _time, c = Config.Channels, n = b * t;
        var dtype = Options.ComputeDType;
        var dFinal = _ws.Get("d.final", new Shape(n, c), dtype);
        _backing?.BeginBackward(layers + 1);
        // The head differentiates the mean over its N rows; under sp the loss is the mean over sp·N rows.
        lossScale /= _sequenceParallel?.Size ?? 1;
        if (_tiledHead is not null)
        {
            _tiledHead.Backward(lossScale, dFinal);
        }
        else
        {
            _head!.Backward(lossScale, dFinal);
        }
        var dResidual = _ws.Get("d.residual", new Shape(n, c), dtype);
        _finalNorm!.Backward(dFinal, dResidual, accumulate: false);
        _backing?.EndBackward(layers + 1);
        gradientsReadyFrom?.Invoke(Parameters.LayerStart(layers + 1));
        var dResidual3 = dResidual.Reshape(b, t, c);
        for (int l = layers - 1; l >= 0; l--)
        {
            _backing?.BeginBackward(l + 1);
            // The shared block buffers still hold the last block's forward, so only earlier blocks recompute.
            if (Options.CheckpointActivations && l < layers - 1)
            {
                _blocks[l].Forward(Residual(l), _ws.Get("recompute.out", new Shape(b, t, c), dtype));
            }
            _blocks[l].Backward(dResidual3);
            _backing?.EndBackward(l + 1);
            gradientsReadyFrom?.Invoke(Parameters.LayerStart(l + 1));
        }
        _backing?.BeginBackward(0);
        if (_tiledEmbedding is not null)
        {
            _tiledEmbedding.Backward(dResidual3);
        }
        else
        {
            _embedding!.Backward(dResidual3);
        }
        _backing?.EndBackward(0);
        gradientsReadyFrom?.Invoke(Parameters.LayerStart(0));
    }

    /// <summary>Logits [B, T, V] for ids [B, T] as a new tensor the caller disposes; discards the activations a Backward would need.</summary>
    public Tensor Logits(Tensor ids)
    {
        ThrowIfStaged();
        CheckIds(ids, nameof(ids));
        if (_head is null)
        {
            throw new InvalidOperationException("Logits needs the whole LM head on the device; with a vocabulary tiled in chunks use Forward for the loss");
        }
        if (_tensorParallel is not null)
        {
            throw new InvalidOperationException("Logits needs the whole LM head; a tensor-parallel rank holds only its vocabulary columns: use Forward for the loss");
        }
        _canBackward = false;
        var xf = RunTrunk(ids);
        Tensor logits;
        try
        {
            logits = Ops.Empty(new Shape(_batch, _time, Config.VocabSize), Options.ComputeDType);
        }
        finally
        {
            _backing?.EndForward(Config.Layers + 1);
        }
        try
        {
            _head.Logits(xf, logits.Reshape(_batch * _time, Config.VocabSize));
        }
        catch
        {
            logits.Dispose();
            throw;
        }
        return logits;
    }

    /// <summary>
    /// Embeddings, blocks and final norm: returns the normalised [N, C] rows the head reads. Under a backing, layer
    /// L+1 (final norm and head) is left begun: the caller ends it after the head.
    /// </summary>
    private Tensor RunTrunk(Tensor ids)
    {
        int b = _batch, t = _time, c = Config.Channels, n = b * t;
        var dtype = Options.ComputeDType;
        var savedIds = _ws.Get("ids", ids.Shape, ids.DType, saved: true);
        Ops.Copy(ids, savedIds);
        var x = Residual(0);
        _backing?.BeginForward(0);
        if (_tiledEmbedding is not null)
        {
            _tiledEmbedding.Forward(savedIds, x);
        }
        else
        {
            _embedding!.Forward(savedIds, x);
        }
        _backing?.EndForward(0);
        for (int l = 0; l < Config.Layers; l++)
        {
            _backing?.BeginForward(l + 1);
            _blocks[l].Forward(Residual(l), Residual(l + 1));
            _backing?.EndForward(l + 1);
        }
        var xf = _ws.Get("final.out", new Shape(n, c), dtype, saved: true);
        _backing?.BeginForward(Config.Layers + 1);
        _finalNorm!.Forward(Residual(Config.Layers).Reshape(n, c), xf);
        return xf;
    }

    /// <summary>The residual stream before block l (l = L: after the last block), [B, T, C].</summary>
    private Tensor Residual(int l) =>
        _ws.Get("residual." + l, new Shape(_batch, _time, Config.Channels), Options.ComputeDType, saved: true);

    private void CheckIds(Tensor ids, string name)
    {
        ArgumentNullException.ThrowIfNull(ids, name);
        if (ids.Rank != 2 || !ids.DType.IsIndex() || ids.Shape[0] < 1 || ids.Shape[1] < 1 || ids.Shape[1] > Config.ContextLength)
        {
            throw new ArgumentException($"ids must be I32/I64 [B, T] with 1 ≤ T ≤ {Config.ContextLength}, not {ids.DType} {ids.Shape}", name);
        }
        if (_sequenceParallel is { } sp)
        {
            int time = ids.Shape[1] * sp.Size;
            if (time > Config.ContextLength || SequenceParallelOptions.Problem(Config, sp.Size, sp.Mode, time) is not null)
            {
                throw new ArgumentException(
                    $"ids [B, {ids.Shape[1]}] are this rank's tokens of sequences of {time} over sp {sp.Size}: {SequenceParallelOptions.Problem(Config, sp.Size, sp.Mode, time) ?? $"longer than the context {Config.ContextLength}"}", name);
            }
        }
        _batch = ids.Shape[0];
        _time = ids.Shape[1];
    }

    /// <summary>Frees the parameters, gradients, activations and tables.</summary>
    public void Dispose()
    {
        foreach (var module in _tensorParallelModules)
        {
            module.Dispose();
        }
        _sequenceParallel?.Dispose();
        DisposeStageSlots();
        _ws.Dispose();
        _rotary?.Dispose();
        Parameters.Dispose();
    }
}
