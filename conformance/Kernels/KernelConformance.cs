using System.Diagnostics;
using System.Globalization;

namespace Hal.Conformance.Kernels;

/// <summary>Options of a kernel conformance run.</summary>
public sealed class KernelConformanceOptions
{
    /// <summary>Run only the <c>--quick</c> subset.</summary>
    public bool Quick { get; init; }

    /// <summary>Run only the cases this accepts (e.g. a <c>--filter</c> glob over ids).</summary>
    public Func<KernelCase, bool>? Filter { get; init; }

    /// <summary>Known failures, each with a reason.</summary>
    public Expectations Expectations { get; init; } = Expectations.None;

    /// <summary>Wraps the device's kernels before the run (the suite's own tests plant faults this way).</summary>
    public Func<IKernels, IKernels>? KernelDecorator { get; init; }

    /// <summary>Keep every case's outputs in its result (for comparing backends).</summary>
    public bool KeepOutputs { get; init; }

    /// <summary>How long one case may run before the run stops with an error naming it.</summary>
    public TimeSpan CaseTimeout { get; init; } = TimeSpan.FromMinutes(2);

    /// <summary>Called with each result as soon as it is known (progress output).</summary>
    public Action<KernelCaseResult>? OnResult { get; init; }
}

/// <summary>
/// Runs kernel cases on one device and judges them: value cases against the oracle through the tolerance table,
/// error cases against the documented exception. Every case is accounted for: passed, failed, errored,
/// unsupported (with the reason), or matched by an expectation.
/// </summary>
public static class KernelConformance
{
    /// <summary>Runs <paramref name="cases"/> (the whole catalogue when null) on <paramref name="device"/>.</summary>
    public static IReadOnlyList<KernelCaseResult> Run(IDevice device, KernelConformanceOptions? options = null, IEnumerable<KernelCase>? cases = null)
    {
        ArgumentNullException.ThrowIfNull(device);
        options ??= new KernelConformanceOptions();
        var kernels = options.KernelDecorator?.Invoke(device.Kernels) ?? device.Kernels;
        var recorder = new RecordingKernels(kernels);
        var ops = new Ops(device, recorder);
        var results = new List<KernelCaseResult>();
        string? stopReason = null;
        foreach (var c in cases ?? KernelCatalogue.All())
        {
            if ((options.Quick && !c.Quick) || (options.Filter is { } filter && !filter(c)))
            {
                continue;
            }
            var result = stopReason is null
                ? RunCase(ops, recorder, c, options)
                : new KernelCaseResult(c, device.Id.ToString(), CaseStatus.Errored, null, [], $"not run: {stopReason}", [], 0);
            if (result.Status == CaseStatus.Errored && result.Message.StartsWith("timed out", StringComparison.Ordinal))
            {
                stopReason = $"case {c.Id} timed out and may still hold the device";
            }
            result = ApplyExpectation(result, options.Expectations);
            results.Add(result);
            options.OnResult?.Invoke(result);
        }
        return results;
    }

    /// <summary>Runs one case through <paramref name="ops"/> (whose kernels are <paramref name="recorder"/>).</summary>
    public static KernelCaseResult RunCase(Ops ops, RecordingKernels recorder, KernelCase c, KernelConformanceOptions options)
    {
        ArgumentNullException.ThrowIfNull(ops);
        ArgumentNullException.ThrowIfNull(recorder);
        ArgumentNullException.ThrowIfNull(c);
        ArgumentNullException.ThrowIfNull(options);
        string device = ops.Device.Id.ToString();
        var declared = ops.Device.Capabilities.DTypes;
        var missing = new[] { c.DType }.Concat(c.AlsoNeeds).Where(d => !declared.Contains(d)).Distinct().ToList();
        if (missing.Count > 0)
        {
            return new KernelCaseResult(c, device, CaseStatus.Unsupported, null, [],
                $"the device does not declare {string.Join(", ", missing.Select(d => d.Name()))}", [], 0);
        }
        KernelPath? path = null;
        if (c.Fused is { } fusedOp)
        {
            ops.ForceComposite = false;
            if (c.Path == KernelPath.Fused && ops.PathFor(fusedOp, c.DType) == KernelPath.Composite)
            {
                return new KernelCaseResult(c, device, CaseStatus.Unsupported, KernelPath.Composite, [],
                    $"no fused {KernelNames.Of(fusedOp)} kernel at {c.DType.Name()}: the composite fallback serves it (checked by the @composite cases)", [], 0);
            }
            ops.ForceComposite = c.Path == KernelPath.Composite;
            path = c.Path;
        }
        recorder.Reset();
        var watch = Stopwatch.StartNew();
        IReadOnlyList<CaseOutput>? outputs = null;
        Exception? raised = null;
        var task = Task.Run(() =>
        {
            using var ctx = new CaseContext(ops, c.Seed);
            try
            {
                outputs = c.Run(ctx);
                ops.Device.Synchronize();
            }
            catch (Exception e)
            {
                raised = e;
            }
        });
        bool finished = task.Wait(options.CaseTimeout);
        ops.ForceComposite = false;
        double seconds = watch.Elapsed.TotalSeconds;
        var used = recorder.Used;
        if (!finished)
        {
            return new KernelCaseResult(c, device, CaseStatus.Errored, path, [],
                $"timed out after {options.CaseTimeout.TotalSeconds:F0} s: {Describe(c)}", used, seconds);
        }
        if (c.IsErrorCase)
        {
            return JudgeErrorCase(c, device, raised, used, seconds);
        }
        if (raised is not null)
        {
            return new KernelCaseResult(c, device, CaseStatus.Errored, path, [],
                $"raised {raised.GetType().Name}: {raised.Message} ({Describe(c)}; kernels used: {string.Join(", ", used)})", used, seconds);
        }
        var verdicts = outputs!.Select(OutputCheck.Check).ToList();
        bool passed = verdicts.All(v => v.Passed);
        string message = passed ? "" : FailureMessage(c, verdicts, used);
        return new KernelCaseResult(c, device, passed ? CaseStatus.Passed : CaseStatus.Failed, path, verdicts, message, used, seconds,
            Outputs: options.KeepOutputs ? outputs : null);
    }

