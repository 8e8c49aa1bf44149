namespace Hal;

// Tier-2 optimizer steps and int8 quantisation.
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
}
