using System.Globalization;
using Hal.Conformance.Kernels;

namespace Hal.Conformance.Reports;

/// <summary>
/// The results of one backend in a conformance run: the device it ran on and every case's result, or, for a
/// backend that cannot run here, the probe's reason (reported as skipped, never dropped).
/// </summary>
/// <param name="Backend">the backend's name (<c>cpu</c>, <c>vendor</c>).</param>
/// <param name="Device">the device the cases ran on (<c>cpu:0</c>); null when the backend is unavailable.</param>
/// <param name="UnavailableReason">why the backend could not run here; null when it ran.</param>
/// <param name="Results">every case's result, in catalogue order (empty when unavailable).</param>
public sealed record BackendRun(string Backend, string? Device, string? UnavailableReason, IReadOnlyList<KernelCaseResult> Results)
{
    /// <summary>A backend that ran on <paramref name="device"/>.</summary>
    public static BackendRun Ran(string backend, string device, IReadOnlyList<KernelCaseResult> results) => new(backend, device, null, results);

    /// <summary>A backend that cannot run here, with the probe's reason.</summary>
    public static BackendRun Unavailable(string backend, string reason) => new(backend, null, reason, []);

    /// <summary>True when the backend ran.</summary>
    public bool Available => UnavailableReason is null;

    /// <summary>The name reports show: the device when the backend ran, else the backend.</summary>
    public string Label => Device ?? Backend;

    /// <summary>Counts per status.</summary>
    public RunTotals Totals => RunTotals.Of(Results);
}

/// <summary>How many cases ended in each status.</summary>
/// <param name="Cases">all cases.</param>
/// <param name="Passed">passed.</param>
/// <param name="Failed">failed (an output out of bounds, or the wrong exception).</param>
/// <param name="Errored">raised where it should have computed, or timed out.</param>
/// <param name="Unsupported">not applicable to the device, with a reason.</param>
/// <param name="ExpectedFailures">failed as the expectations file says.</param>
/// <param name="UnexpectedPasses">passed although the expectations file says they fail.</param>
public sealed record RunTotals(int Cases, int Passed, int Failed, int Errored, int Unsupported, int ExpectedFailures, int UnexpectedPasses)
{
    /// <summary>Counts <paramref name="results"/>.</summary>
    public static RunTotals Of(IEnumerable<KernelCaseResult> results)
    {
        ArgumentNullException.ThrowIfNull(results);
        int cases = 0, passed = 0, failed = 0, errored = 0, unsupported = 0, expected = 0, unexpectedPass = 0;
        foreach (var r in results)
        {
            cases++;
            switch (r.Status)
            {
                case CaseStatus.Passed: passed++; break;
                case CaseStatus.Failed: failed++; break;
                case CaseStatus.Errored: errored++; break;
                case CaseStatus.Unsupported: unsupported++; break;
                case CaseStatus.ExpectedFailure: expected++; break;
                case CaseStatus.UnexpectedPass: unexpectedPass++; break;
            }
        }
        return new RunTotals(cases, passed, failed, errored, unsupported, expected, unexpectedPass);
    }

    /// <summary>Failed plus errored: the cases that make a run fail.</summary>
    public int UnexpectedFailures => Failed + Errored;

    /// <summary>One line: <c>812 cases: 790 passed, 0 failed, 0 errored, 20 unsupported, 2 expected failures, 0 unexpected passes</c>.</summary>
    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"{Cases} cases: {Passed} passed, {Failed} failed, {Errored} errored, {Unsupported} unsupported, {ExpectedFailures} expected failures, {UnexpectedPasses} unexpected passes");
}

/// <summary>
/// One cell of the op × dtype matrix of one backend: its counts, its worst error and the paths that ran.
/// The console table, the HTML matrix and the JSON totals all read these.
/// </summary>
/// <param name="Op">the row.</param>
/// <param name="DType">the column.</param>
/// <param name="Results">the cell's cases.</param>
public sealed record MatrixCell(string Op, DType DType, IReadOnlyList<KernelCaseResult> Results)
{
    /// <summary>Counts per status.</summary>
    public RunTotals Totals => RunTotals.Of(Results);

    /// <summary>The verdict colour of the cell: fail over expected failure over pass over unsupported.</summary>
    public CellVerdict Verdict
    {
        get
        {
            var t = Totals;
            if (t.UnexpectedFailures > 0)
            {
                return CellVerdict.Fail;
            }
            if (t.ExpectedFailures > 0)
            {
                return CellVerdict.ExpectedFailure;
            }
            return t.Passed + t.UnexpectedPasses > 0 ? CellVerdict.Pass : CellVerdict.Unsupported;
        }
    }

    /// <summary>
    /// The worst error of the cell's value cases, as printed: <c>exact</c> for exact and bitwise rules that held,
    /// <c>2.5 ULP</c> where the rule is a pure ULP bound, <c>0.31×</c> (of the allowed error) where it has a γ term,
    /// <c>-</c> when no value case produced a verdict.
    /// </summary>
    public string WorstError => FormatWorst(Results);

    /// <summary>Which paths ran for a tier-2 op: <c>fused</c>, <c>composite</c>, <c>both</c>, or <c>-</c> (tier 1, or nothing ran).</summary>
    public string Paths => FormatPaths(Results);

