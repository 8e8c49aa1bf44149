namespace Hal.Models.Nn;

/// <summary>
/// Causal self-attention. One projection makes q | k | v for every token ([N, (H + 2·Hkv)·D], GPT-2's c_attn or
/// LLaMA's q/k/v projections fused); one index-select moves them to head-major [B, H, T, D] / [B, Hkv, T, D];
/// rotary (LLaMA) rotates q and k; the fused attention kernel runs (GQA when Hkv &lt; H); an index-select brings the
/// heads back to [N, H·D] for the output projection. Backward runs the same path in reverse.
/// Saved: the input x (by reference), the head-major q/k/v (rotated q and k with rotary), the attention output and
/// lse, and the merged heads.
/// Legend: B batch, T time, C channels, H query heads, Hkv key/value heads, D head size, N = B·T, G = H + 2·Hkv.
/// </summary>
public sealed class CausalSelfAttention
{
    private readonly Workspace _ws;
    private readonly Linear _qkv;
    private readonly Linear _output;
    private readonly RotaryTables? _rotary;
    private readonly SequenceParallelContext? _sequenceParallel;
    private readonly int _heads, _kvHeads, _headSize;
    private readonly string _headsKey, _qRotKey, _kRotKey, _outKey, _lseKey, _mergedKey;
    private Tensor? _x, _q, _k, _v, _o, _lse, _merged;
    private int _batch, _time;

    /// <summary>
    /// An attention module: <paramref name="qkv"/> maps C to (H + 2·Hkv)·D, <paramref name="output"/> maps H·D to C;
    /// <paramref name="rotary"/> (null for GPT-2) rotates q and k; <paramref name="scope"/> names the saved buffers.
    /// With <paramref name="sequenceParallel"/> the tokens are this rank's part of each sequence: rotary uses their
    /// global positions and the sequence-parallel attention replaces the fused kernel.
    /// </summary>
    /// <exception cref="ArgumentException">the projections do not match the head counts.</exception>
    public CausalSelfAttention(Workspace ws, Linear qkv, Linear output, int heads, int kvHeads, int headSize, RotaryTables? rotary, string scope,
        SequenceParallelContext? sequenceParallel = null)
    {
        _sequenceParallel = sequenceParallel;
        ArgumentNullException.ThrowIfNull(qkv);
        ArgumentNullException.ThrowIfNull(output);
        if (qkv.OutFeatures != (heads + (2 * kvHeads)) * headSize || output.InFeatures != heads * headSize)
        {
            throw new ArgumentException($"attention: projections {qkv.OutFeatures} and {output.InFeatures} do not match H={heads}, Hkv={kvHeads}, D={headSize}");
        }
        _ws = ws;
        _qkv = qkv;
        _output = output;
        _rotary = rotary;
        _heads = heads;
        _kvHeads = kvHeads;
        _headSize = headSize;
        _headsKey = scope + ".heads";
        _qRotKey = scope + ".qrot";
        _kRotKey = scope + ".krot";
        _outKey = scope + ".out";
        _lseKey = scope + ".lse";
        _mergedKey = scope + ".merged";
    }

    /// <summary>The output projection (H·D → C).</summary>
    public Linear OutputProjection => _output;

    private int[] Sections => [_heads, _kvHeads, _kvHeads];

    private double Scale => 1.0 / Math.Sqrt(_headSize);

    /// <summary>y [B, T, C] = attention(x [B, T, C]), or y += it when <paramref name="accumulate"/> (the residual add).</summary>
    public void Forward(Tensor x, Tensor y, bool accumulate)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(y);
        var ops = _ws.Ops;
        var dtype = x.DType;
        int b = x.Shape[0], t = x.Shape[1], c = x.Shape[2], n = b * t, g = _heads + (2 * _kvHeads), d = _headSize;
        _batch = b;
        _time = t;
        _x = x;

