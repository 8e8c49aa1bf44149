using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Hal.Backends.Cpu;

// Legend: x, y, dy, dx are F32 arrays of n elements, read 16 (AVX-512) or 8 (AVX2) at a time and computed as doubles.

/// <summary>
/// GELU-tanh and its derivative for F32, vectorised, computed in double and rounded once. With u = k(x + c·x³) and
/// a = e^(−2|u|) ≤ 1 (never overflows): σ(2u) = 1/(1 + a) for u ≥ 0 and a/(1 + a) for u &lt; 0, and
/// σ(2u)(1 − σ(2u)) = a/(1 + a)² either way, so gelu(x) = x·σ(2u) and gelu'(x) = σ(2u) + 2x·k(1 + 3c·x²)·a/(1 + a)²
/// have no cancellation anywhere. Why double: for x ≈ −4 the exponent 2|u| ≈ 13 and an F32 argument's rounding alone
/// moves e^(−2|u|) by ~10 F32 ULP; in double the argument, the Cody–Waite reduction and the degree-10 polynomial
/// (truncation (ln2/2)^11/11! ≈ 2e-13) are all far below an F32 ULP, so results are within ~0.5 ULP + the final rounding.
/// </summary>
internal static unsafe class CpuGeluTanh
{
    private const double K = 0.79788456080286536;
    private const double C = 0.044715;
    private const double Log2E = 1.4426950408889634;
    private const double Ln2High = 0.693147180369123816490;
    private const double Ln2Low = 1.90821492927058770002e-10;

    // Adding then subtracting 1.5·2^52 rounds a double of magnitude < 2^51 to the nearest integer.
    private const double RoundMagic = 6755399441055744.0;

    // e^−200 is far below the smallest F32 subnormal (1.4e-45 ≈ e^−103): below it a is 0.
    private const double ArgumentFloor = -200;

