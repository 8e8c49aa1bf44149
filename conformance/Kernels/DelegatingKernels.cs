namespace Hal.Conformance.Kernels;

/// <summary>
/// A kernel decorator: every tier-1 and tier-2 hook forwards to <see cref="Inner"/> after <see cref="OnCall"/>.
/// Tier-2 support is the inner object's. Subclasses override one hook to alter it (the suite's own tests plant
/// faults this way) or <see cref="OnCall"/> to observe calls. Use it through <c>new Ops(device, decorator)</c>.
/// </summary>
public class DelegatingKernels(IKernels inner) : IKernels, IFusedKernels
{
    /// <summary>The kernels calls go to.</summary>
    public IKernels Inner { get; } = inner ?? throw new ArgumentNullException(nameof(inner));

    private IFusedKernels Fused => Inner as IFusedKernels
        ?? throw new NotSupportedException("the inner kernels have no tier-2 kernels; Ops should have used the composite");

    /// <summary>Called before each hook with the kernel's name (see <see cref="KernelNames"/>).</summary>
    protected virtual void OnCall(string kernel)
    {
    }

    /// <inheritdoc/>
    public virtual void Fill(Tensor dst, double value)
    {
        OnCall(KernelNames.Fill);
        Inner.Fill(dst, value);
    }

    /// <inheritdoc/>
    public virtual void Copy(Tensor src, Tensor dst)
    {
        OnCall(KernelNames.Copy);
        Inner.Copy(src, dst);
    }

    /// <inheritdoc/>
    public virtual void Cast(Tensor src, Tensor dst)
    {
        OnCall(KernelNames.Cast);
        Inner.Cast(src, dst);
    }

    /// <inheritdoc/>
    public virtual void Unary(UnaryOp op, Tensor x, Tensor y)
    {
        OnCall(KernelNames.Of(op));
        Inner.Unary(op, x, y);
    }

    /// <inheritdoc/>
    public virtual void Binary(BinaryOp op, Tensor a, Tensor b, Tensor y)
    {
        OnCall(KernelNames.Of(op));
        Inner.Binary(op, a, b, y);
    }

    /// <inheritdoc/>
    public virtual void Reduce(ReduceOp op, Tensor x, int axis, Tensor y)
    {
        OnCall(KernelNames.Of(op));
        Inner.Reduce(op, x, axis, y);
    }

    /// <inheritdoc/>
    public virtual void ArgMax(Tensor x, int axis, Tensor indices)
    {
        OnCall(KernelNames.ArgMax);
        Inner.ArgMax(x, axis, indices);
    }

    /// <inheritdoc/>
    public virtual void Gemm(Tensor a, Tensor b, Tensor c, bool transA, bool transB, double alpha, double beta, Tensor? bias)
    {
        OnCall(KernelNames.Gemm);
        Inner.Gemm(a, b, c, transA, transB, alpha, beta, bias);
    }

    /// <inheritdoc/>
    public virtual void IndexSelect(Tensor src, int axis, Tensor index, Tensor dst)
    {
        OnCall(KernelNames.IndexSelect);
        Inner.IndexSelect(src, axis, index, dst);
    }

    /// <inheritdoc/>
    public virtual void IndexAdd(Tensor src, int axis, Tensor index, Tensor dst)
    {
        OnCall(KernelNames.IndexAdd);
        Inner.IndexAdd(src, axis, index, dst);
    }

    /// <inheritdoc/>
    public virtual void Gather(Tensor src, int axis, Tensor index, Tensor dst)
    {
        OnCall(KernelNames.Gather);
        Inner.Gather(src, axis, index, dst);
    }

    /// <inheritdoc/>
    public virtual void ScatterAdd(Tensor src, int axis, Tensor index, Tensor dst)
    {
        OnCall(KernelNames.ScatterAdd);
        Inner.ScatterAdd(src, axis, index, dst);
    }

