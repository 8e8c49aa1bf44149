using System.Runtime.CompilerServices;
using Hal.Numerics;

namespace Hal.Backends.Cpu;

/// <summary>
/// Scalar math the CPU kernels share: the error function (.NET has none), activations evaluated in double so F32
/// results are rounded once, and the element conversions of the cast rules.
/// </summary>
internal static class CpuMath
{
    private const double TwoOverSqrtPi = 1.1283791670955126;
    private const double OneOverSqrtPi = 0.56418958354775628;
    private const double OneOverSqrt2 = 0.70710678118654752;

    /// <summary>1/√2 − (double)(1/√2).</summary>
    private const double OneOverSqrt2Low = -4.833646656726456e-17;
    private const double SqrtTwoOverPi = 0.79788456080286536;

    /// <summary>erf(x), relative error about 1e-16. Series with positive terms for |x| &lt; 1, continued-fraction erfc beyond.</summary>
    internal static double Erf(double x)
    {
        double ax = Math.Abs(x);
        if (double.IsNaN(x))
        {
            return x;
        }
        if (ax < 1)
        {
            return ErfSeries(x);
        }
        double r = 1 - ErfcContinuedFraction(ax);
        return x < 0 ? -r : r;
    }

    /// <summary>erfc(x) = 1 − erf(x) without cancellation for large x (relative error about 1e-15).</summary>
    internal static double Erfc(double x)
    {
        if (double.IsNaN(x))
        {
            return x;
        }
        if (x < 1)
        {
            // erfc ≥ 0.157 here, so 1 − erf loses at most a few bits; for x ≤ −1 erfc = 2 − erfc(−x) ∈ (1, 2).
            return x > -1 ? 1 - ErfSeries(x) : 2 - ErfcContinuedFraction(-x);
        }
        return ErfcContinuedFraction(x);
    }

    /// <summary>
    /// erf(x) = 2/√π · e^(−x²) · Σₙ 2ⁿ x^(2n+1) / (1·3·…·(2n+1)): every term is positive, so the sum has no cancellation.
    /// </summary>
    private static double ErfSeries(double x)
    {
        double x2 = x * x;
        double term = x;
        double sum = x;
        for (int n = 1; n < 90; n++)
        {
            term *= 2 * x2 / ((2 * n) + 1);
            sum += term;
            if (Math.Abs(term) <= Math.Abs(sum) * 1e-17)
            {
                break;
            }
        }
        return TwoOverSqrtPi * Math.Exp(-x2) * sum;
    }

    /// <summary>1/(2n+1), so the F32 series multiplies where the F64 one divides.</summary>
    private static readonly double[] InverseOdd = [.. Enumerable.Range(0, 96).Select(n => 1.0 / ((2 * n) + 1))];

    /// <summary>
    /// The same series for |x| &lt; 3 to about 1e-13 relative, enough for F32 results: reciprocal multiplications
    /// instead of divisions (one more rounding per term) and an earlier stop.
    /// </summary>
    private static double ErfSeriesForF32(double x)
    {
        double twoX2 = 2 * x * x;
        double term = x;
        double sum = x;
        for (int n = 1; n < InverseOdd.Length; n++)
        {
            term *= twoX2 * InverseOdd[n];
            sum += term;
            if (Math.Abs(term) <= Math.Abs(sum) * 1e-14)
            {
                break;
            }
        }
        return TwoOverSqrtPi * Math.Exp(-(x * x)) * sum;
    }

    /// <summary>erfc(x) for x ≥ 1: e^(−x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + …)))) by the modified Lentz method.</summary>
    private static double ErfcContinuedFraction(double x, double tolerance = 1e-17)
    {
        if (x > 27.3)
        {
            return 0;
        }
        const double tiny = 1e-300;
        double f = x;
        double c = x;
        double d = 0;
        for (int k = 1; k < 400; k++)
        {
            double a = k * 0.5;
            d = x + (a * d);
            d = d == 0 ? tiny : d;
            c = x + (a / c);
            c = c == 0 ? tiny : c;
            d = 1 / d;
            double delta = c * d;
            f *= delta;
            if (Math.Abs(delta - 1) < tolerance)
            {
                break;
            }
        }
        // e^(−x²) split as e^(−h²)·e^(−(x²−h²)) keeps the exponent's argument exact enough for large x.
        double h = Math.Round(x * 64) / 64;
        double rest = (x - h) * (x + h);
        return Math.Exp(-(h * h)) * Math.Exp(-rest) * OneOverSqrtPi / f;
    }

