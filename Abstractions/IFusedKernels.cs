namespace Hal;

/// <summary>
/// Tier 2: optional fused kernels. A backend's <see cref="IKernels"/> object may also implement this interface;
/// <see cref="Ops"/> calls a method only when <see cref="Supports"/> says yes for that op and dtype, and otherwise
/// runs the composite fallback (<c>Hal.Composite</c>) built from tier-1 ops. Inputs are validated by <see cref="Ops"/>.
/// Legend: N rows, C channels/features (the last axis), V vocabulary, B batch, H query heads, Hkv key/value heads,
/// Tq/Tk query/key lengths, D head size. Normalisations and softmaxes work on the last axis, with rows = everything before it.
/// Gradients named d* are written (overwritten), never accumulated.
/// Members added in later contract versions come with a default (not supported), so older plugins keep working.
/// </summary>
public interface IFusedKernels
{
    /// <summary>True when this backend has a fused kernel for <paramref name="op"/> at <paramref name="dtype"/> (the dtype of the op's main float operand).</summary>
    bool Supports(FusedOp op, DType dtype) => false;

    /// <summary>y = softmax(x) over the last axis.</summary>
    void Softmax(Tensor x, Tensor y) => throw NotFused(FusedOp.Softmax);

    /// <summary>dx = y ⊙ (dy − Σ(dy ⊙ y)) over the last axis, from the forward output y.</summary>
    void SoftmaxBackward(Tensor y, Tensor dy, Tensor dx) => throw NotFused(FusedOp.SoftmaxBackward);

    /// <summary>y = log_softmax(x) over the last axis.</summary>
    void LogSoftmax(Tensor x, Tensor y) => throw NotFused(FusedOp.LogSoftmax);

    /// <summary>dx = dy − exp(y) · Σ dy over the last axis, from the forward output y.</summary>
    void LogSoftmaxBackward(Tensor y, Tensor dy, Tensor dx) => throw NotFused(FusedOp.LogSoftmaxBackward);

    /// <summary>x [N, C] (any leading dims): y = (x − mean) · rstd · weight + bias; mean and rstd [N] (F32, biased variance, rstd = 1/√(var+eps)). bias may be null.</summary>
    void LayerNorm(Tensor x, Tensor weight, Tensor? bias, double eps, Tensor y, Tensor mean, Tensor rstd) => throw NotFused(FusedOp.LayerNorm);

    /// <summary>Gradients of <see cref="LayerNorm"/>: dx [N, C], dweight [C], dbias [C] (null when the forward had no bias).</summary>
    void LayerNormBackward(Tensor dy, Tensor x, Tensor weight, Tensor mean, Tensor rstd, Tensor dx, Tensor dweight, Tensor? dbias) => throw NotFused(FusedOp.LayerNormBackward);

    /// <summary>y = x · rstd · weight with rstd [N] = 1/√(mean(x²)+eps) (F32).</summary>
    void RmsNorm(Tensor x, Tensor weight, double eps, Tensor y, Tensor rstd) => throw NotFused(FusedOp.RmsNorm);

    /// <summary>Gradients of <see cref="RmsNorm"/>: dx [N, C], dweight [C].</summary>
    void RmsNormBackward(Tensor dy, Tensor x, Tensor weight, Tensor rstd, Tensor dx, Tensor dweight) => throw NotFused(FusedOp.RmsNormBackward);

    /// <summary>
    /// Softmax cross-entropy per row: logits [N, V], targets [N] (I32/I64; a negative target is ignored: loss 0, gradient 0),
    /// losses [N] = logsumexp(logits) − logits[target], lse [N] = logsumexp(logits) (both F32).
    /// </summary>
    void CrossEntropy(Tensor logits, Tensor targets, Tensor losses, Tensor lse) => throw NotFused(FusedOp.CrossEntropy);

    /// <summary>dlogits [N, V] = (softmax(logits) − onehot(target)) · dlosses[n] (zero rows for ignored targets); dlosses [N] F32.</summary>
    void CrossEntropyBackward(Tensor logits, Tensor targets, Tensor lse, Tensor dlosses, Tensor dlogits) => throw NotFused(FusedOp.CrossEntropyBackward);

    /// <summary>y [N, C] = weight [V, C] rows at ids [N] (I32/I64, in [0, V)).</summary>
    void Embedding(Tensor weight, Tensor ids, Tensor y) => throw NotFused(FusedOp.Embedding);

    /// <summary>dweight [V, C] = Σ over n with ids[n] = v of dy[n] (zero elsewhere).</summary>
    void EmbeddingBackward(Tensor dy, Tensor ids, Tensor dweight) => throw NotFused(FusedOp.EmbeddingBackward);

