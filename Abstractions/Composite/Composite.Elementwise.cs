namespace Hal;

// Shapes: activations are element-wise on flat [n] views. Embedding: weight [V, C], ids [N], y/dy [N, C].
// Int8 quantisation: x, q, y viewed as [R, C]; scale [R] (F32) viewed as [R, 1].
public static partial class Composite
{
    /// <summary>dx = dy · op'(x) for Relu, Tanh, Sigmoid, GeluErf, GeluTanh and Silu.</summary>
    public static void ActivationBackward(Ops ops, UnaryOp op, Tensor x, Tensor dy, Tensor dx)
    {
        if (x.ElementCount == 0)
        {
            return;
        }
        var ct = ComputeDType(x.DType);
        using var s = new Scratch(ops);
        var xc = s.As(Flat(x), ct);
        var derivative = ActivationDerivative(s, op, xc);
        var dxc = s.Target(Flat(dx), ct);
        ops.Binary(BinaryOp.Mul, s.As(Flat(dy), ct), derivative, dxc);
        s.Store(dxc, dx);
    }

    /// <summary>op'(x) as a new tensor.</summary>
    private static Tensor ActivationDerivative(Scratch s, UnaryOp op, Tensor x)
    {
        var ops = s.Ops;
        switch (op)
        {
            case UnaryOp.Relu:
                // 1 for x > 0, 0 for x ≤ 0.
                return PositiveIndicator(s, s.Unary(UnaryOp.Relu, x));
            case UnaryOp.Tanh:
            {
                var t = s.Unary(UnaryOp.Tanh, x);
                ops.Unary(UnaryOp.Square, t, t);
                return OneMinus(s, t);
            }
            case UnaryOp.Sigmoid:
            {
                var sig = s.Unary(UnaryOp.Sigmoid, x);
                ops.Binary(BinaryOp.Mul, sig, OneMinus(s, sig), sig);
                return sig;
            }
            case UnaryOp.Silu:
            {
                // σ(x)·(1 + x·(1 − σ(x)))
                var sig = s.Unary(UnaryOp.Sigmoid, x);
                var r = OneMinus(s, sig);
                ops.Binary(BinaryOp.Mul, r, x, r);
                s.InPlace(BinaryOp.Add, r, 1);
                ops.Binary(BinaryOp.Mul, r, sig, r);
                return r;
            }
            case UnaryOp.GeluErf:
                return GeluErfDerivative(s, x);
            case UnaryOp.GeluTanh:
                return GeluTanhDerivative(s, x);
            default:
                throw new ArgumentOutOfRangeException(nameof(op), op, "activation-backward supports Relu, Tanh, Sigmoid, GeluErf, GeluTanh and Silu");
        }
    }

    /// <summary>
    /// Φ(x) + x·φ(x). There is no tier-1 erf, so Φ(x) = gelu(x)/x, except where |x| ≤ T (zero, denormals, whose gelu
    /// rounds away): there z = 1 (the indicator of |x| − T ≤ 0) and (gelu(x) + ½·z)/(x + z) = ½ + O(T). T (1e-20 in F64,
    /// 1e-10 in F32) keeps that O(T) error far below the dtype's epsilon while gelu(x)/x stays exact above it.
    /// </summary>
    private static Tensor GeluErfDerivative(Scratch s, Tensor x)
    {
        var ops = s.Ops;
        var excess = s.Unary(UnaryOp.Abs, x);
        s.InPlace(BinaryOp.Sub, excess, x.DType == DType.F64 ? 1e-20 : 1e-10);
        ops.Unary(UnaryOp.Relu, excess, excess);
        var atZero = OneMinus(s, PositiveIndicator(s, excess));
        var numerator = s.Unary(UnaryOp.GeluErf, x);
        var half = s.Binary(BinaryOp.Mul, atZero, 0.5);
        ops.Binary(BinaryOp.Add, numerator, half, numerator);
        var denominator = s.Binary(BinaryOp.Add, x, atZero);
        var cdf = s.Binary(BinaryOp.Div, numerator, denominator);

        var pdf = s.Unary(UnaryOp.Square, x);
        s.InPlace(BinaryOp.Mul, pdf, -0.5);
        ops.Unary(UnaryOp.Exp, pdf, pdf);
        s.InPlace(BinaryOp.Mul, pdf, 1 / Math.Sqrt(2 * Math.PI));
        ops.Binary(BinaryOp.Mul, pdf, x, pdf);
        ops.Binary(BinaryOp.Add, cdf, pdf, cdf);
        return cdf;
    }