    /// <inheritdoc/>
    public virtual void Random(RandomDistribution distribution, Tensor dst, ulong seed, ulong offset, double a, double b)
    {
        OnCall(KernelNames.Of(distribution));
        Inner.Random(distribution, dst, seed, offset, a, b);
    }

    // ---- tier 2 -------------------------------------------------------------------------------------------------

    /// <inheritdoc/>
    public virtual bool Supports(FusedOp op, DType dtype) => Inner is IFusedKernels f && f.Supports(op, dtype);

    /// <inheritdoc/>
    public virtual void Softmax(Tensor x, Tensor y)
    {
        OnCall(KernelNames.Of(FusedOp.Softmax));
        Fused.Softmax(x, y);
    }

    /// <inheritdoc/>
    public virtual void SoftmaxBackward(Tensor y, Tensor dy, Tensor dx)
    {
        OnCall(KernelNames.Of(FusedOp.SoftmaxBackward));
        Fused.SoftmaxBackward(y, dy, dx);
    }

    /// <inheritdoc/>
    public virtual void LogSoftmax(Tensor x, Tensor y)
    {
        OnCall(KernelNames.Of(FusedOp.LogSoftmax));
        Fused.LogSoftmax(x, y);
    }

    /// <inheritdoc/>
    public virtual void LogSoftmaxBackward(Tensor y, Tensor dy, Tensor dx)
    {
        OnCall(KernelNames.Of(FusedOp.LogSoftmaxBackward));
        Fused.LogSoftmaxBackward(y, dy, dx);
    }

    /// <inheritdoc/>
    public virtual void LayerNorm(Tensor x, Tensor weight, Tensor? bias, double eps, Tensor y, Tensor mean, Tensor rstd)
    {
        OnCall(KernelNames.Of(FusedOp.LayerNorm));
        Fused.LayerNorm(x, weight, bias, eps, y, mean, rstd);
    }

    /// <inheritdoc/>
    public virtual void LayerNormBackward(Tensor dy, Tensor x, Tensor weight, Tensor mean, Tensor rstd, Tensor dx, Tensor dweight, Tensor? dbias)
    {
        OnCall(KernelNames.Of(FusedOp.LayerNormBackward));
        Fused.LayerNormBackward(dy, x, weight, mean, rstd, dx, dweight, dbias);
    }

    /// <inheritdoc/>
    public virtual void RmsNorm(Tensor x, Tensor weight, double eps, Tensor y, Tensor rstd)
    {
        OnCall(KernelNames.Of(FusedOp.RmsNorm));
        Fused.RmsNorm(x, weight, eps, y, rstd);
    }

    /// <inheritdoc/>
    public virtual void RmsNormBackward(Tensor dy, Tensor x, Tensor weight, Tensor rstd, Tensor dx, Tensor dweight)
    {
        OnCall(KernelNames.Of(FusedOp.RmsNormBackward));
        Fused.RmsNormBackward(dy, x, weight, rstd, dx, dweight);
    }

    /// <inheritdoc/>
    public virtual void CrossEntropy(Tensor logits, Tensor targets, Tensor losses, Tensor lse)
    {
        OnCall(KernelNames.Of(FusedOp.CrossEntropy));
        Fused.CrossEntropy(logits, targets, losses, lse);
    }

    /// <inheritdoc/>
    public virtual void CrossEntropyBackward(Tensor logits, Tensor targets, Tensor lse, Tensor dlosses, Tensor dlogits)
    {
        OnCall(KernelNames.Of(FusedOp.CrossEntropyBackward));
        Fused.CrossEntropyBackward(logits, targets, lse, dlosses, dlogits);
    }

    /// <inheritdoc/>
    public virtual void Embedding(Tensor weight, Tensor ids, Tensor y)
    {
        OnCall(KernelNames.Of(FusedOp.Embedding));
        Fused.Embedding(weight, ids, y);
    }

    /// <inheritdoc/>
    public virtual void EmbeddingBackward(Tensor dy, Tensor ids, Tensor dweight)
    {
        OnCall(KernelNames.Of(FusedOp.EmbeddingBackward));
        Fused.EmbeddingBackward(dy, ids, dweight);
    }

