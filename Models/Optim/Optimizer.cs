using Hal.Models.Nn;
using Hal.Models.Training;

namespace Hal.Models.Optim;

// Shapes: every slab is flat [N], N = ParameterStore.Count, in the store's order; a parameter or a run of
// parameters is a view [n] at its offset. The working dtype W is F32 (F64 for an F64 store).
//   store.Params, store.Grads [N] compute dtype (F32, F64, BF16 or F16)
//   master [N] W and grads [N] W: only for a 16-bit store (the update happens in W, then Params = cast(master))
//   first [N] W: exp_avg (AdamW, LAMB) or momentum_buffer (SGD, LARS); second [N] W: exp_avg_sq (AdamW, LAMB)
// With a ZeRO shard every optimizer slab is [n] instead, n = the shard's elements, covering store elements
// [Start, Start + n); the store's slabs stay [N] and only their owned view is read and written.

/// <summary>
/// The parameter update of one training step over a <see cref="ParameterStore"/>: unscale, finite check, global-norm
/// clipping, the AdamW/LAMB/LARS/SGD update, fp32 master weights for a 16-bit store, dynamic loss scaling for fp16.
/// Owns its state slabs; <see cref="StateTensors"/> names views of them for checkpoints.
/// </summary>
public sealed class Optimizer : IDisposable
{
    /// <summary>Elements squared and summed per reduction call: bounds the scratch memory of the norm to 16 MiB.</summary>
    internal const int DefaultNormChunkElements = 1 << 22;

    /// <summary>Dynamic scaling never halves below 1: a scale under 1 would not help a gradient that is NaN anyway.</summary>
    private const double MinimumLossScale = 1;

    private const string LossScaleKey = "loss_scale";
    private const string CleanStepsKey = "clean_steps";

    private readonly Ops _ops;
    private readonly ParameterStore _store;
    private readonly DType _workDType;
    private readonly Tensor? _master;
    private readonly Tensor? _workGradsSlab;
    private readonly Tensor _first;
    private readonly Tensor? _second;
    private readonly Tensor _squares;
    private readonly Tensor _partialSums;
    private readonly bool _dynamicScaling;
    private readonly ZeroShard? _shard;
    private readonly Func<double, double>? _sumAcrossRanks;
    private readonly long _start;
    private readonly long _length;
    private readonly List<(string Name, Tensor Tensor)> _stateTensors = [];
    private readonly List<Slot> _perParameter = [];
    private readonly List<Slot> _decayRuns = [];
    private readonly IReadOnlyList<double>? _normWeights;
    private readonly List<(Tensor Grad, double Weight)> _normRuns = [];
    private double _lossScale;
    private long _cleanSteps;
    private bool _disposed;

    /// <summary>
    /// Creates the optimizer and its state (moments and momentum buffers zero; for a 16-bit store the fp32 master
    /// copy is cast from the current <see cref="ParameterStore.Params"/>: call <see cref="SyncMasterFromParams"/>
    /// after overwriting them).
    /// </summary>
    /// <param name="ops">The device's ops (the store's device).</param>
    /// <param name="store">An allocated store whose dtype matches <see cref="OptimizerOptions.Precision"/>.</param>
    /// <param name="options">Algorithm and hyper-parameters.</param>
    /// <exception cref="ArgumentException">the store's dtype does not match the precision, or it is not allocated.</exception>
    /// <exception cref="ArgumentOutOfRangeException">a hyper-parameter out of range.</exception>
    public Optimizer(Ops ops, ParameterStore store, OptimizerOptions options)
        : this(ops, store, options, null, null, DefaultNormChunkElements)
    {
    }

