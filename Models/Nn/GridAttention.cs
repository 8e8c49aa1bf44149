namespace Hal.Models.Nn;

// Legend: Bl sequences of this rank's rows, T time, Hl = H/f query heads and Hkvl = Hkv/f key/value heads of this rank's
// feature block, D head size, Ra = Bl·T rows. q [Ra, Hl·D], k and v [Ra, Hkvl·D] token-major (as a grid linear writes
// them); head-major [Bl, Hl, T, D]; merged [Ra, Hl·D].

/// <summary>
/// The local part of grid attention: a rank's rows are whole sequences and its feature block whole heads, so causal
/// attention needs no communication. Permutes q, k, v to head-major, applies rotary (LLaMA), runs the fused kernel and
/// merges the heads back; backward mirrors it. Saved: the head-major q, k, v (rotated), output and lse.
/// </summary>
internal sealed class GridAttention(Workspace ws, int heads, int kvHeads, int headSize, RotaryTables? rotary, string scope)
{
    private Tensor? _q, _k, _v, _o, _lse;
    private int _batch, _time;

    private double Scale => 1.0 / Math.Sqrt(headSize);

    public void Forward(Tensor q, Tensor k, Tensor v, int batch, int time, Tensor merged)
    {
        var ops = ws.Ops;
        var dt = q.DType;
        int d = headSize;
        _batch = batch;
        _time = time;
        _q = ToHeads(q, heads, scope + ".q", saved: true);
        _k = ToHeads(k, kvHeads, scope + ".k", saved: true);
        _v = ToHeads(v, kvHeads, scope + ".v", saved: true);
        if (rotary is { } rot)
        {
            var qr = ws.Get(scope + ".qrot", _q.Shape, dt, saved: true);
            var kr = ws.Get(scope + ".krot", _k.Shape, dt, saved: true);
            ops.Rotary(_q.Reshape(batch * heads, time, 1, d), rot.Cos, rot.Sin, 0, qr.Reshape(batch * heads, time, 1, d));
            ops.Rotary(_k.Reshape(batch * kvHeads, time, 1, d), rot.Cos, rot.Sin, 0, kr.Reshape(batch * kvHeads, time, 1, d));
            _q = qr;
            _k = kr;
        }
        _o = ws.Get(scope + ".o", new Shape(batch, heads, time, d), dt, saved: true);
        _lse = ws.Get(scope + ".lse", new Shape(batch, heads, time), DType.F32, saved: true);
        ops.Attention(_q, _k, _v, causal: true, Scale, _o, _lse);
        ops.IndexSelect(_o.Reshape(batch * heads * time, d), 0, ws.HeadMajorIndex(batch, time, [heads], inverse: true), merged.Reshape(batch * time * heads, d));
    }

    public void Backward(Tensor dMerged, Tensor dq, Tensor dk, Tensor dv)
    {
        var ops = ws.Ops;
        var dt = dMerged.DType;
        int b = _batch, t = _time, d = headSize;
        var dOut = ToHeads(dMerged, heads, "d.gattn.o", saved: false);
        var dqh = ws.Get("d.gattn.q", new Shape(b, heads, t, d), dt);
        var dkh = ws.Get("d.gattn.k", new Shape(b, kvHeads, t, d), dt);
        var dvh = ws.Get("d.gattn.v", new Shape(b, kvHeads, t, d), dt);
        ops.AttentionBackward(_q!, _k!, _v!, _o!, _lse!, dOut, causal: true, Scale, dqh, dkh, dvh);
        if (rotary is { } rot)
        {
            var dqr = ws.Get("d.gattn.qr", dqh.Shape, dt);
            var dkr = ws.Get("d.gattn.kr", dkh.Shape, dt);
            ops.RotaryBackward(dqh.Reshape(b * heads, t, 1, d), rot.Cos, rot.Sin, 0, dqr.Reshape(b * heads, t, 1, d));
            ops.RotaryBackward(dkh.Reshape(b * kvHeads, t, 1, d), rot.Cos, rot.Sin, 0, dkr.Reshape(b * kvHeads, t, 1, d));
            dqh = dqr;
            dkh = dkr;
        }
        FromHeads(dqh, heads, dq);
        FromHeads(dkh, kvHeads, dk);
        FromHeads(dvh, kvHeads, dv);
    }

    /// <summary>Token-major [Ra, n·D] to head-major [Bl, n, T, D] in a buffer named <paramref name="key"/>.</summary>
    private Tensor ToHeads(Tensor tokens, int n, string key, bool saved)
    {
        int b = _batch, t = _time, d = headSize;
        var heads = ws.Get(key, new Shape(b, n, t, d), tokens.DType, saved);
        ws.Ops.IndexSelect(tokens.Reshape(b * t * n, d), 0, ws.HeadMajorIndex(b, t, [n], inverse: false), heads.Reshape(b * n * t, d));
        return heads;
    }

    private void FromHeads(Tensor heads, int n, Tensor tokens)
    {
        int b = _batch, t = _time, d = headSize;
        ws.Ops.IndexSelect(heads.Reshape(b * n * t, d), 0, ws.HeadMajorIndex(b, t, [n], inverse: true), tokens.Reshape(b * t * n, d));
    }
}
