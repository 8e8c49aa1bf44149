using System.Numerics.Tensors;
using System.Diagnostics;
using System.Runtime.Intrinsics;

namespace Hal.Backends.Cpu;

/// <summary>
/// One element-wise unary op: a scalar form for F32 and F64 and, when <see cref="IsVectorized"/>, 256- and 128-bit F32
/// forms. Transcendental F32 ops either run span kernels (<see cref="HasSpanF32"/>: the backend's vector exp, ≤ 2 ULP; TensorPrimitives where
/// its measured error is inside the bounds: log ≤ 1.9, sin/cos ≤ 0.6 ULP over 4M samples each) or
/// evaluate in double and round once, which keeps them within 1 ULP.
/// </summary>
internal interface IUnaryOp
{
    static virtual bool HasSpanF32 => false;

    static virtual void Invoke(ReadOnlySpan<float> x, Span<float> y) => throw new UnreachableException();

    static abstract float Invoke(float x);

    static abstract double Invoke(double x);

    static virtual bool IsVectorized => false;

    static virtual Vector256<float> Invoke(Vector256<float> x) => throw new UnreachableException();

    static virtual Vector128<float> Invoke(Vector128<float> x) => throw new UnreachableException();
}

internal readonly struct NegOp : IUnaryOp
{
    public static bool IsVectorized => true;
    public static float Invoke(float x) => -x;
    public static double Invoke(double x) => -x;
    public static Vector256<float> Invoke(Vector256<float> x) => -x;
    public static Vector128<float> Invoke(Vector128<float> x) => -x;
}

internal readonly struct AbsOp : IUnaryOp
{
    public static bool IsVectorized => true;
    public static float Invoke(float x) => MathF.Abs(x);
    public static double Invoke(double x) => Math.Abs(x);
    public static Vector256<float> Invoke(Vector256<float> x) => Vector256.Abs(x);
    public static Vector128<float> Invoke(Vector128<float> x) => Vector128.Abs(x);
}

internal readonly struct ReluOp : IUnaryOp
{
    public static bool IsVectorized => true;

    // Max propagates NaN, as relu(NaN) should.
    public static float Invoke(float x) => float.Max(x, 0f);
    public static double Invoke(double x) => double.Max(x, 0d);
    public static Vector256<float> Invoke(Vector256<float> x) => Vector256.Max(x, Vector256<float>.Zero);
    public static Vector128<float> Invoke(Vector128<float> x) => Vector128.Max(x, Vector128<float>.Zero);
}

internal readonly struct SquareOp : IUnaryOp
{
    public static bool IsVectorized => true;
    public static float Invoke(float x) => x * x;
    public static double Invoke(double x) => x * x;
    public static Vector256<float> Invoke(Vector256<float> x) => x * x;
    public static Vector128<float> Invoke(Vector128<float> x) => x * x;
}

internal readonly struct SqrtOp : IUnaryOp
{
    public static bool IsVectorized => true;
    public static float Invoke(float x) => MathF.Sqrt(x);
    public static double Invoke(double x) => Math.Sqrt(x);
    public static Vector256<float> Invoke(Vector256<float> x) => Vector256.Sqrt(x);
    public static Vector128<float> Invoke(Vector128<float> x) => Vector128.Sqrt(x);
}

internal readonly struct RsqrtOp : IUnaryOp
{
    public static bool IsVectorized => true;

    // 1/sqrt(x) with two correct roundings: within 1 ULP (the approximate rsqrt instruction is not).
    public static float Invoke(float x) => 1f / MathF.Sqrt(x);
    public static double Invoke(double x) => 1d / Math.Sqrt(x);
    public static Vector256<float> Invoke(Vector256<float> x) => Vector256<float>.One / Vector256.Sqrt(x);
    public static Vector128<float> Invoke(Vector128<float> x) => Vector128<float>.One / Vector128.Sqrt(x);
}

internal readonly struct ReciprocalOp : IUnaryOp
{
    public static bool IsVectorized => true;
    public static float Invoke(float x) => 1f / x;
    public static double Invoke(double x) => 1d / x;
    public static Vector256<float> Invoke(Vector256<float> x) => Vector256<float>.One / x;
    public static Vector128<float> Invoke(Vector128<float> x) => Vector128<float>.One / x;
}

internal readonly struct RoundOp : IUnaryOp
{
    public static bool IsVectorized => true;
    public static float Invoke(float x) => MathF.Round(x, MidpointRounding.ToEven);
    public static double Invoke(double x) => Math.Round(x, MidpointRounding.ToEven);
    public static Vector256<float> Invoke(Vector256<float> x) => Vector256.Round(x);
    public static Vector128<float> Invoke(Vector128<float> x) => Vector128.Round(x);
}

internal readonly struct ExpOp : IUnaryOp
{
    public static bool HasSpanF32 => true;
    public static void Invoke(ReadOnlySpan<float> x, Span<float> y) => CpuExp.Exp(x, y);
    public static float Invoke(float x) => (float)Math.Exp(x);
    public static double Invoke(double x) => Math.Exp(x);
}

internal readonly struct LogOp : IUnaryOp
{
    public static bool HasSpanF32 => true;
    public static void Invoke(ReadOnlySpan<float> x, Span<float> y) => TensorPrimitives.Log(x, y);
    public static float Invoke(float x) => (float)Math.Log(x);
    public static double Invoke(double x) => Math.Log(x);
}

