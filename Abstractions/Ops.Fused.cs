using System.Collections.Concurrent;

namespace Hal;

// Tier-2 entry points: validate once (devices, dtypes, every shape relation of IFusedKernels), then run the backend's
// fused kernel when it has one for the op and dtype, and the composite fallback (Hal.Composite) otherwise.
// Legend: N rows, C channels (last axis), V vocabulary, B batch, H/Hkv heads, Tq/Tk lengths, D head size.
public sealed partial class Ops
{
    private readonly ConcurrentDictionary<(FusedOp Op, DType DType), KernelPath> _pathsTaken = new();

    /// <summary>When true, every tier-2 op runs its composite fallback even where the backend has a fused kernel (to test both paths on one backend).</summary>
    public bool ForceComposite { get; set; }

    /// <summary>The path a call of <paramref name="op"/> at <paramref name="dtype"/> (its main float operand's dtype) would take now.</summary>
    public KernelPath PathFor(FusedOp op, DType dtype) =>
        !ForceComposite && Kernels is IFusedKernels fused && fused.Supports(op, dtype) ? KernelPath.Fused : KernelPath.Composite;

    /// <summary>A snapshot of the path each (op, dtype) pair took at its latest call through this entry (thread-safe).</summary>
    public IReadOnlyDictionary<(FusedOp Op, DType DType), KernelPath> PathsTaken => new Dictionary<(FusedOp Op, DType DType), KernelPath>(_pathsTaken);

    /// <summary>Records the path and returns the fused kernels to call, or null for the composite.</summary>
    private IFusedKernels? FusedFor(FusedOp op, DType dtype)
    {
        var path = PathFor(op, dtype);
        _pathsTaken[(op, dtype)] = path;
        return path == KernelPath.Fused ? (IFusedKernels)Kernels : null;
    }

    // ---- softmax family -----------------------------------------------------------------------------------------

    /// <summary>y = softmax(x) over the last axis; x and y of one float dtype and shape (rank ≥ 1).</summary>
    public void Softmax(Tensor x, Tensor y)
    {
        ValidateRowwise("softmax", x, y);
        if (FusedFor(FusedOp.Softmax, x.DType) is { } f)
        {
            f.Softmax(x, y);
        }
        else
        {
            Composite.Softmax(this, x, y);
        }
    }

    /// <summary>dx = y ⊙ (dy − Σ(dy ⊙ y)) over the last axis; y, dy, dx of one float dtype and shape.</summary>
    public void SoftmaxBackward(Tensor y, Tensor dy, Tensor dx)
    {
        ValidateRowwise("softmax-backward", y, dy, dx);
        if (FusedFor(FusedOp.SoftmaxBackward, y.DType) is { } f)
        {
            f.SoftmaxBackward(y, dy, dx);
        }
        else
        {
            Composite.SoftmaxBackward(this, y, dy, dx);
        }
    }

    /// <summary>y = log_softmax(x) over the last axis.</summary>
    public void LogSoftmax(Tensor x, Tensor y)
    {
        ValidateRowwise("log-softmax", x, y);
        if (FusedFor(FusedOp.LogSoftmax, x.DType) is { } f)
        {
            f.LogSoftmax(x, y);
        }
        else
        {
            Composite.LogSoftmax(this, x, y);
        }
    }

    /// <summary>dx = dy − exp(y) · Σ dy over the last axis, from the forward output y.</summary>
    public void LogSoftmaxBackward(Tensor y, Tensor dy, Tensor dx)
    {
        ValidateRowwise("log-softmax-backward", y, dy, dx);
        if (FusedFor(FusedOp.LogSoftmaxBackward, y.DType) is { } f)
        {
            f.LogSoftmaxBackward(y, dy, dx);
        }
        else
        {
            Composite.LogSoftmaxBackward(this, y, dy, dx);
        }
    }

    // ---- norms ------------------------------------------------------------------------------------------------

    /// <summary>Layer norm over the last axis; see <see cref="IFusedKernels.LayerNorm"/>. weight/bias [C] of x's dtype; mean and rstd F32 with N elements.</summary>
    public void LayerNorm(Tensor x, Tensor weight, Tensor? bias, double eps, Tensor y, Tensor mean, Tensor rstd)
    {
        const string name = "layer-norm";
        int c = ValidateRowwise(name, x, y);
        ValidateChannelVector(name, x, weight, c, "weight");
        if (bias is not null)
        {
            ValidateChannelVector(name, x, bias, c, "bias");
        }
        ValidateRowStatistic(name, x, mean, "mean");
        ValidateRowStatistic(name, x, rstd, "rstd");
        if (FusedFor(FusedOp.LayerNorm, x.DType) is { } f)
        {
            f.LayerNorm(x, weight, bias, eps, y, mean, rstd);
        }
        else
        {
            Composite.LayerNorm(this, x, weight, bias, eps, y, mean, rstd);
        }
    }