    /// <summary>
    /// Rotary embedding, half-split (rotate-half) convention: x [B, T, H, D], cos/sin [Tmax, D/2] (F32), rows
    /// positionOffset..positionOffset+T used. For i &lt; D/2: y[i] = x[i]·cos − x[i+D/2]·sin; y[i+D/2] = x[i+D/2]·cos + x[i]·sin.
    /// </summary>
    void Rotary(Tensor x, Tensor cos, Tensor sin, int positionOffset, Tensor y) => throw NotFused(FusedOp.Rotary);

    /// <summary>dx from dy: the inverse rotation (sin negated).</summary>
    void RotaryBackward(Tensor dy, Tensor cos, Tensor sin, int positionOffset, Tensor dx) => throw NotFused(FusedOp.RotaryBackward);

    /// <summary>
    /// Scaled-dot-product attention: q [B, H, Tq, D], k and v [B, Hkv, Tk, D] (H a multiple of Hkv: query head h uses
    /// key/value head h / (H/Hkv)), out [B, H, Tq, D], lse [B, H, Tq] (F32, natural log-sum-exp of the scaled scores).
    /// Causal: query i sees keys j ≤ i + (Tk − Tq). A query row that sees no key gets out 0 and lse −Inf.
    /// </summary>
    void Attention(Tensor q, Tensor k, Tensor v, bool causal, double scale, Tensor output, Tensor lse) => throw NotFused(FusedOp.Attention);

    /// <summary>Gradients of <see cref="Attention"/> from the saved output and lse: dq, dk, dv shaped like q, k, v.</summary>
    void AttentionBackward(Tensor q, Tensor k, Tensor v, Tensor output, Tensor lse, Tensor dOutput, bool causal, double scale, Tensor dq, Tensor dk, Tensor dv) => throw NotFused(FusedOp.AttentionBackward);

    /// <summary>dx = dy · op'(x) for op in Relu, Tanh, Sigmoid, GeluErf, GeluTanh, Silu.</summary>
    void ActivationBackward(UnaryOp op, Tensor x, Tensor dy, Tensor dx) => throw NotFused(FusedOp.ActivationBackward);

    /// <summary>
    /// AdamW in place on param, m, v (F32 states; param F32 or 16-bit). step ≥ 1 (bias correction):
    /// m = β1·m + (1−β1)·g; v = β2·v + (1−β2)·g²; p −= lr·(m̂/(√v̂+eps) + weightDecay·p).
    /// </summary>
    void AdamW(Tensor param, Tensor grad, Tensor m, Tensor v, AdamWConfig config, long step) => throw NotFused(FusedOp.AdamW);

    /// <summary>LAMB in place (one tensor = one trust-ratio group): the AdamW update u (with decay) scaled by ‖p‖/‖u‖ (1 when either norm is 0).</summary>
    void Lamb(Tensor param, Tensor grad, Tensor m, Tensor v, AdamWConfig config, long step) => throw NotFused(FusedOp.Lamb);

    /// <summary>
    /// LARS in place: local_lr = trust·‖p‖/(‖g‖ + wd·‖p‖ + eps) (1 when a norm is 0); buf = momentum·buf + local_lr·(g + wd·p); p −= lr·buf.
    /// </summary>
    void Lars(Tensor param, Tensor grad, Tensor momentumBuffer, LarsConfig config) => throw NotFused(FusedOp.Lars);

    /// <summary>Symmetric per-row int8 quantisation: x [R, C] float; scale [R] F32 = max|x[r]|/127 (1 for an all-zero row); q [R, C] I8 = round-half-even(x/scale) clamped to [−127, 127].</summary>
    void QuantizeInt8(Tensor x, Tensor q, Tensor scale) => throw NotFused(FusedOp.QuantizeInt8);

    /// <summary>y [R, C] = q · scale[r].</summary>
    void DequantizeInt8(Tensor q, Tensor scale, Tensor y) => throw NotFused(FusedOp.DequantizeInt8);

    private static NotSupportedException NotFused(FusedOp op) =>
        new($"this backend has no fused {op} kernel; Ops uses the composite fallback unless Supports({op}, …) returns true");
}

/// <summary>Hyper-parameters of AdamW and LAMB.</summary>
public readonly record struct AdamWConfig(double LearningRate, double Beta1 = 0.9, double Beta2 = 0.999, double Epsilon = 1e-8, double WeightDecay = 0.0);

/// <summary>Hyper-parameters of LARS.</summary>
public readonly record struct LarsConfig(double LearningRate, double Momentum = 0.9, double WeightDecay = 0.0, double TrustCoefficient = 0.001, double Epsilon = 1e-9);
