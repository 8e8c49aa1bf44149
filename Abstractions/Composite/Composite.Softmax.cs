namespace Hal;

// Shapes: x, y, dy, dx viewed as [N, C] (rows = every axis but the last); row statistics are [N, 1] so that they
// broadcast across the row. Cross-entropy: logits [N, V], targets [N] viewed as [N, 1] for Gather/ScatterAdd.
public static partial class Composite
{
    /// <summary>y = softmax(x) over the last axis: exp(x − max) / Σ exp(x − max).</summary>
    public static void Softmax(Ops ops, Tensor x, Tensor y)
    {
        if (x.ElementCount == 0)
        {
            return;
        }
        var (n, c) = RowsOf(x);
        var ct = ComputeDType(x.DType);
        using var s = new Scratch(ops);
        var xc = s.As(x.Reshape(n, c), ct);
        var max = s.Reduce(ReduceOp.Max, xc, 1);
        var yc = s.Target(y.Reshape(n, c), ct);
        ops.Binary(BinaryOp.Sub, xc, max, yc);
        ops.Unary(UnaryOp.Exp, yc, yc);
        var sum = s.Reduce(ReduceOp.Sum, yc, 1);
        ops.Binary(BinaryOp.Div, yc, sum, yc);
        s.Store(yc, y);
    }

    /// <summary>dx = y ⊙ (dy − Σ(dy ⊙ y)) over the last axis.</summary>
    public static void SoftmaxBackward(Ops ops, Tensor y, Tensor dy, Tensor dx)
    {
        if (y.ElementCount == 0)
        {
            return;
        }
        var (n, c) = RowsOf(y);
        var ct = ComputeDType(y.DType);
        using var s = new Scratch(ops);
        var yc = s.As(y.Reshape(n, c), ct);
        var dyc = s.As(dy.Reshape(n, c), ct);
        var dot = s.Reduce(ReduceOp.Sum, s.Binary(BinaryOp.Mul, dyc, yc), 1);
        var dxc = s.Target(dx.Reshape(n, c), ct);
        ops.Binary(BinaryOp.Sub, dyc, dot, dxc);
        ops.Binary(BinaryOp.Mul, dxc, yc, dxc);
        s.Store(dxc, dx);
    }

    /// <summary>y = (x − max) − log Σ exp(x − max) over the last axis.</summary>
    public static void LogSoftmax(Ops ops, Tensor x, Tensor y)
    {
        if (x.ElementCount == 0)
        {
            return;
        }
        var (n, c) = RowsOf(x);
        var ct = ComputeDType(x.DType);
        using var s = new Scratch(ops);
        var xc = s.As(x.Reshape(n, c), ct);
        var max = s.Reduce(ReduceOp.Max, xc, 1);
        var yc = s.Target(y.Reshape(n, c), ct);
        ops.Binary(BinaryOp.Sub, xc, max, yc);
        var sum = s.Reduce(ReduceOp.Sum, s.Unary(UnaryOp.Exp, yc), 1);
        ops.Unary(UnaryOp.Log, sum, sum);
        ops.Binary(BinaryOp.Sub, yc, sum, yc);
        s.Store(yc, y);
    }

    /// <summary>dx = dy − exp(y) · Σ dy over the last axis.</summary>
    public static void LogSoftmaxBackward(Ops ops, Tensor y, Tensor dy, Tensor dx)
    {
        if (y.ElementCount == 0)
        {
            return;
        }
        var (n, c) = RowsOf(y);
        var ct = ComputeDType(y.DType);
        using var s = new Scratch(ops);
        var yc = s.As(y.Reshape(n, c), ct);
        var dyc = s.As(dy.Reshape(n, c), ct);
        var sum = s.Reduce(ReduceOp.Sum, dyc, 1);
        var p = s.Unary(UnaryOp.Exp, yc);
        ops.Binary(BinaryOp.Mul, p, sum, p);
        var dxc = s.Target(dx.Reshape(n, c), ct);
        ops.Binary(BinaryOp.Sub, dyc, p, dxc);
        s.Store(dxc, dx);
    }

