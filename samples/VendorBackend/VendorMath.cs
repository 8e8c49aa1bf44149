namespace Hal.Samples.VendorBackend;

/// <summary>The error function, which .NET's Math lacks (for GELU with the exact erf).</summary>
internal static class VendorMath
{
    /// <summary>
    /// erf(x) to a few ULP: for |x| &lt; 2 the series of positive terms
    /// erf(x) = 2/√π · e^(−x²) · Σₙ 2ⁿ x^(2n+1) / (1·3·…·(2n+1)) (no cancellation); beyond, 1 − erfc(x) with erfc
    /// from its continued fraction evaluated from the tail.
    /// </summary>
    public static double Erf(double x)
    {
        if (double.IsNaN(x))
        {
            return x;
        }
        double ax = Math.Abs(x);
        double result;
        if (ax < 2)
        {
            double x2 = ax * ax;
            double term = ax;
            double sum = ax;
            for (int n = 1; n < 200 && term > 1e-18 * sum; n++)
            {
                term *= 2 * x2 / ((2 * n) + 1);
                sum += term;
            }
            result = 2 / Math.Sqrt(Math.PI) * Math.Exp(-x2) * sum;
        }
        else
        {
            result = ax > 6 ? 1 : 1 - Erfc(ax);
        }
        return x < 0 ? -result : result;
    }

    /// <summary>erfc(x) for x ≥ 2: e^(−x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + 2/(x + …))))), 120 levels deep.</summary>
    private static double Erfc(double x)
    {
        double tail = x;
        for (int level = 120; level >= 1; level--)
        {
            tail = x + (level / 2.0 / tail);
        }
        return Math.Exp(-x * x) / Math.Sqrt(Math.PI) / tail;
    }
}
