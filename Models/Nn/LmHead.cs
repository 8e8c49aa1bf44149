using Hal.Parallel.TensorParallel;

namespace Hal.Models.Nn;

/// <summary>
/// The language-model head with fused softmax cross-entropy: logits [N, V] = x·Wᵀ with W [V, C] (GPT-2 ties W to
/// wte; LLaMA has lm_head.weight unless tied), then per-row losses and lse [N] (F32). Saved: x (by reference), the
/// logits and lse. Backward of the mean loss scaled by lossScale adds dW into the store and writes dx.
/// With vocabulary parallelism W is this rank's rows [Vl, C], the logits are its columns [N, Vl] and never gathered:
/// a vocabulary-parallel cross-entropy reduces the row statistics over the ranks, and dx (a partial sum over the
/// vocabulary) is completed by one all-reduce in backward.
/// Legend: N = B·T rows, C channels, V vocabulary, Vl = ⌈V/p⌉ rows of a rank over p tensor-parallel ranks.
/// </summary>
public sealed class LmHead
{
    private readonly Workspace _ws;
    private readonly Linear _projection;
    private readonly VocabParallelCrossEntropy? _vocabLoss;
    private readonly TensorParallelContext? _tensorParallel;
    private Tensor? _x, _targets, _logits, _lse;

    /// <summary>A head over the named [V, C] weight.</summary>
    public LmHead(Workspace ws, ParameterStore store, string weightName)
    {
        _ws = ws;
        _projection = new Linear(store, weightName, null, LinearLayout.OutIn);
    }

    /// <summary>A vocabulary-parallel head over this rank's rows [Vl, C] of the named weight.</summary>
    public LmHead(Workspace ws, ParameterStore store, string weightName, VocabParallelCrossEntropy vocabLoss, TensorParallelContext tensorParallel)
        : this(ws, store, weightName)
    {
        ArgumentNullException.ThrowIfNull(vocabLoss);
        ArgumentNullException.ThrowIfNull(tensorParallel);
        _vocabLoss = vocabLoss;
        _tensorParallel = tensorParallel;
    }

    /// <summary>
    /// Vocabulary-parallel head under sequence parallelism: backward leaves dx as this rank's partial sum over its
    /// vocabulary columns for the caller to reduce-scatter to its rows, instead of all-reducing it.
    /// </summary>
    public bool InputGradientPartial { get; init; }

    /// <summary>logits [N, V] = x [N, C]·Wᵀ into <paramref name="logits"/>.</summary>
    public void Logits(Tensor x, Tensor logits) => _projection.Forward(_ws.Ops, x, logits);

    /// <summary>Runs the head and the loss: returns the per-row losses (N elements, a workspace buffer; F32, or F64 at F64). Keeps x and targets by reference.</summary>
    public Tensor Forward(Tensor x, Tensor targets)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(targets);
        int n = x.Shape[0];
        _x = x;
        _targets = targets;
        _logits = _ws.Get("head.logits", new Shape(n, _projection.OutFeatures), x.DType, saved: true);
        if (_vocabLoss is not null)
        {
            _projection.Forward(_ws.Ops, x, _logits);
            return _vocabLoss.Forward(_logits, targets);
        }
        _lse = _ws.Get("head.lse", new Shape(n), DType.F32, saved: true);
        var losses = _ws.Get("head.losses", new Shape(n), DType.F32);
        _projection.Forward(_ws.Ops, x, _logits);
        _ws.Ops.CrossEntropy(_logits, targets, losses, _lse);
        return x.DType == DType.F64 ? ExactLosses(targets) : losses;
    }

    /// <summary>
    /// F64 is the reference dtype, but the fused kernel's losses are F32 by contract; so at F64 the per-row losses are
    /// recomputed as −log_softmax(logits)[target] in F64 (0 for a negative target): N·V extra work on the reference path only.
    /// </summary>
    private Tensor ExactLosses(Tensor targets)
    {
        var ops = _ws.Ops;
        var logits = _logits!;
        int n = logits.Shape[0];
        var idt = targets.DType;
        var column = new Shape(n, 1);
        var t = targets.Reshape(n, 1);
        var logp = _ws.Get("head.logp", logits.Shape, DType.F64);
        ops.LogSoftmax(logits, logp);
        var minusOne = _ws.Constant($"scalar:-1:{idt}", () => ops.Full(new Shape(1), -1, idt));
        var zero = _ws.Constant($"scalar:0:{idt}", () => ops.Full(new Shape(1), 0, idt));
        var one = _ws.Constant($"scalar:1:{idt}", () => ops.Full(new Shape(1), 1, idt));
        // keep = min(max(t, −1) + 1, 1): 1 for a real target, 0 for an ignored one; index = max(t, 0) is always valid.
        var keep = _ws.Get("head.keep", column, idt);
        ops.Binary(BinaryOp.Max, t, minusOne, keep);
        ops.Binary(BinaryOp.Add, keep, one, keep);
        ops.Binary(BinaryOp.Min, keep, one, keep);
        var index = _ws.Get("head.index", column, idt);
        ops.Binary(BinaryOp.Max, t, zero, index);
        var picked = _ws.Get("head.picked", column, DType.F64);
        ops.Gather(logp, 1, index, picked);
        var keepF = _ws.Get("head.keepf", column, DType.F64);
        ops.Cast(keep, keepF);
        ops.Binary(BinaryOp.Mul, picked, keepF, picked);
        ops.Unary(UnaryOp.Neg, picked, picked);
        return picked;
    }

    /// <summary>Backward of lossScale · mean over the N rows: adds dW, writes dx [N, C].</summary>
    public void Backward(double lossScale, Tensor dx)
    {
        var x = _x ?? throw new InvalidOperationException("lm head: backward before forward");
        var ops = _ws.Ops;
        int n = x.Shape[0];
        if (_vocabLoss is not null)
        {
            var dLocal = _ws.Get("d.head.logits", _logits!.Shape, _logits.DType);
            _vocabLoss.Backward(lossScale, dLocal);
            _projection.Backward(_ws, x, dLocal, dx);
            if (!InputGradientPartial)
            {
                _tensorParallel!.AllReduce(dx);
            }
            return;
        }
        var dLosses = _ws.Get("d.head.losses", new Shape(n), DType.F32);
        ops.Fill(dLosses, lossScale / n);
        var dLogits = _ws.Get("d.head.logits", _logits!.Shape, _logits.DType);
        ops.CrossEntropyBackward(_logits, _targets!, _lse!, dLosses, dLogits);
        _projection.Backward(_ws, x, dLogits, dx);
    }
}
