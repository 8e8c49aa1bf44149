using System.Globalization;
using Hal.Conformance.Kernels;
using Spectre.Console;

namespace Hal.Conformance.Reports;

/// <summary>
/// The console report of <c>--compare B1,B2</c>: per op, how many cases were compared, the largest divergence
/// between the two backends (normalised by the case's allowed bound at each element, and in ULPs) with the case
/// and element where it occurs, and each backend's own worst normalised error against the oracle; then the cases a
/// backend could not run.
/// </summary>
public static class ComparisonReport
{
    /// <summary>Writes the comparison of <paramref name="first"/> and <paramref name="second"/> to <paramref name="writer"/>.</summary>
    public static void Write(TextWriter writer, string first, string second, IReadOnlyList<CaseDivergence> cases)
    {
        ArgumentNullException.ThrowIfNull(writer);
        ArgumentNullException.ThrowIfNull(cases);
        var console = ConsoleReport.ConsoleFor(writer);
        var ops = KernelComparison.ByOp(cases);
        var table = new Table { Title = new TableTitle(Markup.Escape($"{first} vs {second}")) };
        table.AddColumns("op", "compared", "not compared", "divergence (× allowed)", "ULP", "where",
            $"{Markup.Escape(first)} error", $"{Markup.Escape(second)} error");
        foreach (var op in ops)
        {
            var w = op.Worst;
            table.AddRow(
                Markup.Escape(op.Op),
                op.Compared.ToString(CultureInfo.InvariantCulture),
                op.NotCompared.Count(c => !c.Case.IsErrorCase).ToString(CultureInfo.InvariantCulture),
                w is null ? "-" : Colour(w.Normalised, KernelComparison.Format(w.Normalised)),
                w is null ? "-" : KernelComparison.Format(w.Ulps),
                w is null || w.Normalised == 0 ? "-" : Markup.Escape($"{w.Case.Id} {w.Output}[{w.WorstIndex}]"),
                Colour(op.FirstWorstError, KernelComparison.Format(op.FirstWorstError)),
                Colour(op.SecondWorstError, KernelComparison.Format(op.SecondWorstError)));
        }
        console.Write(table);
        foreach (var c in cases.Where(c => c.NotCompared is not null && !c.Case.IsErrorCase))
        {
            writer.WriteLine($"NOT COMPARED {c.Case.Id}: {c.NotCompared}");
        }
        int compared = cases.Count(c => c.NotCompared is null);
        var worst = cases.Where(c => c.NotCompared is null).MaxBy(c => double.IsNaN(c.Normalised) ? double.PositiveInfinity : c.Normalised);
        writer.WriteLine(worst is null
            ? $"{first} vs {second}: no case compared"
            : $"{first} vs {second}: {compared} cases compared; largest divergence {KernelComparison.Format(worst.Normalised)}× the allowed error ({KernelComparison.Format(worst.Ulps)} ULP) in {worst.Case.Id}");
    }

    private static string Colour(double normalised, string text) =>
        normalised > 1 ? $"[red]{Markup.Escape(text)}[/]" : Markup.Escape(text);
}
