using ILGPU;

namespace Hal.Backends.Cuda.Kernels;

/// <summary>
/// Scalar code that runs inside kernels (on the GPU and on the emulator alike): element loads and stores with the
/// cast rules, the 16-bit conversions (round to nearest even, done on integer bits so every target agrees), and the
/// activations evaluated in double so F32 and 16-bit results are rounded once.
/// </summary>
internal static class DeviceMath
{
    private const double TwoOverSqrtPi = 1.1283791670955126;
    private const double OneOverSqrtPi = 0.56418958354775628;
    private const double OneOverSqrt2 = 0.70710678118654752;
    /// <summary>1/√2 − (double)(1/√2).</summary>
    private const double OneOverSqrt2Low = -4.833646656726456e-17;
    private const double SqrtTwoOverPi = 0.79788456080286536;

    // ---- loads ---------------------------------------------------------------------------------------------

    /// <summary>Element <paramref name="i"/> of a float tensor (or any tensor, converted) as a double; exact for float dtypes.</summary>
    public static double Load(DeviceTensor t, long i)
    {
        long k = t.Offset + i;
        int d = t.DType;
        if (d == DTypeCode.F32)
        {
            return t.Bytes.Cast<float>()[k];
        }
        if (d == DTypeCode.F64)
        {
            return t.Bytes.Cast<double>()[k];
        }
        if (d == DTypeCode.F16)
        {
            return HalfBitsToDouble(t.Bytes.Cast<ushort>()[k]);
        }
        if (d == DTypeCode.BF16)
        {
            return Interop.IntAsFloat((uint)t.Bytes.Cast<ushort>()[k] << 16);
        }
        return LoadInt(t, i);
    }

    /// <summary>Element <paramref name="i"/> of an integer or bool tensor as a long (bool: 0 or 1).</summary>
    public static long LoadInt(DeviceTensor t, long i)
    {
        long k = t.Offset + i;
        int d = t.DType;
        if (d == DTypeCode.I32)
        {
            return t.Bytes.Cast<int>()[k];
        }
        if (d == DTypeCode.I64)
        {
            return t.Bytes.Cast<long>()[k];
        }
        if (d == DTypeCode.I8)
        {
            return (sbyte)t.Bytes[k];
        }
        if (d == DTypeCode.U8)
        {
            return t.Bytes[k];
        }
        if (d == DTypeCode.Bool)
        {
            return t.Bytes[k] != 0 ? 1 : 0;
        }
        return SaturateToLong(Load(t, i), long.MinValue, long.MaxValue);
    }

    // ---- stores --------------------------------------------------------------------------------------------

    /// <summary>Stores <paramref name="v"/> with the cast rules: float targets round once to nearest even, integers truncate and saturate (NaN → 0), bool is v ≠ 0.</summary>
    public static void Store(DeviceTensor t, long i, double v)
    {
        long k = t.Offset + i;
        int d = t.DType;
        if (d == DTypeCode.F32)
        {
            t.Bytes.Cast<float>()[k] = (float)v;
        }
        else if (d == DTypeCode.F64)
        {
            t.Bytes.Cast<double>()[k] = v;
        }
        else if (d == DTypeCode.F16)
        {
            t.Bytes.Cast<ushort>()[k] = DoubleToSmallFloat(v, 10, 15);
        }
        else if (d == DTypeCode.BF16)
        {
            t.Bytes.Cast<ushort>()[k] = DoubleToSmallFloat(v, 7, 127);
        }
        else if (d == DTypeCode.I32)
        {
            t.Bytes.Cast<int>()[k] = (int)SaturateToLong(v, int.MinValue, int.MaxValue);
        }
        else if (d == DTypeCode.I64)
        {
            t.Bytes.Cast<long>()[k] = SaturateToI64(v);
        }
        else if (d == DTypeCode.I8)
        {
            t.Bytes[k] = (byte)(sbyte)SaturateToLong(v, sbyte.MinValue, sbyte.MaxValue);
        }
        else if (d == DTypeCode.U8)
        {
            t.Bytes[k] = (byte)SaturateToLong(v, 0, 255);
        }
        else
        {
            t.Bytes[k] = v != 0 ? (byte)1 : (byte)0;
        }
    }

