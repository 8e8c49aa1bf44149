namespace Hal.Models.Nn;

/// <summary>
/// A pre-norm residual block: mid = x + attn(norm₁(x)); out = mid + ffn(norm₂(mid)). The residual adds happen in the
/// output projections' GEMMs (beta = 1) after copying the residual into place. Saved: the norm outputs, mid, and what
/// the attention, feed-forward and norms save.
/// Legend: B batch, T time, C channels, N = B·T.
/// </summary>
public sealed class Block
{
    private readonly Workspace _ws;
    private readonly string _norm1Key, _norm2Key, _midKey;
    private readonly TensorParallelContext? _tensorParallel;
    private Tensor? _norm1Out, _norm2Out;

    /// <summary>
    /// A block of the given parts; <paramref name="scope"/> names its saved buffers. With
    /// <paramref name="tensorParallel"/> the attention and feed-forward are Megatron pairs (column-parallel input
    /// projections, row-parallel output projections): their input gradient is a per-rank partial sum, completed by one
    /// all-reduce each in backward before it reaches the replicated norm.
    /// </summary>
    public Block(Workspace ws, INorm norm1, CausalSelfAttention attention, INorm norm2, IFeedForward feedForward, string scope, TensorParallelContext? tensorParallel = null)
    {
        _ws = ws;
        _tensorParallel = tensorParallel;
        Norm1 = norm1;
        Attention = attention;
        Norm2 = norm2;
        FeedForward = feedForward;
        _norm1Key = scope + ".norm1";
        _norm2Key = scope + ".norm2";
        _midKey = scope + ".mid";
    }

    /// <summary>The attention's norm.</summary>
    public INorm Norm1 { get; }

    /// <summary>The attention.</summary>
    public CausalSelfAttention Attention { get; }

    /// <summary>The feed-forward's norm.</summary>
    public INorm Norm2 { get; }

    /// <summary>The feed-forward network.</summary>
    public IFeedForward FeedForward { get; }

    /// <summary>output [B, T, C] = block(x [B, T, C]); x is kept by reference and must stay unchanged until backward.</summary>
    public void Forward(Tensor x, Tensor output)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(output);
        var ops = _ws.Ops;
        int b = x.Shape[0], t = x.Shape[1], c = x.Shape[2], n = b * t;
        var rows = new Shape(n, c);
        _norm1Out = _ws.Get(_norm1Key, rows, x.DType, saved: true);
        _norm2Out = _ws.Get(_norm2Key, rows, x.DType, saved: true);
        var mid = _ws.Get(_midKey, rows, x.DType, saved: true);
        var x2 = x.Reshape(n, c);
        Norm1.Forward(x2, _norm1Out);
        ops.Copy(x2, mid);
        Attention.Forward(_norm1Out.Reshape(b, t, c), mid.Reshape(b, t, c), accumulate: true);
        Norm2.Forward(mid, _norm2Out);
        var out2 = output.Reshape(n, c);
        ops.Copy(mid, out2);
        FeedForward.Forward(_norm2Out, out2, accumulate: true);
    }

    /// <summary>
    /// Backward in place on the residual gradient: <paramref name="dResidual"/> [B, T, C] holds d(output) on entry and
    /// d(x) on return; the parameter gradients are added into the store.
    /// </summary>
    public void Backward(Tensor dResidual)
    {
        ArgumentNullException.ThrowIfNull(dResidual);
        if (_norm1Out is null)
        {
            throw new InvalidOperationException("block: backward before forward");
        }
        int b = dResidual.Shape[0], t = dResidual.Shape[1], c = dResidual.Shape[2], n = b * t;
        var d2 = dResidual.Reshape(n, c);
        var dNormOut = _ws.Get("d.block.norm", new Shape(n, c), dResidual.DType);
        FeedForward.Backward(d2, dNormOut, accumulate: false);
        _tensorParallel?.AllReduce(dNormOut);
        Norm2.Backward(dNormOut, d2, accumulate: true);
        Attention.Backward(dResidual, dNormOut.Reshape(b, t, c), accumulate: false);
        _tensorParallel?.AllReduce(dNormOut);
        Norm1.Backward(dNormOut, d2, accumulate: true);
    }
}
