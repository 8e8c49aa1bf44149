namespace Hal.Models.Training;

// Legend: N tokens in a batch, V vocabulary, C embedding channels, F hidden features (4C).

/// <summary>
/// A next-token model small enough to train anywhere: embedding → linear+GELU → linear → softmax cross-entropy.
/// Forward and backward are explicit (no tape); parameters, gradients and AdamW states each live in one contiguous
/// slab that named tensors view, so one optimizer call updates everything.
/// </summary>
public sealed class MlpLanguageModel : IDisposable
{
    private readonly Ops _ops;
    private readonly Tensor _params;
    private readonly Tensor _grads;
    private readonly Tensor _adamM;
    private readonly Tensor _adamV;

    // Saved for backward by Forward.
    private Tensor? _ids;
    private Tensor? _targets;
    private Tensor? _x;
    private Tensor? _hPre;
    private Tensor? _h;
    private Tensor? _logits;
    private Tensor? _lse;
    private Tensor? _losses;

    public MlpLanguageModel(Ops ops, int vocabSize, int channels, ulong seed)
    {
        _ops = ops;
        V = vocabSize;
        C = channels;
        F = 4 * channels;
        long count = ((long)V * C) + ((long)C * F) + F + ((long)F * V) + V;
        _params = ops.Empty(new Shape(checked((int)count)));
        _grads = ops.Zeros(_params.Shape);
        _adamM = ops.Zeros(_params.Shape);
        _adamV = ops.Zeros(_params.Shape);
        long at = 0;
        Tensor Take(Tensor slab, params int[] dims)
        {
            var shape = new Shape(dims);
            var t = slab.View(at, shape);
            at += shape.ElementCount;
            return t;
        }
        (Wte, W1, B1, W2, B2) = (Take(_params, V, C), Take(_params, C, F), Take(_params, F), Take(_params, F, V), Take(_params, V));
        at = 0;
        (DWte, DW1, DB1, DW2, DB2) = (Take(_grads, V, C), Take(_grads, C, F), Take(_grads, F), Take(_grads, F, V), Take(_grads, V));
        ParameterCount = count;

        // GPT-2-style initialisation from the Philox stream: weights N(0, 0.02), biases 0; each tensor its own offset range.
        ops.RandomNormal(Wte, seed, 0, 0, 0.02);
        ops.RandomNormal(W1, seed, (ulong)Wte.ElementCount, 0, 0.02);
        ops.RandomNormal(W2, seed, (ulong)(Wte.ElementCount + W1.ElementCount), 0, 0.02);
        ops.Fill(B1, 0);
        ops.Fill(B2, 0);
    }

    public int V { get; }

    public int C { get; }

    public int F { get; }

    public long ParameterCount { get; }

    public Tensor Wte { get; }      // [V, C]

    public Tensor W1 { get; }       // [C, F]

    public Tensor B1 { get; }       // [F]

    public Tensor W2 { get; }       // [F, V]

    public Tensor B2 { get; }       // [V]

    public Tensor DWte { get; }

    public Tensor DW1 { get; }

    public Tensor DB1 { get; }

    public Tensor DW2 { get; }

    public Tensor DB2 { get; }

    /// <summary>Mean cross-entropy of predicting <paramref name="targets"/> [N] from <paramref name="ids"/> [N]; saves what backward needs.</summary>
    public double Forward(Tensor ids, Tensor targets)
    {
        ReleaseSaved();
        int n = ids.Shape[0];
        _ids = ids;
        _targets = targets;
        _x = _ops.Empty(new Shape(n, C));
        _ops.Embedding(Wte, ids, _x);
        _hPre = _ops.Empty(new Shape(n, F));
        _ops.Gemm(_x, W1, _hPre, bias: B1);
        _h = _ops.Empty(new Shape(n, F));
        _ops.Unary(UnaryOp.GeluTanh, _hPre, _h);
        _logits = _ops.Empty(new Shape(n, V));
        _ops.Gemm(_h, W2, _logits, bias: B2);
        _losses = _ops.Empty(new Shape(n));
        _lse = _ops.Empty(new Shape(n));
        _ops.CrossEntropy(_logits, targets, _losses, _lse);
        using var mean = _ops.Empty(new Shape(1));
        _ops.Reduce(ReduceOp.Mean, _losses, 0, mean);
        return _ops.ToDoubleArray(mean)[0];
    }

    /// <summary>Gradients of the mean loss of the last <see cref="Forward"/> into the gradient slab (overwritten).</summary>
    public void Backward()
    {
        if (_logits is null || _x is null || _h is null || _hPre is null || _lse is null || _ids is null || _targets is null)
        {
            throw new InvalidOperationException("Backward needs a Forward first");
        }
        int n = _ids.Shape[0];
        using var dLosses = _ops.Full(new Shape(n), 1.0 / n);
        using var dLogits = _ops.Empty(_logits.Shape);
        _ops.CrossEntropyBackward(_logits, _targets, _lse, dLosses, dLogits);
        // logits = h·W2 + b2: dW2 = hᵀ·dLogits, db2 = Σₙ dLogits, dh = dLogits·W2ᵀ.
        _ops.Gemm(_h, dLogits, DW2, transA: true);
        _ops.Reduce(ReduceOp.Sum, dLogits, 0, DB2.Reshape(1, V));
        using var dh = _ops.Empty(_h.Shape);
        _ops.Gemm(dLogits, W2, dh, transB: true);
        using var dhPre = _ops.Empty(_hPre.Shape);
        _ops.ActivationBackward(UnaryOp.GeluTanh, _hPre, dh, dhPre);
        // hPre = x·W1 + b1.
        _ops.Gemm(_x, dhPre, DW1, transA: true);
        _ops.Reduce(ReduceOp.Sum, dhPre, 0, DB1.Reshape(1, F));
        using var dx = _ops.Empty(_x.Shape);
        _ops.Gemm(dhPre, W1, dx, transB: true);
        _ops.EmbeddingBackward(dx, _ids, DWte);
    }

    /// <summary>One AdamW step over the whole parameter slab.</summary>
    public void Step(AdamWConfig config, long step) => _ops.AdamW(_params, _grads, _adamM, _adamV, config, step);

    private void ReleaseSaved()
    {
        foreach (var t in new[] { _x, _hPre, _h, _logits, _lse, _losses })
        {
            t?.Dispose();
        }
        (_x, _hPre, _h, _logits, _lse, _losses) = (null, null, null, null, null, null);
    }

    public void Dispose()
    {
        ReleaseSaved();
        _params.Dispose();
        _grads.Dispose();
        _adamM.Dispose();
        _adamV.Dispose();
    }
}