    /// <summary>
    /// Stores an integer: float targets round once (beyond 2⁵³ through a round-to-odd double), integer targets
    /// saturate when <paramref name="saturate"/> (casts) or wrap like the type (arithmetic), bool is v ≠ 0.
    /// </summary>
    public static void StoreInt(DeviceTensor t, long i, long v, bool saturate)
    {
        long k = t.Offset + i;
        int d = t.DType;
        if (d == DTypeCode.I32)
        {
            t.Bytes.Cast<int>()[k] = saturate ? (int)Clamp(v, int.MinValue, int.MaxValue) : (int)v;
        }
        else if (d == DTypeCode.I64)
        {
            t.Bytes.Cast<long>()[k] = v;
        }
        else if (d == DTypeCode.I8)
        {
            t.Bytes[k] = (byte)(sbyte)(saturate ? Clamp(v, sbyte.MinValue, sbyte.MaxValue) : v);
        }
        else if (d == DTypeCode.U8)
        {
            t.Bytes[k] = (byte)(saturate ? Clamp(v, 0, 255) : v);
        }
        else if (d == DTypeCode.Bool)
        {
            t.Bytes[k] = v != 0 ? (byte)1 : (byte)0;
        }
        else if (d == DTypeCode.F32)
        {
            t.Bytes.Cast<float>()[k] = (float)v;
        }
        else if (d == DTypeCode.F64)
        {
            t.Bytes.Cast<double>()[k] = v;
        }
        else
        {
            Store(t, i, LongToOddDouble(v));
        }
    }

    /// <summary>v as a double rounded to odd (exact below 2⁵³), so one later rounding to fewer bits is correct.</summary>
    private static double LongToOddDouble(long v)
    {
        if (v > -(1L << 53) && v < (1L << 53))
        {
            return v;
        }
        ulong m = v < 0 ? (ulong)(-(v + 1)) + 1 : (ulong)v;
        int shift = 64 - 53 - IntrinsicMath.BitOperations.LeadingZeroCount(m);
        ulong kept = m >> shift;
        if ((m & ((1UL << shift) - 1)) != 0)
        {
            kept |= 1;
        }
        double magnitude = kept * (double)(1UL << shift);
        return v < 0 ? -magnitude : magnitude;
    }

    private static long Clamp(long v, long lo, long hi) => v < lo ? lo : v > hi ? hi : v;

    /// <summary>Float → integer: truncate toward zero, saturate at [lo, hi], NaN → 0.</summary>
    public static long SaturateToLong(double v, long lo, long hi)
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

    private static long SaturateToI64(double v)
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

    // ---- 16-bit floats ---------------------------------------------------------------------------------------

    /// <summary>IEEE binary16 bits → double (exact).</summary>
    public static double HalfBitsToDouble(ushort h)
    {
        int sign = h >> 15;
        int exponent = (h >> 10) & 31;
        int mantissa = h & 1023;
        double magnitude;
        if (exponent == 0)
        {
            magnitude = mantissa * 5.9604644775390625E-8;
        }
        else if (exponent == 31)
        {
            magnitude = mantissa == 0 ? double.PositiveInfinity : double.NaN;
        }
        else
        {
            magnitude = Interop.IntAsFloat((uint)(((exponent - 15 + 127) << 23) | (mantissa << 13)));
        }
        return sign != 0 ? -magnitude : magnitude;
    }

    /// <summary>
    /// double → a small binary float (F16: 10 mantissa bits, bias 15; BF16: 7 bits, bias 127), rounded once to
    /// nearest even from the double's bits; overflow gives ±Inf, NaN a quiet NaN with the sign kept.
    /// </summary>
    public static ushort DoubleToSmallFloat(double v, int mantissaBits, int bias)
    {
        ulong bits = Interop.FloatAsInt(v);
        uint sign = (uint)(bits >> 63) << 15;
        ulong abs = bits & 0x7FFF_FFFF_FFFF_FFFFUL;
        uint infinity = (uint)((2 * bias) + 1) << mantissaBits;
        if (abs > 0x7FF0_0000_0000_0000UL)
        {
            return (ushort)(sign | infinity | (1u << (mantissaBits - 1)));
        }
        int exponent = (int)(abs >> 52) - 1023;
        if (exponent > bias)
        {
            return (ushort)(sign | infinity);
        }
        ulong mantissa = (abs & 0x000F_FFFF_FFFF_FFFFUL) | (1UL << 52);
        int minExponent = 1 - bias;
        ulong result;
        int shift;
        ulong baseBits;
        if (exponent >= minExponent)
        {
            shift = 52 - mantissaBits;
            baseBits = ((ulong)(exponent + bias) << mantissaBits) | ((mantissa >> shift) & ((1UL << mantissaBits) - 1));
        }
        else
        {
            shift = 52 - mantissaBits + (minExponent - exponent);
            if (shift >= 63)
            {
                return (ushort)sign;
            }
            baseBits = mantissa >> shift;
        }
        ulong remainder = mantissa & ((1UL << shift) - 1);
        ulong half = 1UL << (shift - 1);
        result = baseBits;
        if (remainder > half || (remainder == half && (baseBits & 1) != 0))
        {
            result++;
        }
        if (result >= infinity)
        {
            result = infinity;
        }
        return (ushort)(sign | (uint)result);
    }

    // ---- activations -----------------------------------------------------------------------------------------

    /// <summary>1/(1 + e^(−x)) without overflow on either side.</summary>
    public static double Sigmoid(double x)
    {
        if (x >= 0)
        {
            return 1 / (1 + Math.Exp(-x));
        }
        double e = Math.Exp(x);
        return e / (1 + e);
    }

