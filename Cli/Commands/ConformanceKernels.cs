using System.CommandLine;
using System.Globalization;
using System.Text;
using Hal.Conformance.Kernels;
using Hal.Conformance.Reports;

namespace Hal.Cli.Commands;

/// <summary>The options of <c>hal conformance</c> that only the kernel mode reads.</summary>
internal sealed class KernelOptions
{
    public Option<bool> All { get; } = new("--all")
    {
        Description = "Check every registered backend that is available here; the others are reported as skipped with their reasons.",
    };

    public Option<string?> Filter { get; } = new("--filter")
    {
        Description = "Only the cases whose id matches GLOB (* any run, ? one character), e.g. 'softmax/f32/*' or '*@composite'.",
        HelpName = "GLOB",
    };

    public Option<string?> Expect { get; } = new("--expect")
    {
        Description = "Expectations file: {\"expectedFailures\":[{\"case\":GLOB,\"reason\":TEXT}]}; matching failures do not fail the run.",
        HelpName = "FILE",
    };

    public Option<string?> JUnit { get; } = new("--junit")
    {
        Description = "Also write JUnit XML (one testcase per case) to FILE.",
        HelpName = "FILE",
    };

    public Option<string?> Html { get; } = new("--html")
    {
        Description = "Also write a self-contained HTML page (op × dtype matrix with drill-down) to FILE.",
        HelpName = "FILE",
    };

    public Option<string?> Compare { get; } = new("--compare")
    {
        Description = "Run the same cases on two backends and report their largest divergence per op, e.g. --compare cpu,opencl.",
        HelpName = "B1,B2",
    };

    public Option<bool> PrintTolerances { get; } = new("--print-tolerances")
    {
        Description = "Print the tolerance table as markdown (the table in docs/conformance.md) and exit.",
    };

    /// <summary>The first kernel-only option given on the command line, by name, or null.</summary>
    public string? FirstGiven(ParseResult parse)
    {
        if (parse.GetValue(All))
        {
            return All.Name;
        }
        if (parse.GetValue(PrintTolerances))
        {
            return PrintTolerances.Name;
        }
        foreach (var o in new[] { Filter, Expect, JUnit, Html, Compare })
        {
            if (parse.GetValue(o) is not null)
            {
                return o.Name;
            }
        }
        return null;
    }
}

/// <summary>
/// The kernel mode of <c>hal conformance</c>: runs the kernel catalogue on each chosen backend's device, prints the
/// op × dtype summary and every unexpected failure, writes the asked-for reports, and exits 0 only when no case
/// failed unexpectedly. Progress goes to stderr, so stdout holds only the report.
/// </summary>
internal static class ConformanceKernels
{
    /// <summary>Exit code when a case failed unexpectedly.</summary>
    public const int FailedExitCode = ConformanceCommand.FailedExitCode;

    public static int Run(ParseResult parse, GlobalOptions globals, KernelOptions o, string[] backends, bool quick, string? jsonPath)
    {
        var stdout = parse.InvocationConfiguration.Output;
        var stderr = parse.InvocationConfiguration.Error;
        if (parse.GetValue(o.PrintTolerances))
        {
            stdout.Write(ToleranceMarkdown.Generate());
            return 0;
        }
        string? filter = parse.GetValue(o.Filter);
        bool all = parse.GetValue(o.All);
        string? compare = parse.GetValue(o.Compare);
        if (compare is not null && (all || backends.Length > 0))
        {
            throw new UsageException("--compare names its two backends; leave out --backend and --all");
        }
        if (all && backends.Length > 0)
        {
            throw new UsageException("--all checks every available backend; leave out --backend");
        }
        var expectations = parse.GetValue(o.Expect) is { } expectPath ? Expectations.Load(expectPath) : Expectations.None;
        var cases = KernelCatalogue.All()
            .Where(c => (!quick || c.Quick) && (filter is null || Glob.IsMatch(filter, c.Id)))
            .ToList();
        if (cases.Count == 0)
        {
            throw new UsageException(filter is null
                ? "the catalogue has no cases to run"
                : $"--filter '{filter}' matches no case id (ids look like 'unary.exp/f32/[7,33]/normal' or 'softmax/f32/[7,33]/edge@composite')");
        }
        var options = new KernelConformanceOptions { Expectations = expectations };
        var description = new RunDescription(quick, filter);
        using var session = globals.OpenSession(parse);

        List<BackendRun> runs;
        if (compare is not null)
        {
            var names = compare.Split(',', StringSplitOptions.TrimEntries);
            if (names.Length != 2 || names.Any(n => n.Length == 0))
            {
                throw new UsageException($"--compare: expected two backends separated by a comma, e.g. cpu,opencl; got '{compare}'");
            }
            using var first = OpenAvailable(session, names[0]);
            using var second = OpenAvailable(session, names[1]);
            var progress = new Progress(stderr, cases.Count * 2, $"{first.Id} vs {second.Id}");
            var divergences = KernelComparison.Run(first, second, With(options, progress.Report), cases);
            progress.Done();
            runs =
            [
                BackendRun.Ran(Report.BackendOf(first.Id.ToString()), first.Id.ToString(), divergences.Select(d => d.First).ToList()),
                BackendRun.Ran(Report.BackendOf(second.Id.ToString()), second.Id.ToString(), divergences.Select(d => d.Second).ToList()),
            ];
            ComparisonReport.Write(stdout, first.Id.ToString(), second.Id.ToString(), divergences);
        }
        else
        {
            runs = [];
            foreach (var (name, unavailable) in Targets(session, backends, all))
            {
                if (unavailable is not null)
                {
                    stderr.WriteLine($"{name}: skipped, {unavailable}");
                    runs.Add(BackendRun.Unavailable(name, unavailable));
                    continue;
                }
                using var device = OpenAvailable(session, name);
                var progress = new Progress(stderr, cases.Count, device.Id.ToString());
                var results = KernelConformance.Run(device, With(options, progress.Report), cases);
                progress.Done();
                runs.Add(BackendRun.Ran(device.Id.Backend, device.Id.ToString(), results));
            }
        }

        if (jsonPath is not null)
        {
            JsonReport.WriteFile(jsonPath, runs, description);
        }
        if (parse.GetValue(o.JUnit) is { } junitPath)
        {
            using var file = new StreamWriter(junitPath, false, new UTF8Encoding(false));
            JUnitReport.Write(file, runs);
        }
        if (parse.GetValue(o.Html) is { } htmlPath)
        {
            using var file = new StreamWriter(htmlPath, false, new UTF8Encoding(false));
            HtmlReport.Write(file, runs, description);
        }
        ConsoleReport.Write(stdout, runs);
        return ExitCodeFor(runs);
    }

