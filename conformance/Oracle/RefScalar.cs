namespace Hal.Conformance.Oracle;

/// <summary>
/// Scalar fp64 definitions of the element-wise ops, written from their mathematical definitions (not from any
/// backend). Inputs are the exact values the device holds; results are exact up to F64 rounding.
/// </summary>
public static class RefScalar
{
    /// <summary>The math of <paramref name="op"/> at x.</summary>
    public static double Unary(UnaryOp op, double x) => op switch
    {
        UnaryOp.Neg => -x,
        UnaryOp.Abs => Math.Abs(x),
        UnaryOp.Exp => Math.Exp(x),
        UnaryOp.Log => Math.Log(x),
        UnaryOp.Sqrt => Math.Sqrt(x),
        UnaryOp.Rsqrt => 1 / Math.Sqrt(x),
        UnaryOp.Tanh => Math.Tanh(x),
        UnaryOp.Sigmoid => Sigmoid(x),
        UnaryOp.Relu => x > 0 ? x : (double.IsNaN(x) ? x : 0),
        UnaryOp.GeluErf => double.IsInfinity(x) ? Math.Max(x, -0.0) : 0.5 * x * RefSpecial.Erfc(-x / Math.Sqrt(2)),
        UnaryOp.GeluTanh => GeluTanh(x),
        UnaryOp.Silu => double.IsInfinity(x) ? Math.Max(x, -0.0) : x * Sigmoid(x),
        UnaryOp.Sin => Math.Sin(x),
        UnaryOp.Cos => Math.Cos(x),
        UnaryOp.Round => Math.Round(x, MidpointRounding.ToEven),
        UnaryOp.Square => x * x,
        UnaryOp.Reciprocal => 1 / x,
        _ => throw new ArgumentOutOfRangeException(nameof(op), op, null),
    };

    /// <summary>
    /// 1/(1 + e^−x), written as e^x/(1 + e^x) for x &lt; 0 so that e^−x cannot overflow where the true value is a
    /// small (possibly subnormal) number.
    /// </summary>
    public static double Sigmoid(double x)
    {
        if (x >= 0)
        {
            return 1 / (1 + Math.Exp(-x));
        }
        double e = Math.Exp(x);
        return e / (1 + e);
    }

    /// <summary>
    /// 0.5·x·(1 + tanh z) with z = √(2/π)(x + 0.044715x³), written as x·σ(2z) (the same function: 1 + tanh z = 2σ(2z))
    /// so that the cancellation of 1 + tanh z for z ≪ 0 does not lose the small result. GELU(±∞) is its limit, +∞ or −0.
    /// </summary>
    public static double GeluTanh(double x)
    {
        if (double.IsInfinity(x))
        {
            return Math.Max(x, -0.0);
        }
        double z = Math.Sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x);
        return x * Sigmoid(2 * z);
    }

    /// <summary>The math of <paramref name="op"/> at (a, b); Max/Min propagate NaN.</summary>
    public static double Binary(BinaryOp op, double a, double b) => op switch
    {
        BinaryOp.Add => a + b,
        BinaryOp.Sub => a - b,
        BinaryOp.Mul => a * b,
        BinaryOp.Div => a / b,
        BinaryOp.Max => double.IsNaN(a) || double.IsNaN(b) ? double.NaN : Math.Max(a, b),
        BinaryOp.Min => double.IsNaN(a) || double.IsNaN(b) ? double.NaN : Math.Min(a, b),
        BinaryOp.Pow => Math.Pow(a, b),
        _ => throw new ArgumentOutOfRangeException(nameof(op), op, null),
    };
}

/// <summary>Special functions the oracle needs and .NET lacks, to F64 accuracy.</summary>
public static class RefSpecial
{
    /// <summary>erf(x).</summary>
    public static double Erf(double x) =>
        x < 0 ? -Erf(-x) : (x < 0.5 ? ErfSeries(x) : x < DecimalSeriesLimit ? (double)(1 - ErfcDecimal(x)) : 1 - Erfc(x));