    /// <summary>
    /// losses = lse − logits[target] (0 for a negative target), lse = logsumexp(logits) per row.
    /// The target logit is gathered at max(target, 0) and multiplied by the row's validity (1 for target ≥ 0).
    /// </summary>
    public static void CrossEntropy(Ops ops, Tensor logits, Tensor targets, Tensor losses, Tensor lse)
    {
        int n = checked((int)targets.ElementCount);
        if (n == 0)
        {
            return;
        }
        int v = logits.Shape[-1];
        var ct = ComputeDType(logits.DType);
        using var s = new Scratch(ops);
        var xc = s.As(logits.Reshape(n, v), ct);
        // The max is clamped to the lowest finite value (NaN stays NaN) so that a row of −Inf logits gives
        // exp(−Inf) = 0, a sum of 0 and lse = log 0 = −Inf rather than −Inf − (−Inf) = NaN.
        var max = s.Reduce(ReduceOp.Max, xc, 1);
        ops.Binary(BinaryOp.Max, max, s.Scalar(Lowest(ct), ct), max);
        var shifted = s.Binary(BinaryOp.Sub, xc, max);
        ops.Unary(UnaryOp.Exp, shifted, shifted);
        var lseC = s.Reduce(ReduceOp.Sum, shifted, 1);
        ops.Unary(UnaryOp.Log, lseC, lseC);
        ops.Binary(BinaryOp.Add, lseC, max, lseC);

        var t = targets.Reshape(n, 1);
        var (index, _) = TargetIndexAndValidity(s, t, ct);
        var picked = s.Empty(new Shape(n, 1), ct);
        ops.Gather(xc, 1, index, picked);
        var loss = s.Binary(BinaryOp.Sub, lseC, picked);
        // An ignored row's loss is 0 even when its logits hold NaN or ±Inf (a multiplication by the validity would
        // keep NaN·0 = NaN): each loss is scattered into column validity (0 or 1) of a zero [N, 2] tensor, and
        // column 1 is gathered back.
        var slots = s.Full(new Shape(n, 2), 0, ct);
        ops.ScatterAdd(loss, 1, IntegerValidity(s, t), slots);
        ops.Gather(slots, 1, s.Full(new Shape(n, 1), 1, t.DType), loss);
        s.Store(loss, losses);
        s.Store(lseC, lse);
    }

    /// <summary>dlogits = (exp(logits − lse) − onehot(target)) · dlosses, zero rows for ignored targets; the one-hot made by ScatterAdd of the validity.</summary>
    public static void CrossEntropyBackward(Ops ops, Tensor logits, Tensor targets, Tensor lse, Tensor dlosses, Tensor dlogits)
    {
        int n = checked((int)targets.ElementCount);
        if (n == 0)
        {
            return;
        }
        int v = logits.Shape[-1];
        var ct = ComputeDType(logits.DType);
        using var s = new Scratch(ops);
        var xc = s.As(logits.Reshape(n, v), ct);
        var lseC = s.As(lse.Reshape(n, 1), ct);
        var p = s.Target(dlogits.Reshape(n, v), ct);
        ops.Binary(BinaryOp.Sub, xc, lseC, p);
        ops.Unary(UnaryOp.Exp, p, p);

        var t = targets.Reshape(n, 1);
        var (index, valid) = TargetIndexAndValidity(s, t, ct);
        var onehot = s.Full(new Shape(n, v), 0, ct);
        ops.ScatterAdd(valid, 1, index, onehot);
        ops.Binary(BinaryOp.Sub, p, onehot, p);
        ops.Binary(BinaryOp.Mul, p, s.As(dlosses.Reshape(n, 1), ct), p);

        // An ignored row's gradient is 0 even when its logits hold NaN or ±Inf (a multiplication by the validity
        // would keep NaN·0 = NaN): the rows sit under n zero rows, and row r is read back from r + n·validity_r.
        var stacked = s.Full(new Shape(2 * n, v), 0, ct);
        ops.Copy(p, stacked.Slice(n, n));
        var rows = s.Constant(Enumerable.Range(0, n).Select(r => (double)r).ToArray(), new Shape(n, 1), t.DType);
        var source = s.Binary(BinaryOp.Mul, IntegerValidity(s, t), n);
        ops.Binary(BinaryOp.Add, source, rows, source);
        ops.IndexSelect(stacked, 0, source.Reshape(n), p);
        s.Store(p, dlogits);
    }

    /// <summary>
    /// For integer targets t [N, 1]: the gather index max(t, 0) (same integer dtype) and the validity
    /// relu(t + 1) − relu(t) as <paramref name="ct"/>, which is 1 for t ≥ 0 and 0 for t &lt; 0.
    /// </summary>
    private static (Tensor Index, Tensor Valid) TargetIndexAndValidity(Scratch s, Tensor targets, DType ct) =>
        (s.Unary(UnaryOp.Relu, targets), s.As(IntegerValidity(s, targets), ct));

    /// <summary>relu(t + 1) − relu(t) in the targets' integer dtype: 1 for t ≥ 0, 0 for t &lt; 0.</summary>
    private static Tensor IntegerValidity(Scratch s, Tensor targets)
    {
        var index = s.Unary(UnaryOp.Relu, targets);
        var next = s.Binary(BinaryOp.Add, targets, 1);
        s.Ops.Unary(UnaryOp.Relu, next, next);
        s.Ops.Binary(BinaryOp.Sub, next, index, next);
        return next;
    }
}
