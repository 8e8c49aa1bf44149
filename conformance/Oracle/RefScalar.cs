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
        UnaryOp.Sigmoid => 1 / (1 + Math.Exp(-x)),
        UnaryOp.Relu => x > 0 ? x : (double.IsNaN(x) ? x : 0),
        UnaryOp.GeluErf => 0.5 * x * RefSpecial.Erfc(-x / Math.Sqrt(2)),
        UnaryOp.GeluTanh => 0.5 * x * (1 + Math.Tanh(Math.Sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x))),
        UnaryOp.Silu => x / (1 + Math.Exp(-x)),
        UnaryOp.Sin => Math.Sin(x),
        UnaryOp.Cos => Math.Cos(x),
        UnaryOp.Round => Math.Round(x, MidpointRounding.ToEven),
        UnaryOp.Square => x * x,
        UnaryOp.Reciprocal => 1 / x,
        _ => throw new ArgumentOutOfRangeException(nameof(op), op, null),
    };

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
    public static double Erf(double x) => x < 0 ? -Erf(-x) : (x < SeriesLimit ? ErfSeries(x) : 1 - Erfc(x));

    /// <summary>erfc(x) = 1 − erf(x), accurate in relative terms for large x (no cancellation).</summary>
    public static double Erfc(double x)
    {
        if (double.IsNaN(x))
        {
            return x;
        }
        // Below 0.8, 1 − (the series) is within ~2 ULP; the continued fraction converges slowly there and its long
        // recurrence accumulates ~6 ULP.
        if (x < SeriesLimit)
        {
            return x < -6 ? 2 : 1 - (x < 0 ? -ErfcSafeErf(-x) : ErfSeries(x));
        }
        if (x > 27)
        {
            return 0;
        }
        return ErfcContinuedFraction(x);
    }

    private const double SeriesLimit = 0.8;

    private static double ErfcSafeErf(double ax) => ax < SeriesLimit ? ErfSeries(ax) : 1 - ErfcContinuedFraction(ax);

    // Maclaurin series erf(x) = 2/√π Σ (−1)^n x^(2n+1) / (n! (2n+1)); converges fast for |x| < 0.8.
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
        // Near x = 0.8 the fraction needs ~300 terms; the cap leaves room.
        for (int n = 1; n < 4000; n++)
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
