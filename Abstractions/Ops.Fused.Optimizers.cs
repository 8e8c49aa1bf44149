namespace Hal;

// Tier-2 optimizer steps and int8 quantisation, and the validation helpers shared by every tier-2 entry point.
// Shapes: param, grad and states of one shape; quantisation x, q, y [R, C] (rows = all but the last axis), scale [R] F32.
public sealed partial class Ops
{
    /// <summary>
    /// AdamW in place (see <see cref="IFusedKernels.AdamW"/>): grad of param's dtype and shape; m and v of param's shape,
    /// F32 (or F64 when param is F64); step ≥ 1.
    /// </summary>
    public void AdamW(Tensor param, Tensor grad, Tensor m, Tensor v, AdamWConfig config, long step)
    {
        ValidateOptimizer("adamw", param, grad, step, m, v);
        if (FusedFor(FusedOp.AdamW, param.DType) is { } f)
        {
            f.AdamW(param, grad, m, v, config, step);
        }
        else
        {
            Composite.AdamW(this, param, grad, m, v, config, step);
        }
    }

    /// <summary>LAMB in place (one tensor = one trust-ratio group); operands as <see cref="AdamW"/>.</summary>
    public void Lamb(Tensor param, Tensor grad, Tensor m, Tensor v, AdamWConfig config, long step)
    {
        ValidateOptimizer("lamb", param, grad, step, m, v);
        if (FusedFor(FusedOp.Lamb, param.DType) is { } f)
        {
            f.Lamb(param, grad, m, v, config, step);
        }
        else
        {
            Composite.Lamb(this, param, grad, m, v, config, step);
        }
    }

    /// <summary>LARS in place (see <see cref="IFusedKernels.Lars"/>); momentumBuffer of param's shape, F32 (or F64 when param is F64).</summary>
    public void Lars(Tensor param, Tensor grad, Tensor momentumBuffer, LarsConfig config)
    {
        ValidateOptimizer("lars", param, grad, 1, momentumBuffer);
        if (FusedFor(FusedOp.Lars, param.DType) is { } f)
        {
            f.Lars(param, grad, momentumBuffer, config);
        }
        else
        {
            Composite.Lars(this, param, grad, momentumBuffer, config);
        }
    }

    /// <summary>Symmetric per-row int8 quantisation: x [R, C] float, q I8 of x's shape, scale F32 with R elements.</summary>
    public void QuantizeInt8(Tensor x, Tensor q, Tensor scale)
    {
        const string name = "quantize-int8";
        Check(name, x, q, scale);
        RequireFloat(name, x);
        RequireRank(name, x, 1);
        RequireDType(name, q, DType.I8, "q");
        SameShape(name, x, q);
        ValidateRowStatistic(name, x, scale, "scale");
        if (FusedFor(FusedOp.QuantizeInt8, x.DType) is { } f)
        {
            f.QuantizeInt8(x, q, scale);
        }
        else
        {
            Composite.QuantizeInt8(this, x, q, scale);
        }
    }

    /// <summary>y [R, C] (float) = q [R, C] (I8) · scale[r] (F32, R elements).</summary>
    public void DequantizeInt8(Tensor q, Tensor scale, Tensor y)
    {
        const string name = "dequantize-int8";
        Check(name, q, scale, y);
        RequireFloat(name, y);
        RequireRank(name, q, 1);
        RequireDType(name, q, DType.I8, "q");
        SameShape(name, q, y);
        ValidateRowStatistic(name, q, scale, "scale");
        if (FusedFor(FusedOp.DequantizeInt8, y.DType) is { } f)
        {
            f.DequantizeInt8(q, scale, y);
        }
        else
        {
            Composite.DequantizeInt8(this, q, scale, y);
        }
    }

    // ---- tier-2 validation helpers ----------------------------------------------------------------------------