    /// <summary>Gradients of <see cref="LayerNorm"/>: dx like x, dweight (and dbias, when the forward had a bias) [C].</summary>
    public void LayerNormBackward(Tensor dy, Tensor x, Tensor weight, Tensor mean, Tensor rstd, Tensor dx, Tensor dweight, Tensor? dbias)
    {
        const string name = "layer-norm-backward";
        int c = ValidateRowwise(name, x, dy, dx);
        ValidateChannelVector(name, x, weight, c, "weight");
        ValidateChannelVector(name, x, dweight, c, "dweight");
        if (dbias is not null)
        {
            ValidateChannelVector(name, x, dbias, c, "dbias");
        }
        ValidateRowStatistic(name, x, mean, "mean");
        ValidateRowStatistic(name, x, rstd, "rstd");
        if (FusedFor(FusedOp.LayerNormBackward, x.DType) is { } f)
        {
            f.LayerNormBackward(dy, x, weight, mean, rstd, dx, dweight, dbias);
        }
        else
        {
            Composite.LayerNormBackward(this, dy, x, weight, mean, rstd, dx, dweight, dbias);
        }
    }

    /// <summary>RMS norm over the last axis; see <see cref="IFusedKernels.RmsNorm"/>. weight [C] of x's dtype; rstd F32 with N elements.</summary>
    public void RmsNorm(Tensor x, Tensor weight, double eps, Tensor y, Tensor rstd)
    {
        const string name = "rms-norm";
        int c = ValidateRowwise(name, x, y);
        ValidateChannelVector(name, x, weight, c, "weight");
        ValidateRowStatistic(name, x, rstd, "rstd");
        if (FusedFor(FusedOp.RmsNorm, x.DType) is { } f)
        {
            f.RmsNorm(x, weight, eps, y, rstd);
        }
        else
        {
            Composite.RmsNorm(this, x, weight, eps, y, rstd);
        }
    }

    /// <summary>Gradients of <see cref="RmsNorm"/>: dx like x, dweight [C].</summary>
    public void RmsNormBackward(Tensor dy, Tensor x, Tensor weight, Tensor rstd, Tensor dx, Tensor dweight)
    {
        const string name = "rms-norm-backward";
        int c = ValidateRowwise(name, x, dy, dx);
        ValidateChannelVector(name, x, weight, c, "weight");
        ValidateChannelVector(name, x, dweight, c, "dweight");
        ValidateRowStatistic(name, x, rstd, "rstd");
        if (FusedFor(FusedOp.RmsNormBackward, x.DType) is { } f)
        {
            f.RmsNormBackward(dy, x, weight, rstd, dx, dweight);
        }
        else
        {
            Composite.RmsNormBackward(this, dy, x, weight, rstd, dx, dweight);
        }
    }

    // ---- cross-entropy and embedding ---------------------------------------------------------------------------

    /// <summary>Softmax cross-entropy per row: logits [N, V] (V ≥ 1), targets [N] I32/I64 (negative = ignored), losses and lse [N] F32.</summary>
    public void CrossEntropy(Tensor logits, Tensor targets, Tensor losses, Tensor lse)
    {
        const string name = "cross-entropy";
        ValidateCrossEntropy(name, logits, targets);
        Check(name, losses, lse);
        ValidateRowStatistic(name, logits, losses, "losses");
        ValidateRowStatistic(name, logits, lse, "lse");
        if (FusedFor(FusedOp.CrossEntropy, logits.DType) is { } f)
        {
            f.CrossEntropy(logits, targets, losses, lse);
        }
        else
        {
            Composite.CrossEntropy(this, logits, targets, losses, lse);
        }
    }

    /// <summary>dlogits [N, V] = (softmax(logits) − onehot(target))·dlosses (zero rows for ignored targets); lse and dlosses [N] F32.</summary>
    public void CrossEntropyBackward(Tensor logits, Tensor targets, Tensor lse, Tensor dlosses, Tensor dlogits)
    {
        const string name = "cross-entropy-backward";
        ValidateCrossEntropy(name, logits, targets);
        Check(name, lse, dlosses, dlogits);
        ValidateRowStatistic(name, logits, lse, "lse");
        ValidateRowStatistic(name, logits, dlosses, "dlosses");
        SameDType(name, logits, dlogits);
        SameShape(name, logits, dlogits);
        if (FusedFor(FusedOp.CrossEntropyBackward, logits.DType) is { } f)
        {
            f.CrossEntropyBackward(logits, targets, lse, dlosses, dlogits);
        }
        else
        {
            Composite.CrossEntropyBackward(this, logits, targets, lse, dlosses, dlogits);
        }
    }

    /// <summary>y = weight [V, C] rows at ids (I32/I64, any shape, values in [0, V)); y is [...ids, C] or [N, C].</summary>
    public void Embedding(Tensor weight, Tensor ids, Tensor y)
    {
        const string name = "embedding";
        ValidateEmbedding(name, weight, ids, y, "y");
        if (FusedFor(FusedOp.Embedding, weight.DType) is { } f)
        {
            f.Embedding(weight, ids, y);
        }
        else
        {
            Composite.Embedding(this, weight, ids, y);
        }
    }