    /// <summary>See <see cref="WorstError"/>.</summary>
    public static string FormatWorst(IEnumerable<KernelCaseResult> results)
    {
        ArgumentNullException.ThrowIfNull(results);
        double worstUlps = -1, worstNorm = -1;
        bool anyExact = false, exactMismatch = false;
        foreach (var r in results)
        {
            if (r.Status == CaseStatus.Unsupported)
            {
                continue;
            }
            foreach (var v in r.Verdicts)
            {
                var rule = Report.RuleOf(r.Case.Op);
                if (rule is null || rule.Kind != RuleKind.Bound)
                {
                    anyExact = true;
                    exactMismatch |= !(v.NormalisedError <= 0);
                }
                else if (!rule.HasGamma)
                {
                    worstUlps = Math.Max(worstUlps, double.IsNaN(v.UlpError) ? double.PositiveInfinity : v.UlpError);
                }
                else
                {
                    worstNorm = Math.Max(worstNorm, double.IsNaN(v.NormalisedError) ? double.PositiveInfinity : v.NormalisedError);
                }
            }
        }
        var parts = new List<string>();
        if (worstUlps >= 0)
        {
            parts.Add($"{KernelConformance.FormatUlps(worstUlps)} ULP");
        }
        if (worstNorm >= 0)
        {
            parts.Add($"{KernelConformance.FormatNorm(worstNorm)}×");
        }
        if (anyExact && parts.Count == 0)
        {
            parts.Add(exactMismatch ? "mismatch" : "exact");
        }
        else if (exactMismatch)
        {
            parts.Add("mismatch");
        }
        return parts.Count == 0 ? "-" : string.Join(", ", parts);
    }

    /// <summary>See <see cref="Paths"/>.</summary>
    public static string FormatPaths(IEnumerable<KernelCaseResult> results)
    {
        ArgumentNullException.ThrowIfNull(results);
        bool fused = false, composite = false;
        foreach (var r in results)
        {
            if (r.Status == CaseStatus.Unsupported || r.PathTaken is not { } path)
            {
                continue;
            }
            fused |= path == KernelPath.Fused;
            composite |= path == KernelPath.Composite;
        }
        return (fused, composite) switch
        {
            (true, true) => "both",
            (true, false) => "fused",
            (false, true) => "composite",
            _ => "-",
        };
    }
}

/// <summary>The colour of a matrix cell.</summary>
public enum CellVerdict
{
    /// <summary>Every case that ran passed (green).</summary>
    Pass,

    /// <summary>A case failed or errored unexpectedly (red).</summary>
    Fail,

    /// <summary>Nothing ran: the device does not support the op at that dtype (grey).</summary>
    Unsupported,

    /// <summary>Only expected failures went wrong (amber).</summary>
    ExpectedFailure,
}

/// <summary>Helpers the report writers share.</summary>
public static class Report
{
    /// <summary>The op × dtype cells of <paramref name="results"/>, ops in first-seen (catalogue) order, dtypes in declaration order.</summary>
    public static IReadOnlyList<MatrixCell> Matrix(IReadOnlyList<KernelCaseResult> results)
    {
        ArgumentNullException.ThrowIfNull(results);
        var opOrder = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var r in results)
        {
            opOrder.TryAdd(r.Case.Op, opOrder.Count);
        }
        return results
            .GroupBy(r => (r.Case.Op, r.Case.DType))
            .OrderBy(g => opOrder[g.Key.Op]).ThenBy(g => (int)g.Key.DType)
            .Select(g => new MatrixCell(g.Key.Op, g.Key.DType, g.ToList()))
            .ToList();
    }

    /// <summary>The ops of <paramref name="results"/> in first-seen order.</summary>
    public static IReadOnlyList<string> Ops(IEnumerable<KernelCaseResult> results) =>
        results.Select(r => r.Case.Op).Distinct(StringComparer.Ordinal).ToList();

    /// <summary>The dtypes that appear in <paramref name="results"/>, in declaration order.</summary>
    public static IReadOnlyList<DType> DTypes(IEnumerable<KernelCaseResult> results) =>
        results.Select(r => r.Case.DType).Distinct().Order().ToList();

    /// <summary>The tolerance row of <paramref name="op"/>, or null when the table has none (error-only ops).</summary>
    public static ToleranceRule? RuleOf(string op)
    {
        try
        {
            return ToleranceTable.For(op);
        }
        catch (KeyNotFoundException)
        {
            return null;
        }
    }

    /// <summary>The table rows that judged at least one output in <paramref name="runs"/>, in table order.</summary>
    public static IReadOnlyList<ToleranceRule> RulesUsed(IEnumerable<BackendRun> runs)
    {
        ArgumentNullException.ThrowIfNull(runs);
        var used = runs.SelectMany(b => b.Results).Where(r => r.Verdicts.Count > 0)
            .Select(r => RuleOf(r.Case.Op)).OfType<ToleranceRule>().ToHashSet();
        return ToleranceTable.Rules.Where(used.Contains).ToList();
    }

    /// <summary>The status as reports spell it: <c>passed</c>, <c>failed</c>, <c>errored</c>, <c>unsupported</c>, <c>expected-failure</c>, <c>unexpected-pass</c>.</summary>
    public static string StatusName(CaseStatus status) => status switch
    {
        CaseStatus.Passed => "passed",
        CaseStatus.Failed => "failed",
        CaseStatus.Errored => "errored",
        CaseStatus.Unsupported => "unsupported",
        CaseStatus.ExpectedFailure => "expected-failure",
        CaseStatus.UnexpectedPass => "unexpected-pass",
        _ => throw new ArgumentOutOfRangeException(nameof(status), status, "unknown status"),
    };

    /// <summary>The backend part of a device label (<c>cpu</c> of <c>cpu:0</c>).</summary>
    public static string BackendOf(string device)
    {
        ArgumentNullException.ThrowIfNull(device);
        int colon = device.LastIndexOf(':');
        return colon < 0 ? device : device[..colon];
    }
}