    /// <summary>0 when no case failed unexpectedly (expected failures, unsupported cases and skipped backends do not count), else <see cref="FailedExitCode"/>.</summary>
    internal static int ExitCodeFor(IReadOnlyList<BackendRun> runs) =>
        runs.Any(r => r.Totals.UnexpectedFailures > 0) ? FailedExitCode : 0;

    /// <summary>The backends to run: the named ones (default cpu), or with --all every registered one, with the probe's reason for those that cannot run.</summary>
    private static List<(string Name, string? Unavailable)> Targets(HalSession session, string[] backends, bool all)
    {
        if (all)
        {
            return session.Runtime.ProbeAll()
                .Select(p => (p.Backend, p.Available && p.Devices.Count > 0 ? null : p.Reason ?? "it has no devices"))
                .ToList();
        }
        var names = backends.Length == 0 ? ["cpu"] : backends;
        var duplicate = names.GroupBy(n => n.Trim().ToLowerInvariant()).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null)
        {
            throw new UsageException($"--backend {duplicate.Key} is given twice");
        }
        return names.Select(n => (n, (string?)null)).ToList();
    }

    /// <summary>Opens device <c>name[:index]</c> after checking that its backend is registered and available.</summary>
    /// <exception cref="BackendUnavailableException">unknown backend, or one that cannot run here (with the probe's reason).</exception>
    private static IDevice OpenAvailable(HalSession session, string spec)
    {
        DeviceId id;
        try
        {
            id = DeviceId.Parse(spec);
        }
        catch (FormatException e)
        {
            throw new UsageException($"--backend: {e.Message}");
        }
        var backend = session.Runtime.GetBackend(id.Backend);
        var probe = backend.Probe();
        if (!probe.Available || probe.Devices.Count == 0)
        {
            throw new BackendUnavailableException(backend.Name, probe.Reason ?? "it has no devices");
        }
        if (id.Index >= probe.Devices.Count)
        {
            throw new UsageException($"--backend {spec}: backend '{backend.Name}' has {probe.Devices.Count} device(s), indices 0–{probe.Devices.Count - 1}");
        }
        return backend.Open(id.Index);
    }

    private static KernelConformanceOptions With(KernelConformanceOptions o, Action<KernelCaseResult> onResult) => new()
    {
        Quick = o.Quick,
        Filter = o.Filter,
        Expectations = o.Expectations,
        KernelDecorator = o.KernelDecorator,
        KeepOutputs = o.KeepOutputs,
        CaseTimeout = o.CaseTimeout,
        OnResult = onResult,
    };

    /// <summary>A line on stderr at every tenth of the cases (and at the end): how many ran, how many failed.</summary>
    private sealed class Progress(TextWriter stderr, int total, string label)
    {
        private int _done;
        private int _failed;
        private int _lastTenth;

        public void Report(KernelCaseResult r)
        {
            _done++;
            if (r.IsUnexpectedFailure)
            {
                _failed++;
            }
            int tenth = total == 0 ? 10 : _done * 10 / total;
            if (tenth > _lastTenth && _done < total)
            {
                _lastTenth = tenth;
                Write();
            }
        }

        public void Done() => Write();

        private void Write() =>
            stderr.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{label}: {_done}/{total} cases, {_failed} failed"));
    }
}