    /// <summary>dweight [V, C] = Σ of the dy rows whose id is v (zero elsewhere); dy is [...ids, C] or [N, C].</summary>
    public void EmbeddingBackward(Tensor dy, Tensor ids, Tensor dweight)
    {
        const string name = "embedding-backward";
        ValidateEmbedding(name, dweight, ids, dy, "dy");
        if (FusedFor(FusedOp.EmbeddingBackward, dweight.DType) is { } f)
        {
            f.EmbeddingBackward(dy, ids, dweight);
        }
        else
        {
            Composite.EmbeddingBackward(this, dy, ids, dweight);
        }
    }

    // ---- rotary and attention ----------------------------------------------------------------------------------

    /// <summary>Rotary embedding (rotate-half) of x [B, T, H, D] (D even) with cos/sin [Tmax, D/2] F32 rows positionOffset..positionOffset+T.</summary>
    public void Rotary(Tensor x, Tensor cos, Tensor sin, int positionOffset, Tensor y)
    {
        ValidateRotary("rotary", x, cos, sin, positionOffset, y);
        if (FusedFor(FusedOp.Rotary, x.DType) is { } f)
        {
            f.Rotary(x, cos, sin, positionOffset, y);
        }
        else
        {
            Composite.Rotary(this, x, cos, sin, positionOffset, y);
        }
    }

    /// <summary>dx from dy by the inverse rotation; shapes as <see cref="Rotary"/>.</summary>
    public void RotaryBackward(Tensor dy, Tensor cos, Tensor sin, int positionOffset, Tensor dx)
    {
        ValidateRotary("rotary-backward", dy, cos, sin, positionOffset, dx);
        if (FusedFor(FusedOp.RotaryBackward, dy.DType) is { } f)
        {
            f.RotaryBackward(dy, cos, sin, positionOffset, dx);
        }
        else
        {
            Composite.RotaryBackward(this, dy, cos, sin, positionOffset, dx);
        }
    }

    /// <summary>Scaled-dot-product attention; see <see cref="IFusedKernels.Attention"/> for shapes (lse [B, H, Tq] F32).</summary>
    public void Attention(Tensor q, Tensor k, Tensor v, bool causal, double scale, Tensor output, Tensor lse)
    {
        const string name = "attention";
        ValidateAttention(name, q, k, v);
        Check(name, output, lse);
        ValidateLike(name, q, output, "output");
        ValidateLse(name, q, lse);
        if (FusedFor(FusedOp.Attention, q.DType) is { } f)
        {
            f.Attention(q, k, v, causal, scale, output, lse);
        }
        else
        {
            Composite.Attention(this, q, k, v, causal, scale, output, lse);
        }
    }

    /// <summary>Gradients of <see cref="Attention"/> from its saved output and lse: dq, dk, dv shaped like q, k, v.</summary>
    public void AttentionBackward(Tensor q, Tensor k, Tensor v, Tensor output, Tensor lse, Tensor dOutput, bool causal, double scale, Tensor dq, Tensor dk, Tensor dv)
    {
        const string name = "attention-backward";
        ValidateAttention(name, q, k, v);
        Check(name, output, lse, dOutput, dq, dk, dv);
        ValidateLike(name, q, output, "output");
        ValidateLike(name, q, dOutput, "dOutput");
        ValidateLike(name, q, dq, "dq");
        ValidateLike(name, k, dk, "dk");
        ValidateLike(name, v, dv, "dv");
        ValidateLse(name, q, lse);
        if (FusedFor(FusedOp.AttentionBackward, q.DType) is { } f)
        {
            f.AttentionBackward(q, k, v, output, lse, dOutput, causal, scale, dq, dk, dv);
        }
        else
        {
            Composite.AttentionBackward(this, q, k, v, output, lse, dOutput, causal, scale, dq, dk, dv);
        }
    }

    /// <summary>dx = dy · op'(x) for op in Relu, Tanh, Sigmoid, GeluErf, GeluTanh, Silu; x, dy, dx of one float dtype and shape.</summary>
    public void ActivationBackward(UnaryOp op, Tensor x, Tensor dy, Tensor dx)
    {
        const string name = "activation-backward";
        if (op is not (UnaryOp.Relu or UnaryOp.Tanh or UnaryOp.Sigmoid or UnaryOp.GeluErf or UnaryOp.GeluTanh or UnaryOp.Silu))
        {
            throw new ArgumentOutOfRangeException(nameof(op), op, $"{name}: supports Relu, Tanh, Sigmoid, GeluErf, GeluTanh and Silu, not {op}");
        }
        Check(name, x, dy, dx);
        RequireFloat(name, x);
        SameDType(name, x, dy);
        SameDType(name, x, dx);
        SameShape(name, x, dy);
        SameShape(name, x, dx);
        if (FusedFor(FusedOp.ActivationBackward, x.DType) is { } f)
        {
            f.ActivationBackward(op, x, dy, dx);
        }
        else
        {
            Composite.ActivationBackward(this, op, x, dy, dx);
        }
    }
}
