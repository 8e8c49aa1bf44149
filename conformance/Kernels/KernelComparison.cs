using System.Globalization;

namespace Hal.Conformance.Kernels;

/// <summary>
/// How far two backends' outputs are from each other on one case, in the units of the tolerance table:
/// at each element |a − b| divided by the bound the oracle's value there allows (so 1 means "as far apart as one
/// of them may be from the truth"), and |a − b| in ULPs of the output dtype there.
/// </summary>
/// <param name="Case">the case (same id and seed on both backends).</param>
/// <param name="First">the first backend's result.</param>
/// <param name="Second">the second backend's result.</param>
/// <param name="Normalised">the largest normalised divergence over the outputs (0 when identical; ∞ when a NaN or infinity differs, or under an exact rule any difference); NaN when the case did not run on both.</param>
/// <param name="Ulps">the largest divergence in ULPs; NaN when the case did not run on both.</param>
/// <param name="Output">the output with the largest divergence (null when none).</param>
/// <param name="WorstIndex">its element with the largest divergence (−1 when none).</param>
/// <param name="NotCompared">why the case was not compared (a backend did not run it, with its status and message), or null.</param>
public sealed record CaseDivergence(
    KernelCase Case, KernelCaseResult First, KernelCaseResult Second, double Normalised, double Ulps, string? Output, long WorstIndex, string? NotCompared);

/// <summary>Per op, the largest divergence between two backends and each one's own worst error against the oracle.</summary>
/// <param name="Op">the op.</param>
/// <param name="Compared">cases run and compared on both.</param>
/// <param name="NotCompared">cases at least one backend could not run (unsupported, errored, or no outputs), with why.</param>
/// <param name="Worst">the compared case with the largest normalised divergence (null when none was compared).</param>
/// <param name="FirstWorstError">the first backend's largest normalised error against the oracle over the op's value cases.</param>
/// <param name="SecondWorstError">the second's.</param>
public sealed record OpDivergence(string Op, int Compared, IReadOnlyList<CaseDivergence> NotCompared, CaseDivergence? Worst, double FirstWorstError, double SecondWorstError);

/// <summary>
/// <c>--compare B1,B2</c>: runs the same cases (same seeds, so the same inputs) on two devices with their outputs
/// kept, and measures the two backends against each other as well as against the oracle.
/// </summary>
public static class KernelComparison
{
    /// <summary>Runs the cases on both devices and compares them case by case.</summary>
    public static IReadOnlyList<CaseDivergence> Run(IDevice first, IDevice second, KernelConformanceOptions? options = null, IEnumerable<KernelCase>? cases = null)
    {
        ArgumentNullException.ThrowIfNull(first);
        ArgumentNullException.ThrowIfNull(second);
        options ??= new KernelConformanceOptions();
        var keep = new KernelConformanceOptions
        {
            Quick = options.Quick,
            Filter = options.Filter,
            Expectations = options.Expectations,
            KernelDecorator = options.KernelDecorator,
            KeepOutputs = true,
            CaseTimeout = options.CaseTimeout,
            OnResult = options.OnResult,
        };
        var list = (cases ?? KernelCatalogue.All()).ToList();
        var a = KernelConformance.Run(first, keep, list);
        var b = KernelConformance.Run(second, keep, list);
        return Compare(a, b);
    }

    /// <summary>Pairs two result lists by case id (results without the other side are dropped) and measures each pair.</summary>
    public static IReadOnlyList<CaseDivergence> Compare(IReadOnlyList<KernelCaseResult> first, IReadOnlyList<KernelCaseResult> second)
    {
        ArgumentNullException.ThrowIfNull(first);
        ArgumentNullException.ThrowIfNull(second);
        var byId = second.ToDictionary(r => r.Case.Id, StringComparer.Ordinal);
        var result = new List<CaseDivergence>();
        foreach (var ra in first)
        {
            if (byId.TryGetValue(ra.Case.Id, out var rb))
            {
                result.Add(Measure(ra, rb));
            }
        }
        return result;
    }

    /// <summary>Groups case divergences by op (catalogue order).</summary>
    public static IReadOnlyList<OpDivergence> ByOp(IReadOnlyList<CaseDivergence> cases)
    {
        ArgumentNullException.ThrowIfNull(cases);
        return cases.GroupBy(c => c.Case.Op, StringComparer.Ordinal)
            .Select(g =>
            {
                var compared = g.Where(c => c.NotCompared is null).ToList();
                return new OpDivergence(
                    g.Key,
                    compared.Count,
                    g.Where(c => c.NotCompared is not null).ToList(),
                    compared.Count == 0 ? null : compared.MaxBy(c => NanAsInf(c.Normalised)),
                    WorstOwnError(g.Select(c => c.First)),
                    WorstOwnError(g.Select(c => c.Second)));
            })
            .ToList();
    }