        // The token-major projection is only needed until it is permuted: scratch shared by every block.
        var qkv = _ws.Get("attn.qkv", new Shape(n, g * d), dtype);
        _qkv.Forward(ops, x.Reshape(n, c), qkv);
        var heads = _ws.Get(_headsKey, new Shape(g * n, d), dtype, saved: true);
        ops.IndexSelect(qkv.Reshape(n * g, d), 0, _ws.HeadMajorIndex(b, t, Sections, inverse: false), heads);
        var q = heads.View(0, new Shape(b, _heads, t, d));
        var k = heads.View((long)_heads * n * d, new Shape(b, _kvHeads, t, d));
        _v = heads.View((long)(_heads + _kvHeads) * n * d, new Shape(b, _kvHeads, t, d));
        if (_rotary is { } rot)
        {
            // Head-major [B, H, T, D] is the rotary kernel's [B·H, T, 1, D]: positions run along T either way.
            var (cos, sin) = RotaryRows(rot, t);
            _q = _ws.Get(_qRotKey, q.Shape, dtype, saved: true);
            _k = _ws.Get(_kRotKey, k.Shape, dtype, saved: true);
            ops.Rotary(q.Reshape(b * _heads, t, 1, d), cos, sin, 0, _q.Reshape(b * _heads, t, 1, d));
            ops.Rotary(k.Reshape(b * _kvHeads, t, 1, d), cos, sin, 0, _k.Reshape(b * _kvHeads, t, 1, d));
        }
        else
        {
            _q = q;
            _k = k;
        }
        _o = _ws.Get(_outKey, new Shape(b, _heads, t, d), dtype, saved: true);
        _lse = _ws.Get(_lseKey, new Shape(b, _heads, t), DType.F32, saved: true);
        if (_sequenceParallel is { } sp)
        {
            sp.Attention(_q, _k, _v, Scale, _o, _lse);
        }
        else
        {
            ops.Attention(_q, _k, _v, causal: true, Scale, _o, _lse);
        }
        _merged = _ws.Get(_mergedKey, new Shape(n, _heads * d), dtype, saved: true);
        ops.IndexSelect(_o.Reshape(b * _heads * t, d), 0, _ws.HeadMajorIndex(b, t, [_heads], inverse: true), _merged.Reshape(n * _heads, d));
        _output.Forward(ops, _merged, y.Reshape(n, y.Shape[-1]), accumulate ? 1 : 0);
    }

    /// <summary>Adds the parameter gradients from dy [B, T, C]; writes dx [B, T, C] (adds into it when <paramref name="accumulate"/>).</summary>
    public void Backward(Tensor dy, Tensor dx, bool accumulate)
    {
        ArgumentNullException.ThrowIfNull(dy);
        ArgumentNullException.ThrowIfNull(dx);
        var x = _x ?? throw new InvalidOperationException("attention: backward before forward");
        var ops = _ws.Ops;
        var dtype = dy.DType;
        int b = _batch, t = _time, n = b * t, g = _heads + (2 * _kvHeads), d = _headSize, c = x.Shape[2];

        var dMerged = _ws.Get("d.attn.merged", new Shape(n, _heads * d), dtype);
        _output.Backward(_ws, _merged!, dy.Reshape(n, dy.Shape[-1]), dMerged);
        var dOut = _ws.Get("d.attn.out", new Shape(b, _heads, t, d), dtype);
        ops.IndexSelect(dMerged.Reshape(n * _heads, d), 0, _ws.HeadMajorIndex(b, t, [_heads], inverse: false), dOut.Reshape(b * _heads * t, d));

        var dHeads = _ws.Get("d.attn.heads", new Shape(g * n, d), dtype);
        var dq = dHeads.View(0, new Shape(b, _heads, t, d));
        var dk = dHeads.View((long)_heads * n * d, new Shape(b, _kvHeads, t, d));
        var dv = dHeads.View((long)(_heads + _kvHeads) * n * d, new Shape(b, _kvHeads, t, d));
        if (_rotary is { } rot)
        {
            var dqRot = _ws.Get("d.attn.qrot", dq.Shape, dtype);
            var dkRot = _ws.Get("d.attn.krot", dk.Shape, dtype);
            var (cos, sin) = RotaryRows(rot, t);
            AttentionBackward(dOut, dqRot, dkRot, dv);
            ops.RotaryBackward(dqRot.Reshape(b * _heads, t, 1, d), cos, sin, 0, dq.Reshape(b * _heads, t, 1, d));
            ops.RotaryBackward(dkRot.Reshape(b * _kvHeads, t, 1, d), cos, sin, 0, dk.Reshape(b * _kvHeads, t, 1, d));
        }
        else
        {
            AttentionBackward(dOut, dq, dk, dv);
        }
        var dQkv = _ws.Get("d.attn.qkv", new Shape(n, g * d), dtype);
        ops.IndexSelect(dHeads, 0, _ws.HeadMajorIndex(b, t, Sections, inverse: true), dQkv.Reshape(n * g, d));
        _qkv.Backward(_ws, x.Reshape(n, c), dQkv, dx.Reshape(n, c), accumulate ? 1 : 0);
    }

    private void AttentionBackward(Tensor dOut, Tensor dq, Tensor dk, Tensor dv)
    {
        if (_sequenceParallel is { } sp)
        {
            sp.AttentionBackward(_q!, _k!, _v!, _o!, _lse!, dOut, Scale, dq, dk, dv);
        }
        else
        {
            _ws.Ops.AttentionBackward(_q!, _k!, _v!, _o!, _lse!, dOut, causal: true, Scale, dq, dk, dv);
        }
    }

    /// <summary>The rotary rows of the local tokens: the tables themselves on one device, their rows at the global positions under sequence parallelism.</summary>
    private (Tensor Cos, Tensor Sin) RotaryRows(RotaryTables tables, int time) =>
        _sequenceParallel is { } sp ? sp.RotaryRows(tables, time) : (tables.Cos, tables.Sin);
}
