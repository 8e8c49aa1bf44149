using System.CommandLine;
using System.Globalization;
using Hal.Collectives.InProcess;
using Hal.Collectives.Mpi;
using Hal.Conformance.Collectives;
using Spectre.Console;

namespace Hal.Cli.Commands;

/// <summary>
/// <c>hal conformance</c>: checks an implementation against the contract. Two modes:
/// kernels (the default, <see cref="ConformanceKernels"/>): <c>[--backend B]... [--all] [--filter GLOB] [--quick]
/// [--expect FILE] [--junit F] [--json F] [--html F] [--compare B1,B2] [--print-tolerances]</c>;
/// and <c>--collectives [--ranks N] [--quick] [--json FILE]</c>, which runs the collective catalogue on N in-process
/// ranks, or on one rank per process under mpirun (only rank 0 prints). The exit code is 0 only when no case failed
/// unexpectedly, 1 when one did, 2 for a bad flag value.
/// </summary>
internal static class ConformanceCommand
{
    /// <summary>Exit code when a case failed.</summary>
    public const int FailedExitCode = 1;

    /// <summary>How long a rank waits for the others in one collective by default: generous for the 1 M-element cases on a busy machine, short enough that a lost rank does not stall the run for the communicators' five minutes.</summary>
    public const double DefaultTimeoutSeconds = 60;