    /// <summary>y = gelu_tanh(x) over n elements (y may be x).</summary>
    internal static void Forward(float* x, float* y, long n)
    {
        long i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            for (; i + 16 <= n; i += 16)
            {
                var (lo, hi) = Vector512.Widen(Vector512.Load(x + i));
                Vector512.Narrow(Forward(lo), Forward(hi)).Store(y + i);
            }
        }
        for (; i + 8 <= n; i += 8)
        {
            var (lo, hi) = Vector256.Widen(Vector256.Load(x + i));
            Vector256.Narrow(Forward(lo), Forward(hi)).Store(y + i);
        }
        for (; i < n; i++)
        {
            y[i] = (float)Forward(Vector256.Create((double)x[i])).ToScalar();
        }
    }

    /// <summary>dx = dy · gelu_tanh'(x) over n elements, the product in double and rounded once (dx may alias dy or x).</summary>
    internal static void Backward(float* x, float* dy, float* dx, long n)
    {
        long i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            for (; i + 16 <= n; i += 16)
            {
                var (xl, xh) = Vector512.Widen(Vector512.Load(x + i));
                var (gl, gh) = Vector512.Widen(Vector512.Load(dy + i));
                Vector512.Narrow(gl * Derivative(xl), gh * Derivative(xh)).Store(dx + i);
            }
        }
        for (; i + 8 <= n; i += 8)
        {
            var (xl, xh) = Vector256.Widen(Vector256.Load(x + i));
            var (gl, gh) = Vector256.Widen(Vector256.Load(dy + i));
            Vector256.Narrow(gl * Derivative(xl), gh * Derivative(xh)).Store(dx + i);
        }
        for (; i < n; i++)
        {
            dx[i] = (float)(dy[i] * Derivative(Vector256.Create((double)x[i])).ToScalar());
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<double> Forward(Vector512<double> x)
    {
        var u = Vector512.Create(K) * Vector512.FusedMultiplyAdd(Vector512.Create(C) * x, x * x, x);
        var a = ExpOfNonPositive(Vector512.Create(-2.0) * Vector512.Abs(u));
        var numerator = Vector512.ConditionalSelect(Vector512.LessThan(u, Vector512<double>.Zero), a, Vector512<double>.One);
        var s = numerator / (Vector512<double>.One + a);
        // s = 0 only for x < 0 (gelu underflows to −0); written out so that x = −∞ gives −0, not −∞·0 = NaN.
        return Vector512.ConditionalSelect(Vector512.Equals(s, Vector512<double>.Zero), Vector512.Create(-0.0), x * s);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<double> Forward(Vector256<double> x)
    {
        var u = Vector256.Create(K) * Vector256.FusedMultiplyAdd(Vector256.Create(C) * x, x * x, x);
        var a = ExpOfNonPositive(Vector256.Create(-2.0) * Vector256.Abs(u));
        var numerator = Vector256.ConditionalSelect(Vector256.LessThan(u, Vector256<double>.Zero), a, Vector256<double>.One);
        var s = numerator / (Vector256<double>.One + a);
        return Vector256.ConditionalSelect(Vector256.Equals(s, Vector256<double>.Zero), Vector256.Create(-0.0), x * s);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<double> Derivative(Vector512<double> x)
    {
        var x2 = x * x;
        var u = Vector512.Create(K) * Vector512.FusedMultiplyAdd(Vector512.Create(C) * x, x2, x);
        var a = ExpOfNonPositive(Vector512.Create(-2.0) * Vector512.Abs(u));
        var onePlusA = Vector512<double>.One + a;
        var numerator = Vector512.ConditionalSelect(Vector512.LessThan(u, Vector512<double>.Zero), a, Vector512<double>.One);
        var s = numerator / onePlusA;
        var slope = Vector512.Create(2 * K) * x * Vector512.FusedMultiplyAdd(Vector512.Create(3 * C), x2, Vector512<double>.One);
        var tail = slope * (a / (onePlusA * onePlusA));
        // a = 0 (|u| ≥ 100): the tail is 0 even where slope is ±∞.
        return s + Vector512.ConditionalSelect(Vector512.Equals(a, Vector512<double>.Zero), Vector512<double>.Zero, tail);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<double> Derivative(Vector256<double> x)
    {
        var x2 = x * x;
        var u = Vector256.Create(K) * Vector256.FusedMultiplyAdd(Vector256.Create(C) * x, x2, x);
        var a = ExpOfNonPositive(Vector256.Create(-2.0) * Vector256.Abs(u));
        var onePlusA = Vector256<double>.One + a;
        var numerator = Vector256.ConditionalSelect(Vector256.LessThan(u, Vector256<double>.Zero), a, Vector256<double>.One);
        var s = numerator / onePlusA;
        var slope = Vector256.Create(2 * K) * x * Vector256.FusedMultiplyAdd(Vector256.Create(3 * C), x2, Vector256<double>.One);
        var tail = slope * (a / (onePlusA * onePlusA));
        return s + Vector256.ConditionalSelect(Vector256.Equals(a, Vector256<double>.Zero), Vector256<double>.Zero, tail);
    }

    /// <summary>e^z for z ≤ 0 (z below <see cref="ArgumentFloor"/> gives 0, NaN stays NaN).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<double> ExpOfNonPositive(Vector512<double> z)
    {
        var zc = Vector512.Max(z, Vector512.Create(ArgumentFloor));
        var magic = Vector512.Create(RoundMagic);
        var n = Vector512.FusedMultiplyAdd(zc, Vector512.Create(Log2E), magic) - magic;
        var r = Vector512.FusedMultiplyAdd(n, Vector512.Create(-Ln2High), zc);
        r = Vector512.FusedMultiplyAdd(n, Vector512.Create(-Ln2Low), r);
        var p = Vector512.Create(1.0 / 3628800);
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(1.0 / 362880));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(1.0 / 40320));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(1.0 / 5040));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(1.0 / 720));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(1.0 / 120));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(1.0 / 24));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(1.0 / 6));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(0.5));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512<double>.One);
        p = Vector512.FusedMultiplyAdd(p, r, Vector512<double>.One);
        // n in [−289, 0]: 2^n is a normal double.
        var scale = Vector512.ShiftLeft(Vector512.ConvertToInt64(n) + Vector512.Create(1023L), 52).AsDouble();
        var result = Vector512.ConditionalSelect(Vector512.LessThan(z, Vector512.Create(ArgumentFloor)), Vector512<double>.Zero, p * scale);
        return Vector512.ConditionalSelect(Vector512.Equals(z, z), result, z);
    }

    /// <summary>The 256-bit form of <see cref="ExpOfNonPositive(Vector512{double})"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<double> ExpOfNonPositive(Vector256<double> z)
    {
        var zc = Vector256.Max(z, Vector256.Create(ArgumentFloor));
        var magic = Vector256.Create(RoundMagic);
        var n = Vector256.FusedMultiplyAdd(zc, Vector256.Create(Log2E), magic) - magic;
        var r = Vector256.FusedMultiplyAdd(n, Vector256.Create(-Ln2High), zc);
        r = Vector256.FusedMultiplyAdd(n, Vector256.Create(-Ln2Low), r);
        var p = Vector256.Create(1.0 / 3628800);
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(1.0 / 362880));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(1.0 / 40320));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(1.0 / 5040));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(1.0 / 720));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(1.0 / 120));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(1.0 / 24));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(1.0 / 6));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(0.5));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256<double>.One);
        p = Vector256.FusedMultiplyAdd(p, r, Vector256<double>.One);
        var scale = Vector256.ShiftLeft(Vector256.ConvertToInt64(n) + Vector256.Create(1023L), 52).AsDouble();
        var result = Vector256.ConditionalSelect(Vector256.LessThan(z, Vector256.Create(ArgumentFloor)), Vector256<double>.Zero, p * scale);
        return Vector256.ConditionalSelect(Vector256.Equals(z, z), result, z);
    }
}
