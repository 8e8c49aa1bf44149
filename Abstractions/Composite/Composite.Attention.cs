namespace Hal;

// Shapes: q, output, dOutput [B, H, Tq, D]; k, v [B, Hkv, Tk, D], expanded to [B, H, Tk, D] along the head axis
// (query head h uses key/value head h / (H/Hkv)); scores and probabilities [B, H, Tq, Tk]; lse [B, H, Tq] (F32)
// viewed as [B, H, Tq, 1]; the causal mask [Tq, Tk] broadcasts over [B, H].
// Rotary: x [B, T, H, D] viewed as [B, T, H, 2, D/2] (the two halves); cos/sin rows [T, D/2] viewed as [T, 1, 1, D/2].
public static partial class Composite
{
    /// <summary>
    /// out = softmax(scale·q·kᵀ + mask)·v and lse = logsumexp of the masked scaled scores, as batched GEMMs.
    /// A row with no visible key has max −Inf; the max is clamped to the lowest finite value so its exponentials are 0,
    /// its sum is 0 (lse = log 0 = −Inf) and its probabilities 0 / max(sum, 1) = 0 (every other row's sum is ≥ 1).
    /// </summary>
    public static void Attention(Ops ops, Tensor q, Tensor k, Tensor v, bool causal, double scale, Tensor output, Tensor lse)
    {
        if (output.ElementCount == 0 && lse.ElementCount == 0)
        {
            return;
        }
        int b = q.Shape[0], h = q.Shape[1], tq = q.Shape[2];
        var ct = ComputeDType(q.DType);
        using var s = new Scratch(ops);
        var qc = s.As(q, ct);
        var kx = ExpandHeads(s, s.As(k, ct), h);
        var vx = ExpandHeads(s, s.As(v, ct), h);
        var probs = Scores(s, qc, kx, causal, scale);
        var max = s.Reduce(ReduceOp.Max, probs, 3);
        ops.Binary(BinaryOp.Max, max, s.Scalar(Lowest(ct), ct), max);
        ops.Binary(BinaryOp.Sub, probs, max, probs);
        ops.Unary(UnaryOp.Exp, probs, probs);
        var sum = s.Reduce(ReduceOp.Sum, probs, 3);
        var lseC = s.Unary(UnaryOp.Log, sum);
        ops.Binary(BinaryOp.Add, lseC, max, lseC);
        ops.Binary(BinaryOp.Max, sum, s.Scalar(1, ct), sum);
        ops.Binary(BinaryOp.Div, probs, sum, probs);

        var outC = s.Target(output, ct);
        ops.Gemm(probs, vx, outC);
        s.Store(outC, output);
        s.Store(lseC, lse.Reshape(b, h, tq, 1));
    }

    /// <summary>
    /// Gradients from the saved lse: P = exp(S − lse) recomputed (lse clamped to the lowest finite value, so rows that see
    /// no key give P = 0), dV = Pᵀ·dO, dP = dO·Vᵀ, dS = P ⊙ (dP − rowsum(dO ⊙ O)), dQ = scale·dS·K, dK = scale·dSᵀ·Q;
    /// key/value gradients of grouped heads are summed back with IndexAdd.
    /// </summary>
    public static void AttentionBackward(Ops ops, Tensor q, Tensor k, Tensor v, Tensor output, Tensor lse, Tensor dOutput, bool causal, double scale, Tensor dq, Tensor dk, Tensor dv)
    {
        int b = q.Shape[0], h = q.Shape[1], tq = q.Shape[2], d = q.Shape[3];
        int hkv = k.Shape[1], tk = k.Shape[2];
        var ct = ComputeDType(q.DType);
        using var s = new Scratch(ops);
        var qc = s.As(q, ct);
        var kx = ExpandHeads(s, s.As(k, ct), h);
        var vx = ExpandHeads(s, s.As(v, ct), h);
        var oc = s.As(output, ct);
        var doc = s.As(dOutput, ct);
        var lseSafe = s.Binary(BinaryOp.Max, s.As(lse.Reshape(b, h, tq, 1), ct), s.Scalar(Lowest(ct), ct));

        var probs = Scores(s, qc, kx, causal, scale);
        ops.Binary(BinaryOp.Sub, probs, lseSafe, probs);
        ops.Unary(UnaryOp.Exp, probs, probs);

        var dvx = hkv == h ? s.Target(dv, ct) : s.Empty(new Shape(b, h, tk, d), ct);
        ops.Gemm(probs, doc, dvx, transA: true);
        var dScores = s.Empty(new Shape(b, h, tq, tk), ct);
        ops.Gemm(doc, vx, dScores, transB: true);
        var rowDot = s.Reduce(ReduceOp.Sum, s.Binary(BinaryOp.Mul, doc, oc), 3);
        ops.Binary(BinaryOp.Sub, dScores, rowDot, dScores);
        ops.Binary(BinaryOp.Mul, dScores, probs, dScores);

        var dqc = s.Target(dq, ct);
        ops.Gemm(dScores, kx, dqc, alpha: scale);
        s.Store(dqc, dq);
        var dkx = hkv == h ? s.Target(dk, ct) : s.Empty(new Shape(b, h, tk, d), ct);
        ops.Gemm(dScores, qc, dkx, transA: true, alpha: scale);
        StoreGrouped(s, dkx, dk, hkv, ct);
        StoreGrouped(s, dvx, dv, hkv, ct);
    }