    private void RequireFloat(string op, Tensor t)
    {
        if (!t.DType.IsFloatingPoint())
        {
            throw new DTypeNotSupportedException(op, t.DType, BackendName, "this op needs a floating-point dtype");
        }
    }

    private void RequireDType(string op, Tensor t, DType dtype, string what)
    {
        if (t.DType != dtype)
        {
            throw new DTypeNotSupportedException(op, t.DType, BackendName, $"{what} must be {dtype.Name()}");
        }
    }

    private static void RequireRank(string op, Tensor t, int minRank)
    {
        if (t.Rank < minRank)
        {
            throw new ShapeMismatchException(op, t.Shape, t.Shape, $"needs rank ≥ {minRank}");
        }
    }

    private static void RequireShape(string op, Shape expected, Tensor t, string what)
    {
        if (expected != t.Shape)
        {
            throw new ShapeMismatchException(op, expected, t.Shape, $"{what} must be {expected}");
        }
    }

    /// <summary>x and the others: alive, one float dtype, one shape, rank ≥ 1. Returns C (the last dim).</summary>
    private int ValidateRowwise(string op, Tensor x, params ReadOnlySpan<Tensor> others)
    {
        Check(op, x);
        Check(op, others);
        RequireFloat(op, x);
        RequireRank(op, x, 1);
        foreach (var t in others)
        {
            SameDType(op, x, t);
            SameShape(op, x, t);
        }
        return x.Shape[-1];
    }

    /// <summary>A per-channel vector: [C], of x's dtype.</summary>
    private void ValidateChannelVector(string op, Tensor x, Tensor t, int channels, string what)
    {
        Check(op, t);
        SameDType(op, x, t);
        RequireShape(op, new Shape(channels), t, what);
    }

    /// <summary>A per-row F32 statistic of x: shape [N] or x's leading dims, N = product of all but x's last axis.</summary>
    private void ValidateRowStatistic(string op, Tensor x, Tensor t, string what)
    {
        Check(op, t);
        RequireDType(op, t, DType.F32, what);
        var leading = new Shape(x.Shape.Dims[..^1].ToArray());
        var rows = new Shape(checked((int)leading.ElementCount));
        if (t.Shape != rows && t.Shape != leading)
        {
            throw new ShapeMismatchException(op, rows, t.Shape, $"{what} must have one element per row of {x.Shape}");
        }
    }

    private void ValidateCrossEntropy(string op, Tensor logits, Tensor targets)
    {
        Check(op, logits, targets);
        RequireFloat(op, logits);
        RequireRank(op, logits, 1);
        CheckIndexDType(op, targets);
        if (logits.Shape[-1] == 0)
        {
            throw new ShapeMismatchException(op, logits.Shape, logits.Shape, "the vocabulary axis is empty");
        }
        long rows = logits.Shape.Product(0, logits.Rank - 1);
        if (targets.Rank > 1 || targets.ElementCount != rows)
        {
            var leading = new Shape(logits.Shape.Dims[..^1].ToArray());
            if (targets.Shape != leading)
            {
                throw new ShapeMismatchException(op, new Shape(checked((int)rows)), targets.Shape, $"targets must have one element per row of {logits.Shape}");
            }
        }
    }

    /// <summary>table [V, C] float; ids I32/I64; rows of <paramref name="rows"/> are [...ids, C] or [N, C] of table's dtype.</summary>
    private void ValidateEmbedding(string op, Tensor table, Tensor ids, Tensor rows, string what)
    {
        Check(op, table, ids, rows);
        RequireFloat(op, table);
        CheckIndexDType(op, ids);
        SameDType(op, table, rows);
        if (table.Rank != 2)
        {
            throw new ShapeMismatchException(op, new Shape(0, 0), table.Shape, "the embedding table must be [V, C]");
        }
        int c = table.Shape[1];
        var perId = new Shape([.. ids.Shape.Dims, c]);
        var flat = new Shape(checked((int)ids.ElementCount), c);
        if (rows.Shape != perId && rows.Shape != flat)
        {
            throw new ShapeMismatchException(op, perId, rows.Shape, $"{what} must be [...ids, C] or [N, C]");
        }
    }