    private static KernelCaseResult JudgeErrorCase(KernelCase c, string device, Exception? raised, IReadOnlyList<string> used, double seconds)
    {
        var expected = c.Expects!;
        if (raised is null)
        {
            return new KernelCaseResult(c, device, CaseStatus.Failed, null, [],
                $"no exception; expected {expected.Name} ({Describe(c)})", used, seconds);
        }
        if (!expected.IsInstanceOfType(raised))
        {
            return new KernelCaseResult(c, device, CaseStatus.Failed, null, [],
                $"raised {raised.GetType().Name} ({raised.Message}); expected {expected.Name} ({Describe(c)})", used, seconds);
        }
        if (string.IsNullOrWhiteSpace(raised.Message))
        {
            return new KernelCaseResult(c, device, CaseStatus.Failed, null, [],
                $"raised {expected.Name} with an empty message; it must say what was wrong ({Describe(c)})", used, seconds);
        }
        return new KernelCaseResult(c, device, CaseStatus.Passed, null, [], $"{raised.GetType().Name}: {raised.Message}", used, seconds);
    }

    private static KernelCaseResult ApplyExpectation(KernelCaseResult r, Expectations expectations)
    {
        if (expectations.Match(r.Case.Id) is not { } e)
        {
            return r;
        }
        return r.Status switch
        {
            CaseStatus.Failed or CaseStatus.Errored => r with { Status = CaseStatus.ExpectedFailure, ExpectationReason = e.Reason },
            CaseStatus.Passed => r with
            {
                Status = CaseStatus.UnexpectedPass,
                ExpectationReason = e.Reason,
                Message = $"passed, but the expectations mark it as failing ({e.Reason}); remove the entry '{e.Case}'",
            },
            _ => r with { ExpectationReason = e.Reason },
        };
    }

    /// <summary><c>case ID, seed S, shape [..]</c>.</summary>
    public static string Describe(KernelCase c) =>
        $"case {c.Id}, seed {c.Seed}, shape {c.Shape}";

    private static string FailureMessage(KernelCase c, IReadOnlyList<OutputVerdict> verdicts, IReadOnlyList<string> used)
    {
        var parts = new List<string>();
        foreach (var v in verdicts.Where(v => !v.Passed))
        {
            parts.Add(string.Create(CultureInfo.InvariantCulture,
                $"output {v.Output}[{v.WorstIndex}]: expected {v.Expected:R}, actual {v.Actual:R} ({FormatUlps(v.UlpError)} ULP; {FormatNorm(v.NormalisedError)}× the allowed {v.Allowed:G3}); {v.Failures} of {v.Count} elements out of bounds"));
        }
        return $"{Describe(c)}: {string.Join("; ", parts)}; kernels used: {string.Join(", ", used)}";
    }

    /// <summary>A ULP count as printed: <c>3.2</c>, <c>1.5e+04</c>, <c>inf</c>.</summary>
    public static string FormatUlps(double ulps) =>
        double.IsInfinity(ulps) || double.IsNaN(ulps) ? "inf" : ulps < 1000 ? ulps.ToString("0.##", CultureInfo.InvariantCulture) : ulps.ToString("0.0e+00", CultureInfo.InvariantCulture);

    /// <summary>A normalised error as printed.</summary>
    public static string FormatNorm(double norm) =>
        double.IsInfinity(norm) || double.IsNaN(norm) ? "inf" : norm.ToString("0.###", CultureInfo.InvariantCulture);
}