    /// <summary>x·Φ(x) = x·erfc(−x/√2)/2, with no cancellation for negative x.</summary>
    internal static double GeluErf(double x)
    {
        if (double.IsNegativeInfinity(x))
        {
            return -0.0;
        }
        // z = −x/√2 carried as zHigh + zLow: for x ≈ −10 erfc's relative condition is 2z² ≈ 100, so the rounding of
        // z alone would cost ~1e-14. erfc(zHigh + zLow) ≈ erfc(zHigh) − zLow·2/√π·e^(−zHigh²).
        double zHigh = -x * OneOverSqrt2;
        double zLow = Math.FusedMultiplyAdd(-x, OneOverSqrt2, -zHigh) + (-x * OneOverSqrt2Low);
        double erfc = Erfc(zHigh);
        if (zLow != 0 && Math.Abs(zHigh) < 27)
        {
            erfc -= zLow * TwoOverSqrtPi * Math.Exp(-(zHigh * zHigh));
        }
        return 0.5 * x * erfc;
    }

    /// <summary>
    /// GELU-erf for F32 results: evaluated in double, but with erfc from the series (1 − erf) up to z = 3, where
    /// the cancellation costs at most 1/erfc(3) ≈ 5·10⁴ × 1e-16 relative, far below an F32 ULP, and the continued
    /// fraction only beyond, where it converges in a few terms.
    /// </summary>
    internal static float GeluErfF32(float x)
    {
        double z = -(double)x * OneOverSqrt2;
        if (double.IsNaN(z))
        {
            return x;
        }
        if (float.IsNegativeInfinity(x))
        {
            return -0.0f;
        }
        double erfc = z < 3 ? (z > -3 ? 1 - ErfSeriesForF32(z) : 2 - ErfcContinuedFraction(-z, 1e-12)) : ErfcContinuedFraction(z, 1e-12);
        return (float)(0.5 * x * erfc);
    }

    /// <summary>0.5·x·(1 + tanh(u)) written as x·σ(2u), which does not cancel for negative x.</summary>
    internal static double GeluTanh(double x)
    {
        if (double.IsNegativeInfinity(x))
        {
            return -0.0;
        }
        double u = SqrtTwoOverPi * (x + (0.044715 * x * x * x));
        return x * Sigmoid(2 * u);
    }

    /// <summary>1/(1 + e^(−x)), evaluated without overflow on either side.</summary>
    internal static double Sigmoid(double x)
    {
        if (x >= 0)
        {
            return 1 / (1 + Math.Exp(-x));
        }
        double e = Math.Exp(x);
        return e / (1 + e);
    }

    /// <summary>x·σ(x); −Inf gives −0 rather than NaN.</summary>
    internal static double Silu(double x) => double.IsNegativeInfinity(x) ? -0.0 : x * Sigmoid(x);

    // ---- conversions (the cast rules) ------------------------------------------------------------------------

    /// <summary>I64 → BF16 bits, rounded once.</summary>
    internal static ushort LongToBf16(long v)
    {
        if (v > -(1L << 24) && v < 1L << 24)
        {
            return HalfConvert.FloatToBf16(v);
        }
        // (float)v rounds to 24 bits; redo that step as round-to-odd so the 8-bit rounding is the only one.
        ulong m = v < 0 ? (ulong)-(v + 1) + 1 : (ulong)v;
        int shift = 64 - 24 - System.Numerics.BitOperations.LeadingZeroCount(m);
        ulong kept = m >> shift;
        if ((m & ((1UL << shift) - 1)) != 0)
        {
            kept |= 1;
        }
        double truncated = Math.ScaleB(kept, shift);
        return HalfConvert.FloatToBf16((float)(v < 0 ? -truncated : truncated));
    }

    /// <summary>F64 → F16 bits, rounded once (.NET converts double to Half directly).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static ushort DoubleToF16(double v) => BitConverter.HalfToUInt16Bits((Half)v);

    /// <summary>F32 → F16 bits, round to nearest even.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static ushort FloatToF16(float v) => BitConverter.HalfToUInt16Bits((Half)v);

    /// <summary>I64 → F16 bits: beyond ±2²⁴ both steps overflow to ±Inf, below it the F32 step is exact.</summary>
    internal static ushort LongToF16(long v) => FloatToF16(v);

    /// <summary>Float → integer: truncate toward zero, saturate at [lo, hi], NaN → 0.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static long SaturateToLong(double v, long lo, long hi)
    {
        if (double.IsNaN(v))
        {
            return 0;
        }
        if (v >= hi)
        {
            return hi;
        }
        if (v <= lo)
        {
            return lo;
        }
        return (long)v;
    }

    /// <summary>Float → I64: like <see cref="SaturateToLong"/> with the 2⁶³ bounds, which double represents exactly.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static long SaturateToI64(double v)
    {
        if (double.IsNaN(v))
        {
            return 0;
        }
        if (v >= 9.2233720368547758E18)
        {
            return long.MaxValue;
        }
        if (v <= -9.2233720368547758E18)
        {
            return long.MinValue;
        }
        return (long)v;
    }
}
