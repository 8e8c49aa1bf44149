using System.Numerics;

namespace Hal.Backends.Cpu;

// Backward of the element-wise activations: dx = dy · op'(x), element by element over tensors of any shape.
internal sealed partial class CpuKernels
{
    private const double SqrtTwoOverPi = 0.79788456080286536;
    private const double GeluTanhCubic = 0.044715;
    private const double InverseSqrtTwo = 0.70710678118654752;
    private const double InverseSqrtTwoPi = 0.39894228040143268;

    public void ActivationBackward(UnaryOp op, Tensor x, Tensor dy, Tensor dx)
    {
        if (op is not (UnaryOp.Relu or UnaryOp.Tanh or UnaryOp.Sigmoid or UnaryOp.GeluErf or UnaryOp.GeluTanh or UnaryOp.Silu))
        {
            throw new NotSupportedException($"ActivationBackward has no {op}; it covers Relu, Tanh, Sigmoid, GeluErf, GeluTanh and Silu");
        }
        if (x.DType.Is16Bit())
        {
            ViaF32Rows([], [x, dy, dx], [false, false, true], RowsCols(x).Rows, (_, r) => ActivationBackward(op, r[0], r[1], r[2]));
        }
        else if (x.DType == DType.F64)
        {
            ActivationBackwardCore<double>(op, x, dy, dx);
        }
        else
        {
            ActivationBackwardCore<float>(op, x, dy, dx);
        }
    }

    private unsafe void ActivationBackwardCore<T>(UnaryOp op, Tensor x, Tensor dy, Tensor dx)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        nint px = (nint)Ptr(x), pdy = (nint)Ptr(dy), pdx = (nint)Ptr(dx);
        if (typeof(T) == typeof(float) && op == UnaryOp.GeluTanh)
        {
            // The vector form costs about a nanosecond per element; the generic loop below, tens.
            CpuParallel.For(Threads, x.ElementCount, (start, end) =>
                CpuGeluTanh.Backward((float*)px + start, (float*)pdy + start, (float*)pdx + start, end - start),
                alignItems: CpuParallel.LineItems(sizeof(float)));
            return;
        }
        // GELU-erf's erf costs tens of operations per element; the others a handful.
        long cost = op == UnaryOp.GeluErf ? 32 : 4;
        ParallelFor(x.ElementCount, cost, (start, end) =>
        {
            T* xs = (T*)px, dys = (T*)pdy, dxs = (T*)pdx;
            for (long i = start; i < end; i++)
            {
                dxs[i] = dys[i] * Derivative(op, xs[i]);
            }
        });
    }

    /// <summary>
    /// σ(x) = 1/(1 + e^−x), evaluated as e^x/(1 + e^x) for x &lt; 0 so that e^−x cannot overflow: for x below about −88
    /// (F32) the result is small but representable, where 1/(1 + ∞) would flush it to 0.
    /// </summary>
    private static T Sigmoid<T>(T x)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (x < T.Zero)
        {
            T e = T.Exp(x);
            return e / (T.One + e);
        }
        return T.One / (T.One + T.Exp(-x));
    }

    /// <summary>op'(x).</summary>
    private static T Derivative<T>(UnaryOp op, T x)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        T one = T.One, half = T.CreateTruncating(0.5);
        switch (op)
        {
            case UnaryOp.Relu:
                // NaN propagates, as through every other derivative here.
                return x > T.Zero ? one : T.IsNaN(x) ? x : T.Zero;
            case UnaryOp.Tanh:
                {
                    T t = T.Tanh(x);
                    return one - (t * t);
                }
            case UnaryOp.Sigmoid:
                {
                    T s = Sigmoid(x);
                    return s * (one - s);
                }
            case UnaryOp.Silu:
                {
                    // Where s saturates to 0 or 1 the x·(1 − s) term is 0 (written out so ±Inf·0 cannot make a NaN).
                    T s = Sigmoid(x);
                    return s == T.Zero ? T.Zero : s == one ? one : s * (one + (x * (one - s)));
                }
            case UnaryOp.GeluTanh:
                {
                    // d/dx ½x(1 + tanh u), u = k(x + c·x³): ½(1 + t) + ½x(1 − t²)·k(1 + 3c·x²).
                    T k = T.CreateTruncating(SqrtTwoOverPi), c = T.CreateTruncating(GeluTanhCubic);
                    T x2 = x * x;
                    T t = T.Tanh(k * (x + (c * x2 * x)));
                    T sech2 = one - (t * t);
                    T tail = sech2 == T.Zero ? T.Zero : half * x * sech2 * k * (one + (T.CreateTruncating(3) * c * x2));
                    return (half * (one + t)) + tail;
                }
            default:
                {
                    // d/dx x·Φ(x) = Φ(x) + x·φ(x), Φ(x) = ½(1 + erf(x/√2)), φ(x) = e^(−x²/2)/√(2π).
                    // erf in double for both widths: one rounding to float, within 1 ULP.
                    T erf = typeof(T) == typeof(double)
                        ? T.CreateTruncating(CpuMath.Erf(double.CreateTruncating(x) * InverseSqrtTwo))
                        : T.CreateTruncating((float)CpuMath.Erf(float.CreateTruncating(x) * (float)InverseSqrtTwo));
                    T pdf = T.Exp(-half * x * x) * T.CreateTruncating(InverseSqrtTwoPi);
                    return (half * (one + erf)) + (pdf == T.Zero ? T.Zero : x * pdf);
                }
        }
    }
}
