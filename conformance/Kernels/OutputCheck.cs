namespace Hal.Conformance.Kernels;

/// <summary>The verdict on one output: its worst element and by how much it missed or met its bound.</summary>
/// <param name="Output">the output's name.</param>
/// <param name="Passed">every element within its bound.</param>
/// <param name="WorstIndex">flat index of the element with the largest normalised error (−1 for an empty output).</param>
/// <param name="Expected">the oracle's value there.</param>
/// <param name="Actual">the device's value there.</param>
/// <param name="NormalisedError">|actual − expected| / allowed at that element (≤ 1 passes; ∞ for a NaN or infinity mismatch or any difference under an exact rule).</param>
/// <param name="UlpError">|actual − expected| in ULPs of the output dtype at that element.</param>
/// <param name="Allowed">the allowed absolute error there.</param>
/// <param name="Failures">how many elements failed.</param>
/// <param name="Count">how many elements were compared.</param>
public sealed record OutputVerdict(
    string Output, bool Passed, long WorstIndex, double Expected, double Actual, double NormalisedError, double UlpError, double Allowed, long Failures, long Count);

/// <summary>Compares an output with the oracle under its tolerance rule (see <see cref="ToleranceRule"/>).</summary>
public static class OutputCheck
{
    /// <summary>γ(m) = m·u/(1 − m·u) (Higham §3.1), ∞ once m·u reaches 1.</summary>
    public static double Gamma(double m, double unitRoundoff)
    {
        double mu = m * unitRoundoff;
        return mu >= 1 ? double.PositiveInfinity : mu / (1 - mu);
    }

    /// <summary>Unit roundoff of the precision a kernel of <paramref name="dtype"/> computes in (0 for integers: exact).</summary>
    public static double UnitRoundoff(DType dtype) => dtype switch
    {
        DType.F64 => Math.ScaleB(1, -53),
        DType.F32 or DType.F16 or DType.BF16 => Math.ScaleB(1, -24),
        _ => 0,
    };

    /// <summary>Checks every element of <paramref name="output"/>.</summary>
    /// <exception cref="ArgumentException">the arrays differ in length, or the rule needs a scale that the case did not give.</exception>
    public static OutputVerdict Check(CaseOutput output)
    {
        ArgumentNullException.ThrowIfNull(output);
        if (output.Actual.Length != output.Expected.Length)
        {
            throw new ArgumentException($"output '{output.Name}': {output.Actual.Length} actual values but {output.Expected.Length} expected");
        }
        if (output.Rule.HasGamma && (output.Scale is null || output.Scale.Length != output.Expected.Length))
        {
            throw new ArgumentException($"output '{output.Name}': rule '{output.Rule.Op}' has a γ term, so the case must give one scale per element");
        }
        long worst = -1;
        double worstNorm = -1;
        long failures = 0;
        for (int i = 0; i < output.Expected.Length; i++)
        {
            double norm = Normalised(output, i, out _);
            if (!(norm <= 1))
            {
                failures++;
            }
            if (norm > worstNorm || (double.IsNaN(norm) && !double.IsNaN(worstNorm)))
            {
                worstNorm = norm;
                worst = i;
            }
        }
        if (worst < 0)
        {
            return new OutputVerdict(output.Name, true, -1, 0, 0, 0, 0, 0, 0, 0);
        }
        double norm0 = Normalised(output, (int)worst, out double allowed);
        double e = output.Expected[worst];
        double a = output.Actual[worst];
        double ulps = Math.Abs(a - e) / FloatFormat.Ulp(output.DType, e);
        if (double.IsNaN(ulps))
        {
            ulps = double.IsNaN(a) == double.IsNaN(e) && a.Equals(e) ? 0 : double.PositiveInfinity;
        }
        return new OutputVerdict(output.Name, failures == 0, worst, e, a, norm0, ulps, allowed, failures, output.Expected.Length);
    }

    /// <summary>
    /// The normalised error of element <paramref name="i"/>: 0 when it matches exactly, ∞ on a NaN/infinity
    /// mismatch or any difference under an exact rule, else |a − e| / allowed.
    /// </summary>
    public static double Normalised(CaseOutput output, int i, out double allowed)
    {
        ArgumentNullException.ThrowIfNull(output);
        double e = output.Expected[i];
        double a = output.Actual[i];
        var dtype = output.DType;
        var rule = output.Rule;
        double rounded = FloatFormat.Round(dtype, e);
        allowed = 0;
        if (double.IsNaN(e) || double.IsNaN(a))
        {
            return double.IsNaN(e) && double.IsNaN(a) ? 0 : double.PositiveInfinity;
        }
        if (rule.Kind == RuleKind.Bitwise || !dtype.IsFloatingPoint() && rule.Kind == RuleKind.Exact)
        {
            return BitConverter.DoubleToInt64Bits(a) == BitConverter.DoubleToInt64Bits(rounded) || (!dtype.IsFloatingPoint() && a == rounded)
                ? 0 : double.PositiveInfinity;
        }
        if (rule.Kind == RuleKind.Exact)
        {
            return a == rounded ? 0 : double.PositiveInfinity;
        }
        if (a == e || (double.IsInfinity(a) && a == rounded))
        {
            return 0;
        }
        if (double.IsInfinity(e))
        {
            return double.PositiveInfinity;
        }
        // An infinity against a finite expected value counts as one spacing past the largest finite value, so a
        // result that rounds to ±Inf near the overflow threshold is judged by its distance, not rejected outright.
        double aFinite = double.IsInfinity(a) ? Math.Sign(a) * (FloatFormat.MaxFinite(dtype) + FloatFormat.Ulp(dtype, FloatFormat.MaxFinite(dtype))) : a;
        double scale = output.Scale is null ? 0 : output.Scale[i];
        // An F64 output's oracle computes in F64 too, so its own rounding (the same γ bound, in the other direction)
        // is allowed as well: the γ argument doubles. F32 and 16-bit outputs meet an oracle 2²⁹ times more precise.
        double roundings = (rule.GammaPerLength * output.Length) + rule.GammaExtra;
        double gamma = rule.HasGamma ? Gamma(dtype == DType.F64 ? 2 * roundings : roundings, UnitRoundoff(dtype)) : 0;
        double ulps = dtype.IsFloatingPoint() ? rule.UlpsFor(dtype) : rule.Ulps32;
        allowed = ulps * FloatFormat.Ulp(dtype, e) + gamma * Math.Abs(scale);
        double diff = Math.Abs(aFinite - e);
        return allowed > 0 ? diff / allowed : double.PositiveInfinity;
    }
}
