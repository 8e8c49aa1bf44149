using Hal;

namespace Hal.Samples.VendorBackend;

/// <summary>
/// Tier 1 of the contract as plain loops: every member of <see cref="IKernels"/>, for every dtype the device declares.
/// Float dtypes compute in double and round once to the output dtype (at least as accurate as the contract's F32
/// arithmetic, so within every bound of the tolerance table); integer arithmetic wraps; casts saturate.
/// There is no tier 2: this class does not implement <see cref="IFusedKernels"/>, so <see cref="Ops"/> serves every
/// fused op through its composite fallback over these kernels.
/// <see cref="Ops"/> has validated dtypes, shapes and devices before any of these runs.
/// </summary>
internal sealed partial class VendorKernels : IKernels
{
    /// <inheritdoc />
    public void Fill(Tensor dst, double value)
    {
        var d = new View(dst);
        for (long i = 0; i < d.Count; i++)
        {
            d.Set(i, value);
        }
    }

    /// <inheritdoc />
    public void Copy(Tensor src, Tensor dst)
    {
        var s = new View(src);
        var d = new View(dst);
        for (long i = 0; i < d.Count; i++)
        {
            d.CopyFrom(s, i, i);
        }
    }

    /// <inheritdoc />
    public void Cast(Tensor src, Tensor dst)
    {
        var s = new View(src);
        var d = new View(dst);
        bool fromFloat = src.DType.IsFloatingPoint();
        for (long i = 0; i < d.Count; i++)
        {
            if (fromFloat)
            {
                d.Set(i, s.Get(i));
            }
            else
            {
                d.SetSaturated(i, s.GetInt(i));
            }
        }
    }

    /// <inheritdoc />
    public void Unary(UnaryOp op, Tensor x, Tensor y)
    {
        var xs = new View(x);
        var ys = new View(y);
        if (x.DType.IsFloatingPoint())
        {
            for (long i = 0; i < ys.Count; i++)
            {
                ys.Set(i, UnaryFloat(op, xs.Get(i)));
            }
            return;
        }
        for (long i = 0; i < ys.Count; i++)
        {
            ys.SetWrapped(i, UnaryInteger(op, xs.GetInt(i)));
        }
    }

    /// <inheritdoc />
    public void Binary(BinaryOp op, Tensor a, Tensor b, Tensor y)
    {
        var av = new View(a);
        var bv = new View(b);
        var yv = new View(y);
        var aAt = Layout.BroadcastMap(a.Shape, y.Shape);
        var bAt = Layout.BroadcastMap(b.Shape, y.Shape);
        // y may be a or b; each element is read before it is written and no later element reads it.
        if (a.DType.IsFloatingPoint())
        {
            for (long i = 0; i < yv.Count; i++)
            {
                yv.Set(i, BinaryFloat(op, av.Get(aAt[i]), bv.Get(bAt[i])));
            }
            return;
        }
        for (long i = 0; i < yv.Count; i++)
        {
            yv.SetWrapped(i, BinaryInteger(op, av.GetInt(aAt[i]), bv.GetInt(bAt[i])));
        }
    }

    private static double UnaryFloat(UnaryOp op, double x) => op switch
    {
        UnaryOp.Neg => -x,
        UnaryOp.Abs => Math.Abs(x),
        UnaryOp.Exp => Math.Exp(x),
        UnaryOp.Log => Math.Log(x),
        UnaryOp.Sqrt => Math.Sqrt(x),
        UnaryOp.Rsqrt => 1 / Math.Sqrt(x),
        UnaryOp.Tanh => Math.Tanh(x),
        UnaryOp.Sigmoid => Sigmoid(x),
        UnaryOp.Relu => double.IsNaN(x) || x > 0 ? x : 0,
        // x → −∞: the factor goes to 0 faster than x grows, so the limit is −0 (−∞ · 0 would be NaN).
        UnaryOp.GeluErf => double.IsNegativeInfinity(x) ? -0.0 : 0.5 * x * (1 + VendorMath.Erf(x / Math.Sqrt(2))),
        UnaryOp.GeluTanh => double.IsNegativeInfinity(x) ? -0.0 : 0.5 * x * (1 + Math.Tanh(Math.Sqrt(2 / Math.PI) * (x + (0.044715 * x * x * x)))),
        UnaryOp.Silu => double.IsNegativeInfinity(x) ? -0.0 : x * Sigmoid(x),
        UnaryOp.Sin => Math.Sin(x),
        UnaryOp.Cos => Math.Cos(x),
        UnaryOp.Round => Math.Round(x, MidpointRounding.ToEven),
        UnaryOp.Square => x * x,
        UnaryOp.Reciprocal => 1 / x,
        _ => throw new ArgumentOutOfRangeException(nameof(op), op, "unknown unary op"),
    };

    /// <summary>1/(1 + e^−x), as e^x/(1 + e^x) for x &lt; 0 so that e^−x cannot overflow and tiny results keep their value.</summary>
    private static double Sigmoid(double x)
    {
        if (x >= 0)
        {
            return 1 / (1 + Math.Exp(-x));
        }
        double e = Math.Exp(x);
        return e / (1 + e);
    }

    private static long UnaryInteger(UnaryOp op, long x) => op switch
    {
        UnaryOp.Neg => unchecked(-x),
        UnaryOp.Abs => x < 0 ? unchecked(-x) : x,
        UnaryOp.Relu => x > 0 ? x : 0,
        UnaryOp.Square => unchecked(x * x),
        _ => throw new DTypeNotSupportedException(op.ToString(), DType.I64, "vendor", "integer dtypes take Neg, Abs, Relu and Square only"),
    };

    private static double BinaryFloat(BinaryOp op, double a, double b) => op switch
    {
        BinaryOp.Add => a + b,
        BinaryOp.Sub => a - b,
        BinaryOp.Mul => a * b,
        BinaryOp.Div => a / b,
        BinaryOp.Max => double.IsNaN(a) || double.IsNaN(b) ? double.NaN : Math.Max(a, b),
        BinaryOp.Min => double.IsNaN(a) || double.IsNaN(b) ? double.NaN : Math.Min(a, b),
        BinaryOp.Pow => Math.Pow(a, b),
        _ => throw new ArgumentOutOfRangeException(nameof(op), op, "unknown binary op"),
    };

    private static long BinaryInteger(BinaryOp op, long a, long b) => op switch
    {
        BinaryOp.Add => unchecked(a + b),
        BinaryOp.Sub => unchecked(a - b),
        BinaryOp.Mul => unchecked(a * b),
        // Truncates toward zero; a division by zero gives 0; MinValue / −1 wraps instead of trapping.
        BinaryOp.Div => b == 0 ? 0 : b == -1 ? unchecked(-a) : a / b,
        BinaryOp.Max => Math.Max(a, b),
        BinaryOp.Min => Math.Min(a, b),
        _ => throw new DTypeNotSupportedException(op.ToString(), DType.I64, "vendor", "integer dtypes do not take this op"),
    };
}