    /// <summary>y = x·cos + rotate_half(x)·sin with rotate_half([x1, x2]) = [−x2, x1].</summary>
    public static void Rotary(Ops ops, Tensor x, Tensor cos, Tensor sin, int positionOffset, Tensor y) =>
        RotaryCore(ops, x, cos, sin, positionOffset, y, -1);

    /// <summary>dx = dy·cos + [dy2, −dy1]·sin, the inverse rotation.</summary>
    public static void RotaryBackward(Ops ops, Tensor dy, Tensor cos, Tensor sin, int positionOffset, Tensor dx) =>
        RotaryCore(ops, dy, cos, sin, positionOffset, dx, +1);

    /// <summary>y = x·cos + swap_halves(x)·[firstHalfSign, −firstHalfSign]·sin.</summary>
    private static void RotaryCore(Ops ops, Tensor x, Tensor cos, Tensor sin, int positionOffset, Tensor y, double firstHalfSign)
    {
        if (x.ElementCount == 0)
        {
            return;
        }
        int b = x.Shape[0], t = x.Shape[1], h = x.Shape[2], half = x.Shape[3] / 2;
        var ct = ComputeDType(x.DType);
        using var s = new Scratch(ops);
        var halves = new Shape(b, t, h, 2, half);
        var xc = s.As(x.Reshape(b, t, h, 2, half), ct);
        var cosRows = s.As(cos.Slice(positionOffset, t).Reshape(t, 1, 1, half), ct);
        var sinRows = s.As(sin.Slice(positionOffset, t).Reshape(t, 1, 1, half), ct);

        var swapped = s.Empty(halves, ct);
        ops.IndexSelect(xc, 3, s.Constant([1L, 0L], new Shape(2)), swapped);
        ops.Binary(BinaryOp.Mul, swapped, s.Constant([firstHalfSign, -firstHalfSign], new Shape(2, 1), ct), swapped);
        ops.Binary(BinaryOp.Mul, swapped, sinRows, swapped);
        var yc = s.Target(y.Reshape(b, t, h, 2, half), ct);
        ops.Binary(BinaryOp.Mul, xc, cosRows, yc);
        ops.Binary(BinaryOp.Add, yc, swapped, yc);
        s.Store(yc, y);
    }

    /// <summary>[B, Hkv, T, D] → [B, H, T, D] by IndexSelect along the head axis (the input itself when H = Hkv).</summary>
    private static Tensor ExpandHeads(Scratch s, Tensor kv, int heads)
    {
        int hkv = kv.Shape[1];
        if (hkv == heads)
        {
            return kv;
        }
        var expanded = s.Empty(kv.Shape.With(1, heads), kv.DType);
        s.Ops.IndexSelect(kv, 1, GroupIndex(s, heads, hkv), expanded);
        return expanded;
    }

    /// <summary>The key/value head of every query head: h / (H / Hkv).</summary>
    private static Tensor GroupIndex(Scratch s, int heads, int kvHeads)
    {
        int group = heads / kvHeads;
        var index = new long[heads];
        for (int i = 0; i < heads; i++)
        {
            index[i] = i / group;
        }
        return s.Constant(index, new Shape(heads));
    }

    /// <summary>Writes a [B, H, Tk, D] gradient into dst [B, Hkv, Tk, D], summing the query heads of each group.</summary>
    private static void StoreGrouped(Scratch s, Tensor expanded, Tensor dst, int kvHeads, DType ct)
    {
        int heads = expanded.Shape[1];
        if (heads == kvHeads)
        {
            s.Store(expanded, dst);
            return;
        }
        var reduced = s.Target(dst, ct);
        s.Ops.Fill(reduced, 0);
        s.Ops.IndexAdd(expanded, 1, GroupIndex(s, heads, kvHeads), reduced);
        s.Store(reduced, dst);
    }

    /// <summary>scale·q·kᵀ [B, H, Tq, Tk], plus the causal mask (0 where key j ≤ i + Tk − Tq, −Inf elsewhere).</summary>
    private static Tensor Scores(Scratch s, Tensor q, Tensor keys, bool causal, double scale)
    {
        int b = q.Shape[0], h = q.Shape[1], tq = q.Shape[2], tk = keys.Shape[2];
        var scores = s.Empty(new Shape(b, h, tq, tk), q.DType);
        s.Ops.Gemm(q, keys, scores, transB: true, alpha: scale);
        if (causal)
        {
            var mask = new double[(long)tq * tk];
            for (int i = 0; i < tq; i++)
            {
                for (int j = 0; j < tk; j++)
                {
                    mask[((long)i * tk) + j] = j <= i + (tk - tq) ? 0 : double.NegativeInfinity;
                }
            }
            s.Ops.Binary(BinaryOp.Add, scores, s.Constant(mask, new Shape(tq, tk), q.DType), scores);
        }
        return scores;
    }
}