    /// <summary>With u = c·(x + a·x³), t = tanh(u): ½(1 + t) + ½x·(1 − t²)·c·(1 + 3a·x²).</summary>
    private static Tensor GeluTanhDerivative(Scratch s, Tensor x)
    {
        const double a = 0.044715;
        double c = Math.Sqrt(2 / Math.PI);
        var ops = s.Ops;
        var x2 = s.Unary(UnaryOp.Square, x);
        var u = s.Binary(BinaryOp.Mul, x2, a);
        s.InPlace(BinaryOp.Add, u, 1);
        ops.Binary(BinaryOp.Mul, u, x, u);
        s.InPlace(BinaryOp.Mul, u, c);
        var t = s.Unary(UnaryOp.Tanh, u);

        // du/dx = c·(1 + 3a·x²), reusing x2.
        s.InPlace(BinaryOp.Mul, x2, 3 * a);
        s.InPlace(BinaryOp.Add, x2, 1);
        s.InPlace(BinaryOp.Mul, x2, c);
        var sech2 = s.Unary(UnaryOp.Square, t);
        ops.Binary(BinaryOp.Sub, s.Scalar(1, x.DType), sech2, sech2);
        ops.Binary(BinaryOp.Mul, sech2, x2, sech2);
        ops.Binary(BinaryOp.Mul, sech2, x, sech2);
        s.InPlace(BinaryOp.Add, t, 1);
        ops.Binary(BinaryOp.Add, t, sech2, t);
        s.InPlace(BinaryOp.Mul, t, 0.5);
        return t;
    }

    /// <summary>y = weight rows at ids (IndexSelect along axis 0).</summary>
    public static void Embedding(Ops ops, Tensor weight, Tensor ids, Tensor y)
    {
        int n = checked((int)ids.ElementCount);
        ops.IndexSelect(weight, 0, ids.Reshape(n), y.Reshape(n, weight.Shape[1]));
    }

    /// <summary>dweight = 0, then IndexAdd of the dy rows at ids (repeated ids accumulate, in F32 for 16-bit).</summary>
    public static void EmbeddingBackward(Ops ops, Tensor dy, Tensor ids, Tensor dweight)
    {
        int n = checked((int)ids.ElementCount);
        int c = dweight.Shape[1];
        var ct = ComputeDType(dweight.DType);
        using var s = new Scratch(ops);
        var dw = s.Target(dweight, ct);
        ops.Fill(dw, 0);
        ops.IndexAdd(s.As(dy.Reshape(n, c), ct), 0, ids.Reshape(n), dw);
        s.Store(dw, dweight);
    }

    /// <summary>
    /// scale = max|x|/127 per row (+1 when the row is all zeros, through the positive indicator of max|x|);
    /// q = clamp(round_half_even(x / scale), −127, 127) divided by the F32 scale that is stored.
    /// </summary>
    public static void QuantizeInt8(Ops ops, Tensor x, Tensor q, Tensor scale)
    {
        var (r, c) = RowsOf(x);
        if (r == 0)
        {
            return;
        }
        if (c == 0)
        {
            ops.Fill(scale, 1);
            return;
        }
        var ct = ComputeDType(x.DType);
        using var s = new Scratch(ops);
        var xc = s.As(x.Reshape(r, c), ct);
        var scaled = s.Unary(UnaryOp.Abs, xc);
        var amax = s.Reduce(ReduceOp.Max, scaled, 1);
        var scaleC = s.Binary(BinaryOp.Div, amax, 127);
        ops.Binary(BinaryOp.Add, scaleC, OneMinus(s, PositiveIndicator(s, amax)), scaleC);
        var scaleRows = scale.Reshape(r, 1);
        s.Store(scaleC, scaleRows);

        // Divide by the stored (F32) scale so that dequantisation uses exactly the scale the values were made with.
        ops.Binary(BinaryOp.Div, xc, s.As(scaleRows, ct), scaled);
        ops.Unary(UnaryOp.Round, scaled, scaled);
        s.InPlace(BinaryOp.Max, scaled, -127);
        s.InPlace(BinaryOp.Min, scaled, 127);
        ops.Cast(scaled, q);
    }

    /// <summary>y = q · scale per row.</summary>
    public static void DequantizeInt8(Ops ops, Tensor q, Tensor scale, Tensor y)
    {
        var (r, c) = RowsOf(q);
        if (q.ElementCount == 0)
        {
            return;
        }
        var ct = ComputeDType(y.DType);
        using var s = new Scratch(ops);
        var yc = s.Target(y.Reshape(r, c), ct);
        ops.Cast(q.Reshape(r, c), yc);
        ops.Binary(BinaryOp.Mul, yc, s.As(scale.Reshape(r, 1), ct), yc);
        s.Store(yc, y);
    }
}