    /// <inheritdoc/>
    public virtual void Rotary(Tensor x, Tensor cos, Tensor sin, int positionOffset, Tensor y)
    {
        OnCall(KernelNames.Of(FusedOp.Rotary));
        Fused.Rotary(x, cos, sin, positionOffset, y);
    }

    /// <inheritdoc/>
    public virtual void RotaryBackward(Tensor dy, Tensor cos, Tensor sin, int positionOffset, Tensor dx)
    {
        OnCall(KernelNames.Of(FusedOp.RotaryBackward));
        Fused.RotaryBackward(dy, cos, sin, positionOffset, dx);
    }

    /// <inheritdoc/>
    public virtual void Attention(Tensor q, Tensor k, Tensor v, bool causal, double scale, Tensor output, Tensor lse)
    {
        OnCall(KernelNames.Of(FusedOp.Attention));
        Fused.Attention(q, k, v, causal, scale, output, lse);
    }

    /// <inheritdoc/>
    public virtual void AttentionBackward(Tensor q, Tensor k, Tensor v, Tensor output, Tensor lse, Tensor dOutput, bool causal, double scale, Tensor dq, Tensor dk, Tensor dv)
    {
        OnCall(KernelNames.Of(FusedOp.AttentionBackward));
        Fused.AttentionBackward(q, k, v, output, lse, dOutput, causal, scale, dq, dk, dv);
    }

    /// <inheritdoc/>
    public virtual void ActivationBackward(UnaryOp op, Tensor x, Tensor dy, Tensor dx)
    {
        OnCall(KernelNames.Of(FusedOp.ActivationBackward));
        Fused.ActivationBackward(op, x, dy, dx);
    }

    /// <inheritdoc/>
    public virtual void AdamW(Tensor param, Tensor grad, Tensor m, Tensor v, AdamWConfig config, long step)
    {
        OnCall(KernelNames.Of(FusedOp.AdamW));
        Fused.AdamW(param, grad, m, v, config, step);
    }

    /// <inheritdoc/>
    public virtual void Lamb(Tensor param, Tensor grad, Tensor m, Tensor v, AdamWConfig config, long step)
    {
        OnCall(KernelNames.Of(FusedOp.Lamb));
        Fused.Lamb(param, grad, m, v, config, step);
    }

    /// <inheritdoc/>
    public virtual void Lars(Tensor param, Tensor grad, Tensor momentumBuffer, LarsConfig config)
    {
        OnCall(KernelNames.Of(FusedOp.Lars));
        Fused.Lars(param, grad, momentumBuffer, config);
    }

    /// <inheritdoc/>
    public virtual void QuantizeInt8(Tensor x, Tensor q, Tensor scale)
    {
        OnCall(KernelNames.Of(FusedOp.QuantizeInt8));
        Fused.QuantizeInt8(x, q, scale);
    }

    /// <inheritdoc/>
    public virtual void DequantizeInt8(Tensor q, Tensor scale, Tensor y)
    {
        OnCall(KernelNames.Of(FusedOp.DequantizeInt8));
        Fused.DequantizeInt8(q, scale, y);
    }
}

/// <summary>Records the name of every kernel called through it (thread-safe), for the report's "kernels used".</summary>
public sealed class RecordingKernels(IKernels inner) : DelegatingKernels(inner)
{
    private readonly HashSet<string> _used = [];
    private readonly Lock _lock = new();

    /// <summary>The kernels called since the last <see cref="Reset"/>, sorted.</summary>
    public IReadOnlyList<string> Used
    {
        get
        {
            lock (_lock)
            {
                return [.. _used.Order(StringComparer.Ordinal)];
            }
        }
    }

    /// <summary>Forgets the calls recorded so far.</summary>
    public void Reset()
    {
        lock (_lock)
        {
            _used.Clear();
        }
    }

    /// <inheritdoc/>
    protected override void OnCall(string kernel)
    {
        lock (_lock)
        {
            _used.Add(kernel);
        }
    }
}