    /// <summary>Measures one pair of results of the same case.</summary>
    public static CaseDivergence Measure(KernelCaseResult first, KernelCaseResult second)
    {
        ArgumentNullException.ThrowIfNull(first);
        ArgumentNullException.ThrowIfNull(second);
        var c = first.Case;
        if (c.IsErrorCase)
        {
            return new CaseDivergence(c, first, second, double.NaN, double.NaN, null, -1, "an error case: nothing to compare");
        }
        if (Why(first) is { } whyFirst)
        {
            return new CaseDivergence(c, first, second, double.NaN, double.NaN, null, -1, $"{first.Device} {whyFirst}");
        }
        if (Why(second) is { } whySecond)
        {
            return new CaseDivergence(c, first, second, double.NaN, double.NaN, null, -1, $"{second.Device} {whySecond}");
        }
        double worstNorm = 0, worstUlps = 0;
        string? worstOutput = null;
        long worstIndex = -1;
        foreach (var oa in first.Outputs!)
        {
            var ob = second.Outputs!.FirstOrDefault(o => o.Name == oa.Name);
            if (ob is null || ob.Actual.Length != oa.Actual.Length)
            {
                return new CaseDivergence(c, first, second, double.NaN, double.NaN, oa.Name, -1, $"output {oa.Name} differs in presence or length between the backends");
            }
            for (int i = 0; i < oa.Actual.Length; i++)
            {
                var (norm, ulps) = Divergence(oa, ob.Actual[i], i);
                if (worstIndex < 0 || NanAsInf(norm) > NanAsInf(worstNorm))
                {
                    worstNorm = norm;
                    worstOutput = oa.Name;
                    worstIndex = i;
                }
                worstUlps = Math.Max(worstUlps, NanAsInf(ulps));
            }
        }
        return new CaseDivergence(c, first, second, worstNorm, worstUlps, worstOutput, worstIndex, null);
    }

    /// <summary>
    /// The divergence at element <paramref name="i"/> between <paramref name="output"/>'s actual value and
    /// <paramref name="other"/>: normalised by the bound the oracle's value allows there, and in ULPs of the dtype.
    /// </summary>
    public static (double Normalised, double Ulps) Divergence(CaseOutput output, double other, int i)
    {
        ArgumentNullException.ThrowIfNull(output);
        double a = output.Actual[i];
        if (BitConverter.DoubleToInt64Bits(a) == BitConverter.DoubleToInt64Bits(other) || (double.IsNaN(a) && double.IsNaN(other)))
        {
            return (0, 0);
        }
        if (double.IsNaN(a) || double.IsNaN(other) || double.IsInfinity(a) || double.IsInfinity(other))
        {
            return (double.PositiveInfinity, double.PositiveInfinity);
        }
        double allowed = Allowed(output, i);
        double diff = Math.Abs(a - other);
        double ulp = FloatFormat.Ulp(output.DType, output.Expected[i]);
        double ulps = double.IsFinite(ulp) && ulp > 0 ? diff / ulp : double.PositiveInfinity;
        // Under an exact rule (allowed 0) the two may differ only in the sign of a zero.
        double norm = allowed > 0 ? diff / allowed : diff == 0 ? 0 : double.PositiveInfinity;
        return (norm, ulps);
    }

    /// <summary>
    /// The absolute error the tolerance rule allows at element <paramref name="i"/> (the same formula as
    /// <see cref="OutputCheck"/>, evaluated at the oracle's value whatever the device computed): 0 for exact and
    /// bitwise rules and where the oracle's value is not finite.
    /// </summary>
    public static double Allowed(CaseOutput output, int i)
    {
        ArgumentNullException.ThrowIfNull(output);
        var rule = output.Rule;
        double e = output.Expected[i];
        if (rule.Kind != RuleKind.Bound || !double.IsFinite(e))
        {
            return 0;
        }
        double ulps = output.DType.IsFloatingPoint() ? rule.UlpsFor(output.DType) : rule.Ulps32;
        double gamma = rule.HasGamma ? OutputCheck.Gamma((rule.GammaPerLength * output.Length) + rule.GammaExtra, OutputCheck.UnitRoundoff(output.DType)) : 0;
        double scale = output.Scale is null ? 0 : Math.Abs(output.Scale[i]);
        double allowed = (ulps * FloatFormat.Ulp(output.DType, e)) + (gamma * scale);
        return double.IsFinite(allowed) ? allowed : 0;
    }

    private static string? Why(KernelCaseResult r) => r.Status switch
    {
        CaseStatus.Unsupported => $"cannot run it: {r.Message}",
        CaseStatus.Errored => $"errored: {r.Message}",
        _ when r.Outputs is null => $"kept no outputs ({r.Status})",
        _ => null,
    };

    private static double WorstOwnError(IEnumerable<KernelCaseResult> results)
    {
        double worst = double.NaN;
        foreach (var v in results.SelectMany(r => r.Verdicts))
        {
            double n = NanAsInf(v.NormalisedError);
            worst = double.IsNaN(worst) ? n : Math.Max(worst, n);
        }
        return worst;
    }

    private static double NanAsInf(double x) => double.IsNaN(x) ? double.PositiveInfinity : x;

    /// <summary>A divergence or error as printed: <c>0</c>, <c>0.25</c>, <c>inf</c>, <c>-</c> (not measured).</summary>
    public static string Format(double value) =>
        double.IsNaN(value) ? "-" : double.IsInfinity(value) ? "inf" : value.ToString("0.###", CultureInfo.InvariantCulture);
}