    public static Command Create(GlobalOptions globals)
    {
        var collectives = new Option<bool>("--collectives")
        {
            Description = "Check the collectives (every collective × dtype × op × size, in and out of place) bit for bit instead of the kernels.",
        };
        var ranks = new Option<int?>("--ranks")
        {
            Description = $"Ranks for --collectives: in process 1–{BenchCollectivesCommand.MaxInProcessRanks} (default the processor count, at least 2); under mpirun the world size.",
            HelpName = "N",
        };
        var backend = new Option<string[]>("--backend")
        {
            Description = "Backend to check, as a name or name:index (repeatable; default cpu). --collectives takes one.",
            HelpName = "NAME",
            Arity = ArgumentArity.ZeroOrMore,
            AllowMultipleArgumentsPerToken = false,
        };
        var quick = new Option<bool>("--quick")
        {
            Description = "Kernels: the quick subset (every op × dtype at least once). Collectives: smaller large cases (16 K elements instead of 1 M).",
        };
        var json = new Option<string?>("--json")
        {
            Description = "Also write every case result to FILE as JSON (kernels: the schema in docs/conformance.md; collectives: an array).",
            HelpName = "FILE",
        };
        var timeout = new Option<double?>("--timeout")
        {
            Description = $"Seconds a rank waits for the others in one collective before failing (default {DefaultTimeoutSeconds}).",
            HelpName = "SECONDS",
        };
        timeout.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<double?>() is { } v && !(v > 0 && double.IsFinite(v)))
            {
                r.AddError("--timeout: must be a positive number of seconds");
            }
        });
        var kernels = new KernelOptions();
        var command = new Command("conformance",
            "Check a backend against the contract: its kernels against the fp64 oracle (the default), or the collectives bit for bit (--collectives).")
        {
            collectives, ranks, backend, quick, json, timeout,
            kernels.All, kernels.Filter, kernels.Expect, kernels.JUnit, kernels.Html, kernels.Compare, kernels.PrintTolerances,
        };
        command.SetAction(parse =>
        {
            string[] backends = parse.GetValue(backend) ?? [];
            if (!parse.GetValue(collectives))
            {
                if (parse.GetValue(ranks) is not null || parse.GetValue(timeout) is not null)
                {
                    throw new UsageException($"{(parse.GetValue(ranks) is not null ? "--ranks" : "--timeout")} applies to --collectives; the kernel checks run on one device per backend");
                }
                return ConformanceKernels.Run(parse, globals, kernels, backends, parse.GetValue(quick), parse.GetValue(json));
            }
            if (kernels.FirstGiven(parse) is { } kernelOnly)
            {
                throw new UsageException($"{kernelOnly} checks kernels; it does not apply to --collectives");
            }
            if (backends.Length > 1)
            {
                throw new UsageException("--collectives: give one --backend (the ranks' devices)");
            }
            var options = new CollectiveConformanceOptions { Quick = parse.GetValue(quick) };
            var waitLimit = TimeSpan.FromSeconds(parse.GetValue(timeout) ?? DefaultTimeoutSeconds);
            string backendName = backends.Length == 1 ? backends[0] : "cpu";
            using var session = globals.OpenSession(parse);
            var (results, printingRank) = MpiCommunicator.IsUnderMpirun
                ? RunMpi(session, backendName, parse.GetValue(ranks), options, waitLimit)
                : (RunInProcess(session, backendName, parse.GetValue(ranks), options, waitLimit), true);
            bool passed = results.All(r => r.Passed);
            if (!printingRank)
            {
                // Every rank holds the combined results and exits with the same code; rank 0 reports them.
                return passed ? 0 : FailedExitCode;
            }
            if (parse.GetValue(json) is { } path)
            {
                using var file = new StreamWriter(path);
                Output.WriteJson(file, results);
            }
            Report(parse.InvocationConfiguration.Output, results);
            return passed ? 0 : FailedExitCode;
        });
        return command;
    }

    private static IReadOnlyList<CollectiveCaseResult> RunInProcess(HalSession session, string backendName, int? requestedRanks, CollectiveConformanceOptions options, TimeSpan waitLimit)
    {
        int n = requestedRanks ?? BenchCollectivesCommand.DefaultInProcessRanks();
        if (n < 1 || n > BenchCollectivesCommand.MaxInProcessRanks)
        {
            throw new UsageException($"--ranks: {n} is outside 1–{BenchCollectivesCommand.MaxInProcessRanks} for the in-process communicator");
        }
        var devices = RankDevices.Open(session, backendName, n);
        try
        {
            IReadOnlyList<CollectiveCaseResult>? results = null;
            InProcessWorld.Run(devices, comm =>
            {
                var mine = CollectiveConformance.Run(comm, options);
                if (comm.Rank == 0)
                {
                    results = mine;
                }
            }, waitLimit);
            return results ?? throw new InvalidOperationException("rank 0 returned no results");
        }
        finally
        {
            RankDevices.Dispose(devices);
        }
    }

    private static (IReadOnlyList<CollectiveCaseResult> Results, bool IsRankZero) RunMpi(HalSession session, string backendName, int? requestedRanks, CollectiveConformanceOptions options, TimeSpan waitLimit)
    {
        RankDevices.RequireMpiWorld("conformance --collectives", requestedRanks);
        var device = RankDevices.Open(session, backendName, 1)[0];
        try
        {
            using var world = MpiCommunicator.InitWorld(device);
            world.Timeout = waitLimit;
            return (CollectiveConformance.Run(world, options), world.Rank == 0);
        }
        finally
        {
            device.Dispose();
        }
    }

    /// <summary>A table of collective × dtype with pass/fail counts, then every failure with its details, then a total.</summary>
    private static void Report(TextWriter stdout, IReadOnlyList<CollectiveCaseResult> results)
    {
        var console = Output.Console(stdout);
        var table = new Table().AddColumns("collective", "dtype", "comm", "ranks", "passed", "failed");
        foreach (var group in results.GroupBy(r => (r.Collective, r.Dtype, r.Comm, r.Ranks)))
        {
            int failed = group.Count(r => !r.Passed);
            table.AddRow(
                Markup.Escape(group.Key.Collective),
                Markup.Escape(group.Key.Dtype ?? "-"),
                Markup.Escape(group.Key.Comm),
                group.Key.Ranks.ToString(CultureInfo.InvariantCulture),
                group.Count(r => r.Passed).ToString(CultureInfo.InvariantCulture),
                failed == 0 ? "0" : $"[red]{failed}[/]");
        }
        console.Write(table);
        var failures = results.Where(r => !r.Passed).ToList();
        foreach (var f in failures)
        {
            string where = f.FirstWrongIndex is { } index
                ? $"{f.WrongCount} wrong; first on rank {f.FirstWrongRank} at element {index}: expected {f.Expected}, got {f.Actual}"
                : "";
            string error = f.Error is { } e ? (where.Length > 0 ? "; " : "") + e : "";
            stdout.WriteLine($"FAIL {f.Id}: {where}{error}");
        }
        stdout.WriteLine($"{results.Count} cases, {results.Count - failures.Count} passed, {failures.Count} failed");
    }
}