    /// <summary>
    /// ZeRO stage 1: as the plain constructor, but with a <paramref name="shard"/> the state (moments, momentum, the
    /// fp32 master and gradient copies of a 16-bit store) covers only the shard's parameters, <see cref="Step"/>
    /// updates only those (the caller then broadcasts each shard from its owner), and the global gradient norm is
    /// <paramref name="sumAcrossRanks"/> of the owned sum of squares, so clipping and the Inf/NaN skip are the same
    /// on every rank. Without a shard this is the plain constructor (<paramref name="sumAcrossRanks"/> then still
    /// combines the sum of squares when given).
    /// </summary>
    /// <param name="ops">The device's ops (the store's device).</param>
    /// <param name="store">An allocated store whose dtype matches <see cref="OptimizerOptions.Precision"/>.</param>
    /// <param name="options">Algorithm and hyper-parameters.</param>
    /// <param name="shard">This rank's part of a <see cref="ZeroPartition"/> of <paramref name="store"/>; null: everything.</param>
    /// <param name="sumAcrossRanks">Sums a value over all ranks (an all-reduce); null: this rank's value is the total.</param>
    /// <exception cref="ArgumentException">as the plain constructor, or a shard outside the store.</exception>
    /// <exception cref="ArgumentOutOfRangeException">a hyper-parameter out of range.</exception>
    public Optimizer(Ops ops, ParameterStore store, OptimizerOptions options, ZeroShard? shard, Func<double, double>? sumAcrossRanks)
        : this(ops, store, options, shard, sumAcrossRanks, DefaultNormChunkElements)
    {
    }

    /// <summary>
    /// As the sharded constructor, with a weight per parameter (indexed like <see cref="ParameterStore.Infos"/>) on its
    /// squares in the sum of squares handed to <paramref name="sumAcrossRanks"/>: under tensor parallelism a parameter
    /// split over the ranks has weight 1 (the shards' sums add up to the full tensor's) and a parameter replicated on
    /// p ranks has weight 1/p, so the all-reduced sum is that of the full gradient, counted once.
    /// </summary>
    /// <exception cref="ArgumentException">as the sharded constructor, or not one weight per parameter.</exception>
    public Optimizer(Ops ops, ParameterStore store, OptimizerOptions options, ZeroShard? shard, Func<double, double>? sumAcrossRanks, IReadOnlyList<double> normWeights)
        : this(ops, store, options, shard, sumAcrossRanks, DefaultNormChunkElements, normWeights)
    {
    }

    /// <summary>As the public constructor, with the number of elements the norm squares and sums per reduction call.</summary>
    internal Optimizer(Ops ops, ParameterStore store, OptimizerOptions options, int normChunkElements)
        : this(ops, store, options, null, null, normChunkElements)
    {
    }

    /// <summary>As the sharded constructor, with the number of elements the norm squares and sums per reduction call.</summary>
    internal Optimizer(Ops ops, ParameterStore store, OptimizerOptions options, ZeroShard? shard, Func<double, double>? sumAcrossRanks, int normChunkElements,
        IReadOnlyList<double>? normWeights = null)
    {
        ArgumentNullException.ThrowIfNull(ops);
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(options);
        if (!store.IsAllocated)
        {
            throw new ArgumentException("the parameter store must be allocated before the optimizer is created", nameof(store));
        }
        Validate(options);
        ArgumentOutOfRangeException.ThrowIfLessThan(normChunkElements, 1);
        var storeDType = store.DType;
        bool dtypeMatches = options.Precision switch
        {
            Precision.Fp32 => storeDType is DType.F32 or DType.F64,
            Precision.Bf16 => storeDType == DType.BF16,
            Precision.Fp16 => storeDType == DType.F16,
            _ => false,
        };
        if (!dtypeMatches)
        {
            throw new ArgumentException($"precision {options.Precision} does not match a parameter store of {storeDType.Name()}", nameof(store));
        }
        _ops = ops;
        _store = store;
        Options = options;
        _workDType = storeDType == DType.F64 ? DType.F64 : DType.F32;
        _dynamicScaling = options.Precision == Precision.Fp16 && options.DynamicLossScaling;
        _lossScale = _dynamicScaling ? options.InitialLossScale : 1;
        if (shard is not null)
        {
            bool inside = shard.FirstParameter >= 0 && shard.EndParameter >= shard.FirstParameter && shard.EndParameter <= store.Infos.Count
                && shard.Start == (shard.FirstParameter < store.Infos.Count ? store.Infos[shard.FirstParameter].Offset : store.Count)
                && shard.End == (shard.EndParameter < store.Infos.Count ? store.Infos[shard.EndParameter].Offset : store.Count);
            if (!inside)
            {
                throw new ArgumentException($"shard {shard} does not match the store's parameters", nameof(shard));
            }
        }
        if (normWeights is not null && normWeights.Count != store.Infos.Count)
        {
            throw new ArgumentException($"{normWeights.Count} norm weights for {store.Infos.Count} parameters; give one per parameter", nameof(normWeights));
        }
        _shard = shard;
        _sumAcrossRanks = sumAcrossRanks;
        _normWeights = normWeights;
        _start = shard?.Start ?? 0;
        _length = shard?.ElementCount ?? store.Count;

        // An empty shard still gets one-element slabs so that every field is a real tensor; Step never touches them.
        var slab = new Shape(checked((int)Math.Max(1, _length)));
        var owned = new List<Tensor>();
        try
        {
            if (storeDType != _workDType)
            {
                _master = Own(owned, ops.Empty(slab, _workDType));
                _workGradsSlab = Own(owned, ops.Empty(slab, _workDType));
                if (_length > 0)
                {
                    ops.Cast(OwnedView(store.Params), _master);
                }
            }
            _first = Own(owned, ops.Zeros(slab, _workDType));
            if (options.Kind is OptimizerKind.AdamW or OptimizerKind.Lamb)
            {
                _second = Own(owned, ops.Zeros(slab, _workDType));
            }
            int chunk = (int)Math.Max(1, Math.Min(_length, normChunkElements));
            _squares = Own(owned, ops.Empty(new Shape(chunk), _workDType));
            int chunks = checked((int)Math.Max(1, (_length + chunk - 1) / chunk));
            _partialSums = Own(owned, ops.Empty(new Shape(1, chunks), _workDType));
        }
        catch
        {
            foreach (var t in owned)
            {
                t.Dispose();
            }
            throw;
        }
        BuildViews();
    }

