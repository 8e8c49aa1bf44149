using System.Text.Json;
using Hal.Conformance.Kernels;

namespace Hal.Conformance.Reports;

/// <summary>What a run was asked to do, for the reports' headers.</summary>
/// <param name="Quick">only the quick subset ran.</param>
/// <param name="Filter">the <c>--filter</c> glob over case ids, or null.</param>
public sealed record RunDescription(bool Quick = false, string? Filter = null);

/// <summary>
/// The machine-readable report (schema <see cref="Schema"/>, documented in docs/conformance.md): the run's settings,
/// per backend its device, availability, totals and every case with its measured error, and the tolerance rows that
/// judged them. Numbers that JSON cannot hold (NaN, ±Inf) are written as the strings <c>"NaN"</c>,
/// <c>"Infinity"</c>, <c>"-Infinity"</c>; property names are camelCase; every property is always present (null when
/// it does not apply).
/// </summary>
public static class JsonReport
{
    /// <summary>The schema name and version written in the report's <c>schema</c> property.</summary>
    public const string Schema = "hal.conformance.kernels/1";

    /// <summary>Writes the report of <paramref name="runs"/> to <paramref name="stream"/> (UTF-8).</summary>
    public static void Write(Stream stream, IReadOnlyList<BackendRun> runs, RunDescription? run = null)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(runs);
        run ??= new RunDescription();
        using var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true });
        w.WriteStartObject();
        w.WriteString("schema", Schema);
        w.WriteBoolean("quick", run.Quick);
        w.WriteString("filter", run.Filter);
        w.WriteStartArray("backends");
        foreach (var b in runs)
        {
            WriteBackend(w, b);
        }
        w.WriteEndArray();
        WriteTotals(w, "totals", RunTotals.Of(runs.SelectMany(b => b.Results)));
        w.WriteStartArray("tolerances");
        foreach (var rule in Report.RulesUsed(runs))
        {
            WriteRule(w, rule);
        }
        w.WriteEndArray();
        w.WriteEndObject();
    }

    /// <summary>Writes the report to the file at <paramref name="path"/>.</summary>
    public static void WriteFile(string path, IReadOnlyList<BackendRun> runs, RunDescription? run = null)
    {
        using var file = File.Create(path);
        Write(file, runs, run);
    }

    private static void WriteBackend(Utf8JsonWriter w, BackendRun b)
    {
        w.WriteStartObject();
        w.WriteString("backend", b.Backend);
        w.WriteString("device", b.Device);
        w.WriteBoolean("available", b.Available);
        w.WriteString("reason", b.UnavailableReason);
        WriteTotals(w, "totals", b.Totals);
        w.WriteStartArray("cases");
        foreach (var r in b.Results)
        {
            WriteCase(w, r);
        }
        w.WriteEndArray();
        w.WriteEndObject();
    }

    private static void WriteCase(Utf8JsonWriter w, KernelCaseResult r)
    {
        var c = r.Case;
        w.WriteStartObject();
        w.WriteString("id", c.Id);
        w.WriteString("op", c.Op);
        w.WriteString("dtype", c.DType.Name());
        w.WriteString("shape", c.Shape);
        w.WriteNumber("seed", c.Seed);
        w.WriteBoolean("quick", c.Quick);
        w.WriteString("expects", c.Expects?.Name);
        w.WriteString("pathAsked", c.Fused is null ? null : PathName(c.Path));
        w.WriteString("pathTaken", r.PathTaken is { } taken ? PathName(taken) : null);
        w.WriteString("status", Report.StatusName(r.Status));
        w.WriteString("message", r.Message);
        w.WriteStartArray("outputs");
        foreach (var v in r.Verdicts)
        {
            w.WriteStartObject();
            w.WriteString("name", v.Output);
            w.WriteBoolean("passed", v.Passed);
            w.WriteNumber("worstIndex", v.WorstIndex);
            Number(w, "expected", v.Expected);
            Number(w, "actual", v.Actual);
            Number(w, "ulp", v.UlpError);
            Number(w, "normalised", v.NormalisedError);
            Number(w, "allowed", v.Allowed);
            w.WriteNumber("failures", v.Failures);
            w.WriteNumber("count", v.Count);
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteStartArray("kernelsUsed");
        foreach (string k in r.KernelsUsed)
        {
            w.WriteStringValue(k);
        }
        w.WriteEndArray();
        Number(w, "seconds", r.Seconds);
        w.WriteString("expectationReason", r.ExpectationReason);
        w.WriteEndObject();
    }

    private static void WriteTotals(Utf8JsonWriter w, string name, RunTotals t)
    {
        w.WriteStartObject(name);
        w.WriteNumber("cases", t.Cases);
        w.WriteNumber("passed", t.Passed);
        w.WriteNumber("failed", t.Failed);
        w.WriteNumber("errored", t.Errored);
        w.WriteNumber("unsupported", t.Unsupported);
        w.WriteNumber("expectedFailures", t.ExpectedFailures);
        w.WriteNumber("unexpectedPasses", t.UnexpectedPasses);
        w.WriteEndObject();
    }

    /// <summary>One tolerance row as the JSON and HTML reports write it.</summary>
    internal static void WriteRule(Utf8JsonWriter w, ToleranceRule rule)
    {
        w.WriteStartObject();
        w.WriteString("op", rule.Op);
        w.WriteString("kind", rule.Kind.ToString().ToLowerInvariant());
        Number(w, "ulpsF32", rule.Ulps32);
        Number(w, "ulpsF64", rule.Ulps64);
        Number(w, "ulps16", rule.Ulps16);
        Number(w, "gammaPerLength", rule.GammaPerLength);
        Number(w, "gammaExtra", rule.GammaExtra);
        w.WriteString("source", rule.Source);
        w.WriteEndObject();
    }

    /// <summary>A number, or for NaN and infinities the strings <c>NaN</c>, <c>Infinity</c>, <c>-Infinity</c>.</summary>
    internal static void Number(Utf8JsonWriter w, string name, double value)
    {
        if (double.IsFinite(value))
        {
            w.WriteNumber(name, value);
        }
        else
        {
            w.WriteString(name, double.IsNaN(value) ? "NaN" : value > 0 ? "Infinity" : "-Infinity");
        }
    }

    /// <summary><c>fused</c> or <c>composite</c>.</summary>
    internal static string PathName(KernelPath path) => path == KernelPath.Fused ? "fused" : "composite";
}