    private void ValidateRotary(string op, Tensor x, Tensor cos, Tensor sin, int positionOffset, Tensor y)
    {
        Check(op, x, cos, sin, y);
        RequireFloat(op, x);
        SameDType(op, x, y);
        SameShape(op, x, y);
        if (x.Rank != 4 || x.Shape[3] % 2 != 0)
        {
            throw new ShapeMismatchException(op, new Shape(0, 0, 0, 0), x.Shape, "x must be [B, T, H, D] with D even");
        }
        RequireDType(op, cos, DType.F32, "cos");
        RequireDType(op, sin, DType.F32, "sin");
        if (cos.Rank != 2 || cos.Shape[1] != x.Shape[3] / 2)
        {
            throw new ShapeMismatchException(op, new Shape(cos.Rank > 0 ? cos.Shape[0] : 0, x.Shape[3] / 2), cos.Shape, "cos must be [Tmax, D/2]");
        }
        SameShape(op, cos, sin);
        ArgumentOutOfRangeException.ThrowIfNegative(positionOffset);
        if ((long)positionOffset + x.Shape[1] > cos.Shape[0])
        {
            throw new ShapeMismatchException(op, new Shape(positionOffset + x.Shape[1], cos.Shape[1]), cos.Shape,
                $"positions {positionOffset}..{positionOffset + x.Shape[1] - 1} need that many cos/sin rows");
        }
    }

    private void ValidateAttention(string op, Tensor q, Tensor k, Tensor v)
    {
        Check(op, q, k, v);
        RequireFloat(op, q);
        SameDType(op, q, k);
        SameDType(op, q, v);
        if (q.Rank != 4 || k.Rank != 4 || v.Rank != 4)
        {
            throw new ShapeMismatchException(op, q.Shape, k.Shape, "q, k and v must be [B, H, T, D]");
        }
        SameShape(op, k, v);
        int heads = q.Shape[1], kvHeads = k.Shape[1];
        if (k.Shape[0] != q.Shape[0] || k.Shape[3] != q.Shape[3])
        {
            throw new ShapeMismatchException(op, q.Shape, k.Shape, "k and v must have q's batch and head size");
        }
        if (kvHeads == 0 ? heads != 0 : heads % kvHeads != 0)
        {
            throw new ShapeMismatchException(op, q.Shape, k.Shape, $"query heads ({heads}) must be a multiple of key/value heads ({kvHeads})");
        }
    }

    private static void ValidateLike(string op, Tensor model, Tensor t, string what)
    {
        SameDType(op, model, t);
        RequireShape(op, model.Shape, t, what);
    }

    private void ValidateLse(string op, Tensor q, Tensor lse)
    {
        RequireDType(op, lse, DType.F32, "lse");
        RequireShape(op, new Shape(q.Shape[0], q.Shape[1], q.Shape[2]), lse, "lse");
    }

    /// <summary>param float; grad of param's dtype and shape; states of param's shape, F32 or (for F64 params) F64; step ≥ 1.</summary>
    private void ValidateOptimizer(string op, Tensor param, Tensor grad, long step, params ReadOnlySpan<Tensor> states)
    {
        Check(op, param, grad);
        Check(op, states);
        RequireFloat(op, param);
        SameDType(op, param, grad);
        SameShape(op, param, grad);
        foreach (var state in states)
        {
            if (state.DType != DType.F32 && !(state.DType == DType.F64 && param.DType == DType.F64))
            {
                throw new DTypeNotSupportedException(op, state.DType, BackendName, "optimizer states must be f32 (or f64 for f64 parameters)");
            }
            SameShape(op, param, state);
        }
        ArgumentOutOfRangeException.ThrowIfLessThan(step, 1L);
    }
}