    /// <summary>erfc(x) = 1 − erf(x), accurate in relative terms for large x (no cancellation).</summary>
    public static double Erfc(double x)
    {
        if (double.IsNaN(x))
        {
            return x;
        }
        if (x < 0.5)
        {
            return x < -6 ? 2 : 1 - (x < 0 ? -ErfcSafeErf(-x) : ErfSeries(x));
        }
        if (x > 27)
        {
            return 0;
        }
        // Between 0.5 and 3.5 the continued fraction converges too slowly to reach F64 accuracy (about 1e-14
        // relative at 0.5 after 500 terms), so the Maclaurin series runs in 28-digit decimal arithmetic there.
        return x < DecimalSeriesLimit ? (double)ErfcDecimal(x) : ErfcContinuedFraction(x);
    }

    /// <summary>Below this, erfc(x) ≥ 7e-7 and the decimal series keeps ≥ 22 significant digits of it.</summary>
    private const double DecimalSeriesLimit = 3.5;

    /// <summary>2/√π to 28 digits.</summary>
    private const decimal TwoOverSqrtPi = 1.1283791670955125738961589031m;

    /// <summary>
    /// erfc(x) = 1 − 2/√π Σ (−1)ⁿ x^(2n+1)/(n!(2n+1)) for 0.5 ≤ x &lt; 3.5 in decimal (28 digits): the alternating
    /// terms peak near e^(x²) ≤ 2·10⁵, so about 23 digits survive the cancellation, and 1 − erf then loses at most
    /// 6 more for erfc ≥ 7e-7: still far below F64's 16.
    /// </summary>
    private static decimal ErfcDecimal(double x)
    {
        decimal xd = ExactishDecimal(x);
        decimal x2 = xd * xd;
        decimal term = xd;
        decimal sum = xd;
        for (int n = 1; n < 400; n++)
        {
            term *= -x2 / n;
            decimal add = term / (2 * n + 1);
            sum += add;
            if (Math.Abs(add) < 1e-27m)
            {
                break;
            }
        }
        return 1 - TwoOverSqrtPi * sum;
    }

    /// <summary>A double in [0.5, 4) as a decimal to 28 digits (the built-in conversion keeps only 15).</summary>
    private static decimal ExactishDecimal(double x)
    {
        long bits = BitConverter.DoubleToInt64Bits(x);
        long mantissa = (bits & 0xFFFFFFFFFFFFFL) | (1L << 52);
        int exponent = (int)((bits >> 52) & 0x7FF) - 1075;
        decimal d = mantissa;
        // x = mantissa · 2^exponent with exponent in [−53, −51] here: each halving is exact to 28 digits or nearly.
        for (int e = 0; e > exponent; e--)
        {
            d /= 2;
        }
        return d;
    }

    private static double ErfcSafeErf(double ax) => Erf(ax);

    // Maclaurin series erf(x) = 2/√π Σ (−1)^n x^(2n+1) / (n! (2n+1)); converges fast for |x| < 0.5.
    private static double ErfSeries(double x)
    {
        double x2 = x * x;
        double term = x;
        double sum = x;
        for (int n = 1; n < 60; n++)
        {
            term *= -x2 / n;
            double add = term / (2 * n + 1);
            sum += add;
            if (Math.Abs(add) < 1e-18 * Math.Abs(sum))
            {
                break;
            }
        }
        return sum * 2 / Math.Sqrt(Math.PI);
    }

    // Lentz's continued fraction for erfc(x) = exp(−x²)/√π · 1/(x + 1/2/(x + 1/(x + 3/2/(x + …)))), x ≥ 0.5.
    private static double ErfcContinuedFraction(double x)
    {
        const double tiny = 1e-300;
        double f = x;
        double c = x;
        double d = 0;
        for (int n = 1; n < 500; n++)
        {
            double an = n / 2.0;
            d = x + an * d;
            d = Math.Abs(d) < tiny ? tiny : d;
            c = x + an / c;
            c = Math.Abs(c) < tiny ? tiny : c;
            d = 1 / d;
            double delta = c * d;
            f *= delta;
            if (Math.Abs(delta - 1) < 1e-17)
            {
                break;
            }
        }
        return Math.Exp(-x * x) / Math.Sqrt(Math.PI) / f;
    }
}