internal readonly struct SinOp : IUnaryOp
{
    public static bool HasSpanF32 => true;
    public static void Invoke(ReadOnlySpan<float> x, Span<float> y) => TensorPrimitives.Sin(x, y);
    public static float Invoke(float x) => (float)Math.Sin(x);
    public static double Invoke(double x) => Math.Sin(x);
}

internal readonly struct CosOp : IUnaryOp
{
    public static bool HasSpanF32 => true;
    public static void Invoke(ReadOnlySpan<float> x, Span<float> y) => TensorPrimitives.Cos(x, y);
    public static float Invoke(float x) => (float)Math.Cos(x);
    public static double Invoke(double x) => Math.Cos(x);
}

internal readonly struct TanhOp : IUnaryOp
{
    public static bool HasSpanF32 => true;
    public static void Invoke(ReadOnlySpan<float> x, Span<float> y) => ExpBased.Tanh(x, y);
    public static float Invoke(float x) => (float)Math.Tanh(x);
    public static double Invoke(double x) => Math.Tanh(x);
}

internal readonly struct SigmoidOp : IUnaryOp
{
    public static bool HasSpanF32 => true;

    /// <summary>1/(1 + e^(−x)) with the backend's vector exp (≤ 2 ULP), one add and one divide: ≤ 4 ULP.</summary>
    public static void Invoke(ReadOnlySpan<float> x, Span<float> y) => ExpBased.Apply(x, y, silu: false);
    public static float Invoke(float x) => (float)CpuMath.Sigmoid(x);
    public static double Invoke(double x) => CpuMath.Sigmoid(x);
}

internal readonly struct SiluOp : IUnaryOp
{
    public static bool HasSpanF32 => true;

    /// <summary>x/(1 + e^(−x)), one rounding after the exp: ≤ 4 ULP.</summary>
    public static void Invoke(ReadOnlySpan<float> x, Span<float> y) => ExpBased.Apply(x, y, silu: true);
    public static float Invoke(float x) => (float)CpuMath.Silu(x);
    public static double Invoke(double x) => CpuMath.Silu(x);
}

internal readonly struct GeluTanhOp : IUnaryOp
{
    public static bool HasSpanF32 => true;

    /// <summary>Vector exp-based form (<see cref="CpuGeluTanh"/>), within 8 ULP + γ(6)·|x|.</summary>
    public static unsafe void Invoke(ReadOnlySpan<float> x, Span<float> y)
    {
        fixed (float* px = x, py = y)
        {
            CpuGeluTanh.Forward(px, py, x.Length);
        }
    }

    public static float Invoke(float x) => (float)CpuMath.GeluTanh(x);
    public static double Invoke(double x) => CpuMath.GeluTanh(x);
}

internal readonly struct GeluErfOp : IUnaryOp
{
    public static float Invoke(float x) => CpuMath.GeluErfF32(x);
    public static double Invoke(double x) => CpuMath.GeluErf(x);
}

/// <summary>
/// Sigmoid, SiLU and tanh over F32 spans from a vectorised exp. For sigmoid and SiLU: Below x = −80, e^(−x) overflows F32 while the result is
/// still a (subnormal) number, so those elements, and NaN, are recomputed in double.
/// </summary>
internal static class ExpBased
{
    private const int Block = 512;
    private const float FallbackBelow = -80f;

    /// <summary>
    /// tanh for F32 from a double exp: sign(x)·(1 − e)/(1 + e) with e = e^(−2|x|), where 1 − e costs at most
    /// 1e-16/(2|x|) relative, so below |x| = 1e-4 the series x − x³/3 takes over. About 0.5 ULP in F32.
    /// </summary>
    public static void Tanh(ReadOnlySpan<float> x, Span<float> y)
    {
        Span<double> e = stackalloc double[Block];
        for (int start = 0; start < x.Length; start += Block)
        {
            int m = Math.Min(Block, x.Length - start);
            var xs = x.Slice(start, m);
            var ys = y.Slice(start, m);
            var es = e[..m];
            for (int j = 0; j < m; j++)
            {
                es[j] = -2.0 * Math.Abs((double)xs[j]);
            }
            TensorPrimitives.Exp(es, es);
            for (int j = 0; j < m; j++)
            {
                double v = xs[j];
                double a = Math.Abs(v);
                double t = a < 1e-4 ? v - (v * v * v / 3) : Math.CopySign((1 - es[j]) / (1 + es[j]), v);
                ys[j] = (float)t;
            }
        }
    }

    public static void Apply(ReadOnlySpan<float> x, Span<float> y, bool silu)
    {
        Span<float> denominator = stackalloc float[Block];
        Span<float> input = stackalloc float[Block];
        for (int start = 0; start < x.Length; start += Block)
        {
            int m = Math.Min(Block, x.Length - start);
            var xs = x.Slice(start, m);
            var ys = y.Slice(start, m);
            var den = denominator[..m];
            var inp = input[..m];
            // y may be x: keep the inputs for the fallback pass.
            xs.CopyTo(inp);
            TensorPrimitives.Negate(inp, den);
            CpuExp.Exp(den, den);
            TensorPrimitives.Add(den, 1f, den);
            if (silu)
            {
                TensorPrimitives.Divide(inp, den, ys);
            }
            else
            {
                TensorPrimitives.Divide(1f, den, ys);
            }
            for (int j = 0; j < m; j++)
            {
                float v = inp[j];
                if (!(v >= FallbackBelow))
                {
                    ys[j] = silu ? (float)CpuMath.Silu(v) : (float)CpuMath.Sigmoid(v);
                }
            }
        }
    }
}