    /// <summary>
    /// Device bytes an optimizer over <paramref name="parameterCount"/> parameters of <paramref name="storeDType"/>
    /// holds for its life: moments or momentum buffers, the master and gradient copies of a 16-bit store, and the
    /// norm's scratch (each step also allocates a few one-element tensors for a moment). For memory planning.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">a parameter count below 1.</exception>
    public static long StateBytes(OptimizerOptions options, long parameterCount, DType storeDType)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentOutOfRangeException.ThrowIfLessThan(parameterCount, 1L);
        var work = storeDType == DType.F64 ? DType.F64 : DType.F32;
        long slabs = options.Kind is OptimizerKind.AdamW or OptimizerKind.Lamb ? 2 : 1;
        if (storeDType != work)
        {
            slabs += 2;
        }
        long chunk = Math.Min(parameterCount, DefaultNormChunkElements);
        long chunks = (parameterCount + chunk - 1) / chunk;
        return ((slabs * parameterCount) + chunk + chunks) * work.SizeInBytes();
    }

    /// <summary>This rank's ZeRO shard; null when the optimizer covers every parameter.</summary>
    public ZeroShard? Shard => _shard;

    /// <summary>Device bytes of the state slabs this optimizer holds (moments, momentum, master and gradient copies, norm scratch).</summary>
    public long StateBytesHeld
    {
        get
        {
            ThrowIfDisposed();
            Tensor?[] slabs = [_master, _workGradsSlab, _first, _second, _squares, _partialSums];
            return slabs.Sum(t => t is null ? 0L : t.ElementCount * t.DType.SizeInBytes());
        }
    }

    /// <summary>
    /// The owned state slabs by state-name suffix, in <see cref="StateTensors"/>' per-parameter order: "exp_avg",
    /// "exp_avg_sq" (AdamW, LAMB) or "momentum_buffer" (SGD, LARS), then "master" for a 16-bit store. Each covers the
    /// store elements [Shard.Start, Shard.End) (all of them without a shard); an empty shard gives empty views.
    /// </summary>
    public IReadOnlyList<(string Suffix, Tensor Slab)> StateSlabs
    {
        get
        {
            ThrowIfDisposed();
            var shape = new Shape(checked((int)_length));
            var slabs = new List<(string, Tensor)>();
            if (_second is not null)
            {
                slabs.Add(("exp_avg", _first.View(0, shape)));
                slabs.Add(("exp_avg_sq", _second.View(0, shape)));
            }
            else
            {
                slabs.Add(("momentum_buffer", _first.View(0, shape)));
            }
            if (_master is not null)
            {
                slabs.Add(("master", _master.View(0, shape)));
            }
            return slabs;
        }
    }

    /// <summary>The options this optimizer was created with.</summary>
    public OptimizerOptions Options { get; }

    /// <summary>The factor the trainer multiplies the loss gradient by (Backward(lossScale)); 1 unless fp16 dynamic scaling.</summary>
    public double LossScale => _lossScale;

    /// <summary>Consecutive clean steps since the last overflow or growth (dynamic loss scaling's counter).</summary>
    public long CleanSteps => _cleanSteps;

    /// <summary>
    /// Named state tensors for checkpoints, in a fixed order: per parameter in declaration order, for AdamW/LAMB
    /// "{param}.exp_avg", "{param}.exp_avg_sq"; for SGD/LARS "{param}.momentum_buffer"; for a 16-bit store also
    /// "{param}.master" (fp32). Views into the optimizer's slabs (writing them sets the state), shaped like the parameter.
    /// </summary>
    public IReadOnlyList<(string Name, Tensor Tensor)> StateTensors => _stateTensors;

    /// <summary>Scalars to save and restore: "loss_scale" and "clean_steps".</summary>
    public IReadOnlyDictionary<string, double> ScalarState => new Dictionary<string, double>(StringComparer.Ordinal)
    {
        [LossScaleKey] = _lossScale,
        [CleanStepsKey] = _cleanSteps,
    };

    /// <summary>Restores <see cref="ScalarState"/>; missing keys keep their current values.</summary>
    /// <exception cref="ArgumentOutOfRangeException">a loss scale that is not finite and positive, or a negative counter.</exception>
    public void LoadScalarState(IReadOnlyDictionary<string, double> state)
    {
        ArgumentNullException.ThrowIfNull(state);
        if (state.TryGetValue(LossScaleKey, out double scale))
        {
            if (!double.IsFinite(scale) || scale <= 0)
            {
                throw new ArgumentOutOfRangeException(nameof(state), scale, "the loss scale must be finite and positive");
            }
            // Without dynamic scaling the scale is always 1, whatever the checkpoint was written with.
            _lossScale = _dynamicScaling ? scale : 1;
        }
        if (state.TryGetValue(CleanStepsKey, out double clean))
        {
            if (!(clean >= 0))
            {
                throw new ArgumentOutOfRangeException(nameof(state), clean, "the clean-step counter must be ≥ 0");
            }
            _cleanSteps = (long)clean;
        }
    }

    /// <summary>After the store's Params were overwritten (a checkpoint, --init): refreshes the fp32 master copy (no-op for an fp32 store).</summary>
    public void SyncMasterFromParams()
    {
        ThrowIfDisposed();
        if (_master is not null && _length > 0)
        {
            _ops.Cast(OwnedView(_store.Params), MasterOwned);
        }
    }

    /// <summary>
    /// After the fp32 master copies were overwritten (a checkpoint holds them): round them into store.Params.
    /// Nothing to do for an fp32 store, whose parameters are the masters. With a shard only the owned parameters change.
    /// </summary>
    public void SyncParamsFromMaster()
    {
        ThrowIfDisposed();
        if (_master is not null && _length > 0)
        {
            _ops.Cast(MasterOwned, OwnedView(_store.Params));
        }
    }

    /// <summary>
    /// One update from store.Grads as they are (already averaged over micro-batches and ranks, multiplied by
    /// <see cref="LossScale"/>): unscale into the working dtype, check every gradient is finite (if not: skip the
    /// update, halve the scale under dynamic scaling), global L2 norm (returned, before clipping), clip to
    /// <see cref="OptimizerOptions.Clip"/> (PyTorch's clip_grad_norm_: factor min(1, clip/(norm + 1e-6))), update
    /// (fp32 master weights for a 16-bit store, then cast back into store.Params), and double the scale after
    /// <see cref="OptimizerOptions.LossScaleGrowthInterval"/> clean steps. store.Grads hold unspecified values after
    /// an update that was not skipped (the caller zeroes them before the next backward).
    /// </summary>
    /// <param name="learningRate">This step's rate (from the schedule), finite and ≥ 0.</param>
    /// <param name="step">Counts from 1 (Adam bias correction).</param>
    /// <exception cref="ArgumentOutOfRangeException">step &lt; 1 or a learning rate that is not finite and ≥ 0.</exception>
    public StepOutcome Step(double learningRate, long step)
    {
        ThrowIfDisposed();
        ArgumentOutOfRangeException.ThrowIfLessThan(step, 1L);
        if (!double.IsFinite(learningRate) || learningRate < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(learningRate), learningRate, "the learning rate must be finite and ≥ 0");
        }
        var grads = WorkGrads;
        if (_workGradsSlab is not null && _length > 0)
        {
            _ops.Cast(OwnedView(_store.Grads), grads);
        }

        // A NaN or ±Inf anywhere makes the sum of squares non-finite: the finite check costs no extra pass. Summed over
        // ranks when sharded, so every rank clips by the same factor and skips the same steps.
        double sumOfSquares = _length > 0 ? WeightedSumOfSquares(grads) : 0;
        if (_sumAcrossRanks is not null)
        {
            sumOfSquares = _sumAcrossRanks(sumOfSquares);
        }
        if (!double.IsFinite(sumOfSquares))
        {
            if (_dynamicScaling)
            {
                _lossScale = Math.Max(MinimumLossScale, _lossScale / 2);
            }
            _cleanSteps = 0;
            return new StepOutcome(Math.Sqrt(sumOfSquares), true, _lossScale);
        }

        double gradNorm = Math.Sqrt(sumOfSquares) / _lossScale;
        double factor = 1 / _lossScale;
        if (Options.Clip > 0)
        {
            factor *= Math.Min(1.0, Options.Clip / (gradNorm + 1e-6));
        }
        if (_length > 0)
        {
            if (factor != 1)
            {
                using var f = Scalar(factor);
                _ops.Binary(BinaryOp.Mul, grads, f, grads);
            }

            switch (Options.Kind)
            {
                case OptimizerKind.AdamW: AdamWUpdate(learningRate, step); break;
                case OptimizerKind.Lamb: LambUpdate(learningRate, step); break;
                case OptimizerKind.Lars: LarsUpdate(learningRate); break;
                case OptimizerKind.Sgd: SgdUpdate(learningRate); break;
                default: throw new InvalidOperationException($"unknown optimizer {Options.Kind}");
            }
            if (_master is not null)
            {
                _ops.Cast(MasterOwned, OwnedView(_store.Params));
            }
        }

        _cleanSteps++;
        if (_dynamicScaling && _cleanSteps >= Options.LossScaleGrowthInterval)
        {
            _lossScale *= 2;
            _cleanSteps = 0;
        }
        return new StepOutcome(gradNorm, false, _lossScale);
    }

    /// <summary>Frees the optimizer's slabs (the store is not touched).</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }
        _disposed = true;
        _master?.Dispose();
        _workGradsSlab?.Dispose();
        _first.Dispose();
        _second?.Dispose();
        _squares.Dispose();
        _partialSums.Dispose();
        _stateTensors.Clear();
        _perParameter.Clear();
        _decayRuns.Clear();
    }

    /// <summary>The parameters the update writes: the master slab, or the owned view of store.Params.</summary>
    private Tensor WorkParams => _master is not null ? MasterOwned : OwnedView(_store.Params);

    /// <summary>The gradients the update reads: the working copy, or the owned view of store.Grads.</summary>
    private Tensor WorkGrads => _workGradsSlab is not null ? _workGradsSlab.View(0, OwnedShape) : OwnedView(_store.Grads);

    private Tensor MasterOwned => _master!.View(0, OwnedShape);

    private Shape OwnedShape => new(checked((int)_length));

    /// <summary>The owned elements [start, start + length) of one of the store's [N] slabs.</summary>
    private Tensor OwnedView(Tensor storeSlab) => storeSlab.View(_start, OwnedShape);

    /// <summary>AdamW, fused, once per run of neighbouring parameters that share the decay setting.</summary>
    private void AdamWUpdate(double learningRate, long step)
    {
        foreach (var run in _decayRuns)
        {
            _ops.AdamW(run.Param, run.Grad, run.First, run.Second!, AdamConfig(learningRate, run.Decay), step);
        }
    }

    /// <summary>LAMB: the trust ratio is per parameter tensor, so one call per parameter.</summary>
    private void LambUpdate(double learningRate, long step)
    {
        foreach (var p in _perParameter)
        {
            _ops.Lamb(p.Param, p.Grad, p.First, p.Second!, AdamConfig(learningRate, p.Decay), step);
        }
    }

    /// <summary>LARS: the local rate is per parameter tensor, so one call per parameter.</summary>
    private void LarsUpdate(double learningRate)
    {
        foreach (var p in _perParameter)
        {
            var config = new LarsConfig(learningRate, Options.Momentum, p.Decay ? Options.WeightDecay : 0, Options.TrustCoefficient, Options.Eps);
            _ops.Lars(p.Param, p.Grad, p.First, config);
        }
    }

    /// <summary>
    /// PyTorch's SGD with momentum (dampening 0, not Nesterov): d = g + wd·p; buf = μ·buf + d; p −= lr·buf. Whole-slab
    /// ops, with the decay term added per run of decayed parameters; the gradient slab serves as the scratch.
    /// </summary>
    private void SgdUpdate(double learningRate)
    {
        var p = WorkParams;
        var g = WorkGrads;
        using var momentum = Scalar(Options.Momentum);
        var first = _first.View(0, OwnedShape);
        _ops.Binary(BinaryOp.Mul, first, momentum, first);
        _ops.Binary(BinaryOp.Add, first, g, first);
        if (Options.WeightDecay != 0)
        {
            using var decay = Scalar(Options.WeightDecay);
            foreach (var run in _decayRuns)
            {
                if (run.Decay)
                {
                    _ops.Binary(BinaryOp.Mul, run.Param, decay, run.Grad);
                    _ops.Binary(BinaryOp.Add, run.First, run.Grad, run.First);
                }
            }
        }
        using var rate = Scalar(learningRate);
        _ops.Binary(BinaryOp.Mul, first, rate, g);
        _ops.Binary(BinaryOp.Sub, p, g, p);
    }

    private AdamWConfig AdamConfig(double learningRate, bool decay) =>
        new(learningRate, Options.Beta1, Options.Beta2, Options.Eps, decay ? Options.WeightDecay : 0);

    /// <summary>Σ g² over the owned gradients, or Σ over runs of parameters of weight·Σ g² when weights were given.</summary>
    private double WeightedSumOfSquares(Tensor grads)
    {
        if (_normWeights is null)
        {
            return SumOfSquares(grads);
        }
        double sum = 0;
        foreach (var (grad, weight) in _normRuns)
        {
            sum += weight * SumOfSquares(grad);
        }
        return sum;
    }

    /// <summary>Σ g² over a view of at most the owned length: square a chunk into scratch, reduce it into one partial sum, then sum the partials.</summary>
    private double SumOfSquares(Tensor grads)
    {
        long count = grads.ElementCount;
        int chunk = (int)_squares.ElementCount;
        int chunks = checked((int)((count + chunk - 1) / chunk));
        for (int i = 0; i < chunks; i++)
        {
            long start = (long)i * chunk;
            int length = (int)Math.Min(chunk, count - start);
            var g = grads.View(start, new Shape(length));
            var squares = _squares.View(0, new Shape(length));
            _ops.Unary(UnaryOp.Square, g, squares);
            _ops.Reduce(ReduceOp.Sum, squares.Reshape(1, length), 1, _partialSums.View(i, new Shape(1, 1)));
        }
        if (chunks == 1)
        {
            return _ops.ToDoubleArray(_partialSums)[0];
        }
        using var total = _ops.Empty(new Shape(1, 1), _workDType);
        _ops.Reduce(ReduceOp.Sum, _partialSums.View(0, new Shape(1, chunks)), 1, total);
        return _ops.ToDoubleArray(total)[0];
    }

    private Tensor Scalar(double value) => _ops.FromArray([value], new Shape(1), _workDType);

    private void BuildViews()
    {
        // Offsets below are relative to the owned range: the store offset minus _start.
        var infos = _store.Infos.Skip(_shard?.FirstParameter ?? 0).Take(_shard?.ParameterCount ?? _store.Infos.Count)
            .Select(i => i with { Offset = i.Offset - _start }).ToList();
        if (infos.Count == 0)
        {
            return;
        }
        var p = WorkParams;
        var g = WorkGrads;
        Slot Make(long offset, Shape shape, bool decay) => new(
            p.View(offset, shape), g.View(offset, shape), _first.View(offset, shape), _second?.View(offset, shape), decay);

        foreach (var info in infos)
        {
            _perParameter.Add(Make(info.Offset, info.Shape, info.Decay));
            if (_second is not null)
            {
                _stateTensors.Add(($"{info.Name}.exp_avg", _first.View(info.Offset, info.Shape)));
                _stateTensors.Add(($"{info.Name}.exp_avg_sq", _second.View(info.Offset, info.Shape)));
            }
            else
            {
                _stateTensors.Add(($"{info.Name}.momentum_buffer", _first.View(info.Offset, info.Shape)));
            }
            if (_master is not null)
            {
                _stateTensors.Add(($"{info.Name}.master", _master.View(info.Offset, info.Shape)));
            }
        }

        // Parameters are contiguous in declaration order, so neighbours with the same Decay form one flat run.
        int begin = 0;
        if (_normWeights is not null)
        {
            int first = _shard?.FirstParameter ?? 0;
            for (int i = 1; i <= infos.Count; i++)
            {
                if (i == infos.Count || _normWeights[first + i] != _normWeights[first + begin])
                {
                    long offset = infos[begin].Offset;
                    long end = i == infos.Count ? _length : infos[i].Offset;
                    _normRuns.Add((g.View(offset, new Shape(checked((int)(end - offset)))), _normWeights[first + begin]));
                    begin = i;
                }
            }
            begin = 0;
        }
        for (int i = 1; i <= infos.Count; i++)
        {
            if (i == infos.Count || infos[i].Decay != infos[begin].Decay)
            {
                long offset = infos[begin].Offset;
                long end = i == infos.Count ? _length : infos[i].Offset;
                _decayRuns.Add(Make(offset, new Shape(checked((int)(end - offset))), infos[begin].Decay));
                begin = i;
            }
        }
    }

    private static Tensor Own(List<Tensor> owned, Tensor t)
    {
        owned.Add(t);
        return t;
    }

    private static void Validate(OptimizerOptions o)
    {
        static void Range(bool ok, string name, double value, string rule)
        {
            if (!ok)
            {
                throw new ArgumentOutOfRangeException(name, value, $"{name} must be {rule}");
            }
        }
        Range(Enum.IsDefined(o.Kind), nameof(o.Kind), (double)o.Kind, "a known optimizer");
        Range(o.WeightDecay >= 0 && double.IsFinite(o.WeightDecay), nameof(o.WeightDecay), o.WeightDecay, "finite and ≥ 0");
        Range(o.Beta1 >= 0 && o.Beta1 < 1, nameof(o.Beta1), o.Beta1, "in [0, 1)");
        Range(o.Beta2 >= 0 && o.Beta2 < 1, nameof(o.Beta2), o.Beta2, "in [0, 1)");
        Range(o.Eps >= 0 && double.IsFinite(o.Eps), nameof(o.Eps), o.Eps, "finite and ≥ 0");
        Range(o.Momentum >= 0 && double.IsFinite(o.Momentum), nameof(o.Momentum), o.Momentum, "finite and ≥ 0");
        Range(o.TrustCoefficient >= 0 && double.IsFinite(o.TrustCoefficient), nameof(o.TrustCoefficient), o.TrustCoefficient, "finite and ≥ 0");
        Range(o.Clip >= 0 && double.IsFinite(o.Clip), nameof(o.Clip), o.Clip, "finite and ≥ 0 (0: off)");
        Range(o.InitialLossScale > 0 && double.IsFinite(o.InitialLossScale), nameof(o.InitialLossScale), o.InitialLossScale, "finite and > 0");
        Range(o.LossScaleGrowthInterval >= 1, nameof(o.LossScaleGrowthInterval), o.LossScaleGrowthInterval, "≥ 1");
    }

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(_disposed, this);

    /// <summary>Views of one parameter (or one run of parameters) in each working slab.</summary>
    private sealed record Slot(Tensor Param, Tensor Grad, Tensor First, Tensor? Second, bool Decay);
}
