using System.Numerics;

namespace Hal.Backends.Cpu.Tests;

/// <summary>
/// Plain references written to be obviously right: the error function by its Taylor series in 512-bit fixed point
/// (so cancellation costs nothing), rounding to any binary float format by scaling and Math.Round.
/// </summary>
public static class Reference
{
    private const int FractionBits = 512;

    // π to 100 decimal places.
    private const string PiDigits = "31415926535897932384626433832795028841971693993751058209749445923078164062862089986280348253421170679";

    private static readonly BigInteger One = BigInteger.One << FractionBits;
    private static readonly BigInteger TwoOverSqrtPi = ComputeTwoOverSqrtPi();
    private static readonly BigInteger InvSqrt2 = Sqrt(One >> 1);

    /// <summary>erfc(z) = 1 − 2/√π Σ (−1)ⁿ z^(2n+1) / (n!(2n+1)), exact to far below double precision for |z| ≤ 10.</summary>
    public static double Erfc(double z)
    {
        if (double.IsNaN(z))
        {
            return z;
        }
        if (z > 10)
        {
            return 0;
        }
        if (z < -10)
        {
            return 2;
        }
        return ErfcFixed(ToFixed(z));
    }

    private static double ErfcFixed(BigInteger x)
    {
        BigInteger x2 = (x * x) >> FractionBits;
        BigInteger power = x;
        BigInteger sum = x;
        for (int n = 1; n < 2000; n++)
        {
            power = -(power * x2) / (n * One);
            BigInteger term = power / ((2 * n) + 1);
            sum += term;
            if (BigInteger.Abs(term) < 4)
            {
                break;
            }
        }
        BigInteger erf = (sum * TwoOverSqrtPi) >> FractionBits;
        return ToDouble(One - erf);
    }

    /// <summary>x·Φ(x) = x·erfc(−x/√2)/2.</summary>
    public static double GeluErf(double x)
    {
        if (double.IsNaN(x) || Math.Abs(x) > 14)
        {
            return x > 0 ? x : double.IsNaN(x) ? x : 0;
        }
        // The argument −x/√2 in fixed point, so it is not rounded to double first.
        return 0.5 * x * ErfcFixed(-(ToFixed(x) * InvSqrt2) >> FractionBits);
    }

    /// <summary>Rounds v to nearest even in a binary float format with <paramref name="mantissaBits"/> fraction bits.</summary>
    public static double RoundToFormat(double v, int mantissaBits, int minExponent, int maxExponent)
    {
        if (double.IsNaN(v) || double.IsInfinity(v) || v == 0)
        {
            return v;
        }
        int e = Math.Max(minExponent, Math.ILogB(Math.Abs(v)));
        double ulp = Math.ScaleB(1.0, e - mantissaBits);
        double r = Math.Round(v / ulp, MidpointRounding.ToEven) * ulp;
        double max = Math.ScaleB(2.0 - Math.ScaleB(1.0, -mantissaBits), maxExponent);
        return Math.Abs(r) > max ? (r > 0 ? double.PositiveInfinity : double.NegativeInfinity) : r;
    }

    /// <summary>Rounds v to a dtype's value set (float dtypes) by the rule above.</summary>
    public static double RoundTo(double v, DType dtype) => dtype switch
    {
        DType.F64 => v,
        DType.F32 => RoundToFormat(v, 23, -126, 127),
        DType.F16 => RoundToFormat(v, 10, -14, 15),
        DType.BF16 => RoundToFormat(v, 7, -126, 127),
        _ => throw new ArgumentOutOfRangeException(nameof(dtype)),
    };

    private static BigInteger ToFixed(double v)
    {
        long bits = BitConverter.DoubleToInt64Bits(v);
        int exp = (int)((bits >> 52) & 0x7FF);
        long mant = bits & 0xF_FFFF_FFFF_FFFF;
        if (exp == 0)
        {
            exp = 1;
        }
        else
        {
            mant |= 1L << 52;
        }
        int shift = exp - 1075 + FractionBits;
        BigInteger m = mant;
        BigInteger r = shift >= 0 ? m << shift : m >> -shift;
        return v < 0 ? -r : r;
    }

    private static double ToDouble(BigInteger fixedPoint)
    {
        if (fixedPoint.IsZero)
        {
            return 0;
        }
        int sign = fixedPoint.Sign;
        BigInteger a = BigInteger.Abs(fixedPoint);
        long length = (long)a.GetBitLength();
        int drop = (int)Math.Max(0, length - 62);
        // Keep 62 bits plus a sticky bit so the final conversion rounds once.
        BigInteger kept = a >> drop;
        if (drop > 0 && !(a & ((BigInteger.One << drop) - 1)).IsZero)
        {
            kept |= 1;
        }
        return sign * Math.ScaleB((double)(long)kept, drop - FractionBits);
    }

    private static BigInteger ComputeTwoOverSqrtPi()
    {
        BigInteger pi = (BigInteger.Parse(PiDigits) << FractionBits) / BigInteger.Pow(10, PiDigits.Length - 1);
        return (One << (FractionBits + 1)) / Sqrt(pi);
    }

    /// <summary>√v of a fixed-point value by Newton's method.</summary>
    private static BigInteger Sqrt(BigInteger v)
    {
        BigInteger target = v << FractionBits;
        BigInteger s = One * 2;
        for (int i = 0; i < 200; i++)
        {
            BigInteger next = (s + (target / s)) >> 1;
            if (BigInteger.Abs(next - s) <= 1)
            {
                s = next;
                break;
            }
            s = next;
        }
        return s;
    }
}
