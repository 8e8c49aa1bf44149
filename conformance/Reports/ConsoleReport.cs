using System.Globalization;
using Hal.Conformance.Kernels;
using Spectre.Console;

namespace Hal.Conformance.Reports;

/// <summary>
/// The console summary of a kernel conformance run: per backend, a table of op × dtype with the counts of each
/// status, the worst error and the path that ran; then every unexpected failure with its case id, seed, shape,
/// worst element, expected and actual value (the runner's message); then the backends that could not run; then
/// one totals line per backend and overall.
/// </summary>
public static class ConsoleReport
{
    /// <summary>Widest table when the output is not a terminal (a CI log): wide enough that rows do not wrap.</summary>
    private const int RedirectedWidth = 160;

    /// <summary>Writes the summary of <paramref name="runs"/> to <paramref name="writer"/> (colours only on a terminal).</summary>
    public static void Write(TextWriter writer, IReadOnlyList<BackendRun> runs)
    {
        ArgumentNullException.ThrowIfNull(writer);
        ArgumentNullException.ThrowIfNull(runs);
        var console = ConsoleReport.ConsoleFor(writer);
        foreach (var run in runs.Where(r => r.Available))
        {
            console.Write(Table(run));
        }
        foreach (var run in runs.Where(r => r.Available))
        {
            foreach (var r in run.Results.Where(r => r.IsUnexpectedFailure))
            {
                writer.WriteLine($"{(r.Status == CaseStatus.Failed ? "FAIL" : "ERROR")} [{run.Label}] {r.Message}");
            }
            foreach (var r in run.Results.Where(r => r.Status == CaseStatus.UnexpectedPass))
            {
                writer.WriteLine($"UNEXPECTED PASS [{run.Label}] {r.Case.Id}: {r.Message}");
            }
        }
        foreach (var run in runs.Where(r => !r.Available))
        {
            writer.WriteLine($"SKIPPED backend {run.Backend}: {run.UnavailableReason}");
        }
        foreach (var run in runs.Where(r => r.Available))
        {
            writer.WriteLine($"{run.Label}: {run.Totals}");
        }
        if (runs.Count(r => r.Available) > 1)
        {
            writer.WriteLine($"total: {RunTotals.Of(runs.SelectMany(r => r.Results))}");
        }
    }

    /// <summary>
    /// A Spectre console over <paramref name="writer"/>: with colours and the terminal's width when it is the process's
    /// own standard output on a terminal; otherwise (a file, a CI log, a test's string writer) plain text,
    /// <see cref="RedirectedWidth"/> columns wide so that rows do not wrap.
    /// </summary>
    public static IAnsiConsole ConsoleFor(TextWriter writer)
    {
        ArgumentNullException.ThrowIfNull(writer);
        bool terminal = ReferenceEquals(writer, Console.Out) && !Console.IsOutputRedirected;
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(writer),
            Ansi = terminal ? AnsiSupport.Detect : AnsiSupport.No,
            ColorSystem = terminal ? ColorSystemSupport.Detect : ColorSystemSupport.NoColors,
            Interactive = InteractionSupport.No,
        });
        if (!terminal)
        {
            console.Profile.Width = RedirectedWidth;
        }
        return console;
    }

    private static Table Table(BackendRun run)
    {
        var table = new Table { Title = new TableTitle(Markup.Escape(run.Label)) };
        table.AddColumns("op", "dtype", "passed", "failed", "unsupported", "expected", "worst error", "path");
        foreach (int column in new[] { 2, 3, 4, 5 })
        {
            table.Columns[column].RightAligned();
        }
        foreach (var cell in Report.Matrix(run.Results))
        {
            var t = cell.Totals;
            int failed = t.UnexpectedFailures;
            table.AddRow(
                Markup.Escape(cell.Op),
                cell.DType.Name(),
                Count(t.Passed + t.UnexpectedPasses, t.UnexpectedPasses > 0 ? "yellow" : null),
                Count(failed, failed > 0 ? "red" : null),
                Count(t.Unsupported, null),
                Count(t.ExpectedFailures, t.ExpectedFailures > 0 ? "yellow" : null),
                Markup.Escape(cell.WorstError),
                Markup.Escape(cell.Paths));
        }
        return table;
    }

    private static string Count(int n, string? colour)
    {
        string text = n.ToString(CultureInfo.InvariantCulture);
        return colour is null || n == 0 ? text : $"[{colour}]{text}[/]";
    }
}
