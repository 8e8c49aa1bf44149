namespace Hal;

// Shapes: param, grad and every state viewed as flat [n]; norms are [1] (a [1, n] view reduced along axis 1).
// Computation is in the compute dtype (F64 for F64 params, F32 otherwise); states of another dtype are cast in and back.
public static partial class Composite
{
    /// <summary>AdamW in place: p −= lr·(m̂/(√v̂ + eps) + wd·p).</summary>
    public static void AdamW(Ops ops, Tensor param, Tensor grad, Tensor m, Tensor v, AdamWConfig config, long step)
    {
        if (param.ElementCount == 0)
        {
            return;
        }
        var ct = ComputeDType(param.DType);
        using var s = new Scratch(ops);
        var (p, g, mc, vc) = OptimizerOperands(s, param, grad, m, v, ct);
        var update = AdamUpdate(s, p, g, mc, vc, config, step);
        s.InPlace(BinaryOp.Mul, update, config.LearningRate);
        ops.Binary(BinaryOp.Sub, p, update, p);
        s.Store(p, param);
        s.Store(mc, m);
        s.Store(vc, v);
    }

    /// <summary>LAMB in place: p −= lr·r·u with u the AdamW update and r = ‖p‖/‖u‖ (1 when either norm is 0).</summary>
    public static void Lamb(Ops ops, Tensor param, Tensor grad, Tensor m, Tensor v, AdamWConfig config, long step)
    {
        if (param.ElementCount == 0)
        {
            return;
        }
        var ct = ComputeDType(param.DType);
        using var s = new Scratch(ops);
        var (p, g, mc, vc) = OptimizerOperands(s, param, grad, m, v, ct);
        var update = AdamUpdate(s, p, g, mc, vc, config, step);
        var paramNorm = Norm(s, p);
        var updateNorm = Norm(s, update);

        // r = both·‖p‖/(‖u‖ + 1 − both) + (1 − both), both = [‖p‖ > 0]·[‖u‖ > 0]: the ratio, or 1, with no host branch.
        var both = PositiveIndicator(s, paramNorm);
        ops.Binary(BinaryOp.Mul, both, PositiveIndicator(s, updateNorm), both);
        var neither = OneMinus(s, both);
        var ratio = s.Binary(BinaryOp.Add, updateNorm, neither);
        ops.Binary(BinaryOp.Div, paramNorm, ratio, ratio);
        ops.Binary(BinaryOp.Mul, ratio, both, ratio);
        ops.Binary(BinaryOp.Add, ratio, neither, ratio);
        s.InPlace(BinaryOp.Mul, ratio, config.LearningRate);

        ops.Binary(BinaryOp.Mul, update, ratio, update);
        ops.Binary(BinaryOp.Sub, p, update, p);
        s.Store(p, param);
        s.Store(mc, m);
        s.Store(vc, v);
    }

    /// <summary>
    /// LARS in place: local = trust·‖p‖/(‖g‖ + wd·‖p‖ + eps) (1 when either norm is 0); buf = momentum·buf + local·(g + wd·p); p −= lr·buf.
    /// </summary>
    public static void Lars(Ops ops, Tensor param, Tensor grad, Tensor momentumBuffer, LarsConfig config)
    {
        if (param.ElementCount == 0)
        {
            return;
        }
        var ct = ComputeDType(param.DType);
        using var s = new Scratch(ops);
        var p = s.As(Flat(param), ct);
        var g = s.As(Flat(grad), ct);
        var buf = s.As(Flat(momentumBuffer), ct);
        var paramNorm = Norm(s, p);
        var gradNorm = Norm(s, g);

        // local = both·trust·‖p‖/(‖g‖ + wd·‖p‖ + eps + 1 − both) + (1 − both), both = [‖p‖ > 0]·[‖g‖ > 0].
        var both = PositiveIndicator(s, paramNorm);
        ops.Binary(BinaryOp.Mul, both, PositiveIndicator(s, gradNorm), both);
        var neither = OneMinus(s, both);
        var denominator = s.Binary(BinaryOp.Mul, paramNorm, config.WeightDecay);
        ops.Binary(BinaryOp.Add, denominator, gradNorm, denominator);
        s.InPlace(BinaryOp.Add, denominator, config.Epsilon);
        ops.Binary(BinaryOp.Add, denominator, neither, denominator);
        var local = s.Binary(BinaryOp.Mul, paramNorm, config.TrustCoefficient);
        ops.Binary(BinaryOp.Div, local, denominator, local);
        ops.Binary(BinaryOp.Mul, local, both, local);
        ops.Binary(BinaryOp.Add, local, neither, local);

        var direction = s.Binary(BinaryOp.Mul, p, config.WeightDecay);
        ops.Binary(BinaryOp.Add, direction, g, direction);
        ops.Binary(BinaryOp.Mul, direction, local, direction);
        s.InPlace(BinaryOp.Mul, buf, config.Momentum);
        ops.Binary(BinaryOp.Add, buf, direction, buf);
        var stepTensor = s.Binary(BinaryOp.Mul, buf, config.LearningRate);
        ops.Binary(BinaryOp.Sub, p, stepTensor, p);
        s.Store(p, param);
        s.Store(buf, momentumBuffer);
    }

    private static (Tensor P, Tensor G, Tensor M, Tensor V) OptimizerOperands(Scratch s, Tensor param, Tensor grad, Tensor m, Tensor v, DType ct) =>
        (s.As(Flat(param), ct), s.As(Flat(grad), ct), s.As(Flat(m), ct), s.As(Flat(v), ct));

    /// <summary>Updates m and v in place and returns u = m̂/(√v̂ + eps) + wd·p, with the bias corrections 1 − β^step.</summary>
    private static Tensor AdamUpdate(Scratch s, Tensor p, Tensor g, Tensor m, Tensor v, AdamWConfig config, long step)
    {
        var ops = s.Ops;
        var term = s.Binary(BinaryOp.Mul, g, 1 - config.Beta1);
        s.InPlace(BinaryOp.Mul, m, config.Beta1);
        ops.Binary(BinaryOp.Add, m, term, m);
        ops.Unary(UnaryOp.Square, g, term);
        s.InPlace(BinaryOp.Mul, term, 1 - config.Beta2);
        s.InPlace(BinaryOp.Mul, v, config.Beta2);
        ops.Binary(BinaryOp.Add, v, term, v);

        double correction1 = 1 - Math.Pow(config.Beta1, step);
        double correction2 = 1 - Math.Pow(config.Beta2, step);
        var denominator = s.Binary(BinaryOp.Div, v, correction2);
        ops.Unary(UnaryOp.Sqrt, denominator, denominator);
        s.InPlace(BinaryOp.Add, denominator, config.Epsilon);
        var update = s.Binary(BinaryOp.Div, m, correction1);
        ops.Binary(BinaryOp.Div, update, denominator, update);
        if (config.WeightDecay != 0)
        {
            ops.Binary(BinaryOp.Mul, p, s.Scalar(config.WeightDecay, p.DType), term);
            ops.Binary(BinaryOp.Add, update, term, update);
        }
        return update;
    }

    /// <summary>‖t‖₂ of a flat [n] tensor, as a [1] tensor: √(Σ t²) over a [1, n] view.</summary>
    private static Tensor Norm(Scratch s, Tensor t)
    {
        var squares = s.Unary(UnaryOp.Square, t.Reshape(1, checked((int)t.ElementCount)));
        var sum = s.Reduce(ReduceOp.Sum, squares, 1);
        s.Ops.Unary(UnaryOp.Sqrt, sum, sum);
        return sum.Reshape(1);
    }
}