    /// <summary>x·σ(x); −Inf gives −0.</summary>
    public static double Silu(double x) => double.IsNegativeInfinity(x) ? -0.0 : x * Sigmoid(x);

    /// <summary>0.5·x·(1 + tanh(u)) as x·σ(2u), which does not cancel for negative x.</summary>
    public static double GeluTanh(double x)
    {
        if (double.IsNegativeInfinity(x))
        {
            return -0.0;
        }
        double u = SqrtTwoOverPi * (x + (0.044715 * x * x * x));
        return x * Sigmoid(2 * u);
    }

    /// <summary>x·Φ(x) = x·erfc(−x/√2)/2, with no cancellation for negative x.</summary>
    public static double GeluErf(double x)
    {
        if (double.IsNaN(x))
        {
            return x;
        }
        if (double.IsNegativeInfinity(x))
        {
            return -0.0;
        }
        // z = −x/√2 carried as zHigh + zLow: for x ≈ −10 erfc's relative condition is 2z² ≈ 100, so the rounding of
        // z alone would cost ~1e-14. erfc(zHigh + zLow) ≈ erfc(zHigh) − zLow·2/√π·e^(−zHigh²).
        double zHigh = -x * OneOverSqrt2;
        double zLow = ProductError(-x, OneOverSqrt2, zHigh) + (-x * OneOverSqrt2Low);
        double erfc = Erfc(zHigh);
        if (zLow != 0 && Math.Abs(zHigh) < 27)
        {
            erfc -= zLow * TwoOverSqrtPi * Math.Exp(-(zHigh * zHigh));
        }
        return 0.5 * x * erfc;
    }

    /// <summary>a·b − p exactly, for p = fl(a·b) (Dekker's product with Veltkamp splitting; no fused multiply-add needed).</summary>
    private static double ProductError(double a, double b, double p)
    {
        if (Math.Abs(a) > 1e300 || double.IsNaN(a) || double.IsInfinity(a))
        {
            return 0;
        }
        double ca = 134217729.0 * a;
        double aHigh = ca - (ca - a);
        double aLow = a - aHigh;
        double cb = 134217729.0 * b;
        double bHigh = cb - (cb - b);
        double bLow = b - bHigh;
        return (((aHigh * bHigh) - p) + (aHigh * bLow) + (aLow * bHigh)) + (aLow * bLow);
    }

    /// <summary>Φ(x), the standard normal CDF (for the GELU-erf derivative).</summary>
    public static double NormalCdf(double x) => 0.5 * Erfc(-x * OneOverSqrt2);

    /// <summary>erfc(x): 1 − series erf for |x| &lt; 1, the continued fraction beyond.</summary>
    public static double Erfc(double x)
    {
        if (double.IsNaN(x))
        {
            return x;
        }
        if (x < 1)
        {
            return x > -1 ? 1 - ErfSeries(x) : 2 - ErfcContinuedFraction(-x);
        }
        return ErfcContinuedFraction(x);
    }

    /// <summary>erf(x) = 2/√π · e^(−x²) · Σ 2ⁿ x^(2n+1) / (1·3·…·(2n+1)): positive terms, no cancellation.</summary>
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

    /// <summary>erfc(x) for x ≥ 1 by the modified Lentz evaluation of its continued fraction.</summary>
    private static double ErfcContinuedFraction(double x)
    {
        if (x > 27.3)
        {
            return 0;
        }
        double f = x;
        double c = x;
        double d = 0;
        for (int k = 1; k < 400; k++)
        {
            double a = k * 0.5;
            d = x + (a * d);
            d = d == 0 ? 1e-300 : d;
            c = x + (a / c);
            c = c == 0 ? 1e-300 : c;
            d = 1 / d;
            double delta = c * d;
            f *= delta;
            if (Math.Abs(delta - 1) < 1e-17)
            {
                break;
            }
        }
        // e^(−x²) split as e^(−h²)·e^(−(x²−h²)) keeps the exponent's argument accurate for large x.
        double h = Math.Round(x * 64) / 64;
        double rest = (x - h) * (x + h);
        return Math.Exp(-(h * h)) * Math.Exp(-rest) * OneOverSqrtPi / f;
    }

    /// <summary>Round half to even.</summary>
    public static double RoundHalfEven(double x)
    {
        double r = Math.Floor(x);
        double diff = x - r;
        if (diff > 0.5 || (diff == 0.5 && r - (2 * Math.Floor(r / 2)) != 0))
        {
            r += 1;
        }
        if (double.IsInfinity(x) || double.IsNaN(x))
        {
            return x;
        }
        // A zero result keeps the input's sign, as IEEE rounding does (−0.4 → −0).
        return r == 0 ? x * 0.0 : r;
    }
}
