namespace Hal;

// Shapes: x, y, dy, dx viewed as [N, C]; weight, bias, dweight, dbias [C] (broadcast over rows, or viewed as
// [1, C] when reduced over rows); mean and rstd [N] (F32) viewed as [N, 1].
public static partial class Composite
{
    /// <summary>y = (x − mean) · rstd · weight (+ bias); mean and rstd (biased variance) written as F32.</summary>
    public static void LayerNorm(Ops ops, Tensor x, Tensor weight, Tensor? bias, double eps, Tensor y, Tensor mean, Tensor rstd)
    {
        var (n, c) = RowsOf(x);
        if (n == 0)
        {
            return;
        }
        var ct = ComputeDType(x.DType);
        using var s = new Scratch(ops);
        var xc = s.As(x.Reshape(n, c), ct);
        var meanC = s.Reduce(ReduceOp.Mean, xc, 1);
        var centered = s.Binary(BinaryOp.Sub, xc, meanC);
        var variance = s.Reduce(ReduceOp.Mean, s.Unary(UnaryOp.Square, centered), 1);
        s.InPlace(BinaryOp.Add, variance, eps);
        ops.Unary(UnaryOp.Rsqrt, variance, variance);
        var rstdC = variance;

        var yc = s.Target(y.Reshape(n, c), ct);
        ops.Binary(BinaryOp.Mul, centered, rstdC, yc);
        ops.Binary(BinaryOp.Mul, yc, s.As(weight.Reshape(c), ct), yc);
        if (bias is not null)
        {
            ops.Binary(BinaryOp.Add, yc, s.As(bias.Reshape(c), ct), yc);
        }
        s.Store(yc, y);
        s.Store(meanC, mean);
        s.Store(rstdC, rstd);
    }

    /// <summary>
    /// With x̂ = (x − mean)·rstd and g = dy ⊙ weight: dx = rstd·(g − mean(g) − x̂·mean(g ⊙ x̂)),
    /// dweight = Σ_rows dy ⊙ x̂, dbias = Σ_rows dy.
    /// </summary>
    public static void LayerNormBackward(Ops ops, Tensor dy, Tensor x, Tensor weight, Tensor mean, Tensor rstd, Tensor dx, Tensor dweight, Tensor? dbias)
    {
        var (n, c) = RowsOf(x);
        var ct = ComputeDType(x.DType);
        using var s = new Scratch(ops);
        var xc = s.As(x.Reshape(n, c), ct);
        var dyc = s.As(dy.Reshape(n, c), ct);
        var rstdC = s.As(rstd.Reshape(n, 1), ct);
        var xhat = s.Binary(BinaryOp.Sub, xc, s.As(mean.Reshape(n, 1), ct));
        ops.Binary(BinaryOp.Mul, xhat, rstdC, xhat);

        var product = s.Binary(BinaryOp.Mul, dyc, xhat);
        var dw = s.Target(dweight.Reshape(1, c), ct);
        ops.Reduce(ReduceOp.Sum, product, 0, dw);
        s.Store(dw, dweight);
        if (dbias is not null)
        {
            var db = s.Target(dbias.Reshape(1, c), ct);
            ops.Reduce(ReduceOp.Sum, dyc, 0, db);
            s.Store(db, dbias);
        }
        if (n == 0)
        {
            return;
        }

        var g = s.Binary(BinaryOp.Mul, dyc, s.As(weight.Reshape(c), ct));
        var meanG = s.Reduce(ReduceOp.Mean, g, 1);
        ops.Binary(BinaryOp.Mul, g, xhat, product);
        var meanGx = s.Reduce(ReduceOp.Mean, product, 1);
        var dxc = s.Target(dx.Reshape(n, c), ct);
        ops.Binary(BinaryOp.Mul, xhat, meanGx, dxc);
        ops.Binary(BinaryOp.Sub, g, dxc, dxc);
        ops.Binary(BinaryOp.Sub, dxc, meanG, dxc);
        ops.Binary(BinaryOp.Mul, dxc, rstdC, dxc);
        s.Store(dxc, dx);
    }

    /// <summary>y = x · rstd · weight with rstd = 1/√(mean(x²) + eps), written as F32.</summary>
    public static void RmsNorm(Ops ops, Tensor x, Tensor weight, double eps, Tensor y, Tensor rstd)
    {
        var (n, c) = RowsOf(x);
        if (n == 0)
        {
            return;
        }
        var ct = ComputeDType(x.DType);
        using var s = new Scratch(ops);
        var xc = s.As(x.Reshape(n, c), ct);
        var rstdC = s.Reduce(ReduceOp.Mean, s.Unary(UnaryOp.Square, xc), 1);
        s.InPlace(BinaryOp.Add, rstdC, eps);
        ops.Unary(UnaryOp.Rsqrt, rstdC, rstdC);
        var yc = s.Target(y.Reshape(n, c), ct);
        ops.Binary(BinaryOp.Mul, xc, rstdC, yc);
        ops.Binary(BinaryOp.Mul, yc, s.As(weight.Reshape(c), ct), yc);
        s.Store(yc, y);
        s.Store(rstdC, rstd);
    }

    /// <summary>With x̂ = x·rstd and g = dy ⊙ weight: dx = rstd·(g − x̂·mean(g ⊙ x̂)), dweight = Σ_rows dy ⊙ x̂.</summary>
    public static void RmsNormBackward(Ops ops, Tensor dy, Tensor x, Tensor weight, Tensor rstd, Tensor dx, Tensor dweight)
    {
        var (n, c) = RowsOf(x);
        var ct = ComputeDType(x.DType);
        using var s = new Scratch(ops);
        var xc = s.As(x.Reshape(n, c), ct);
        var dyc = s.As(dy.Reshape(n, c), ct);
        var rstdC = s.As(rstd.Reshape(n, 1), ct);
        var xhat = s.Binary(BinaryOp.Mul, xc, rstdC);

        var product = s.Binary(BinaryOp.Mul, dyc, xhat);
        var dw = s.Target(dweight.Reshape(1, c), ct);
        ops.Reduce(ReduceOp.Sum, product, 0, dw);
        s.Store(dw, dweight);
        if (n == 0)
        {
            return;
        }

        var g = s.Binary(BinaryOp.Mul, dyc, s.As(weight.Reshape(c), ct));
        ops.Binary(BinaryOp.Mul, g, xhat, product);
        var meanGx = s.Reduce(ReduceOp.Mean, product, 1);
        var dxc = s.Target(dx.Reshape(n, c), ct);
        ops.Binary(BinaryOp.Mul, xhat, meanGx, dxc);
        ops.Binary(BinaryOp.Sub, g, dxc, dxc);
        ops.Binary(BinaryOp.Mul, dxc, rstdC, dxc);
        s.Store(dxc, dx);
    }
}
