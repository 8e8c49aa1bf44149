using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using Hal.Conformance.Kernels;

namespace Hal.Conformance.Reports;

/// <summary>
/// A self-contained HTML page for people (inline CSS and script, nothing downloaded): per backend a matrix of
/// ops × dtypes coloured by result (green pass, red fail, grey unsupported, amber expected failure); a click on a
/// cell lists its cases with their messages. Then the tolerance rows that judged the outputs. All text is
/// HTML-encoded; the drill-down data is JSON inside a <c>script type="application/json"</c> element with
/// <c>&lt;</c>, <c>&gt;</c> and <c>&amp;</c> escaped, and the script writes it with <c>textContent</c> only.
/// </summary>
public static class HtmlReport
{
    private const string Style = """
        body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
        h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em}
        table{border-collapse:collapse;margin:.5em 0}
        th,td{border:1px solid #ccc;padding:.2em .5em;font-size:.9em;text-align:left;vertical-align:top}
        td.cell{cursor:pointer;text-align:center;min-width:4.5em}
        .pass{background:#bfe8bf}.fail{background:#f3a5a5}.unsupported{background:#ddd;color:#666}.expected{background:#f6d38b}
        td.empty{background:#fff}
        #detail{border:1px solid #888;padding:.6em;margin-top:1em;display:none}
        #detail pre{white-space:pre-wrap;margin:.2em 0 .6em 1em;font-size:.85em}
        .legend span{padding:.1em .6em;margin-right:.5em}
        """;

    private const string Script = """
        const data = JSON.parse(document.getElementById('cases').textContent);
        const detail = document.getElementById('detail');
        function show(key) {
          const cases = data[key] || [];
          detail.replaceChildren();
          const h = document.createElement('h3');
          h.textContent = key + ' (' + cases.length + ' cases)';
          detail.appendChild(h);
          for (const c of cases) {
            const p = document.createElement('div');
            p.textContent = c.status + ': ' + c.id + ' (seed ' + c.seed + ', shape ' + c.shape + (c.path ? ', path ' + c.path : '') + (c.worst ? ', worst ' + c.worst : '') + ')';
            detail.appendChild(p);
            const text = [c.description, c.message, c.reason ? 'expectation: ' + c.reason : ''].filter(s => s).join('\n');
            if (text) { const pre = document.createElement('pre'); pre.textContent = text; detail.appendChild(pre); }
          }
          detail.style.display = 'block';
          detail.scrollIntoView({behavior: 'smooth'});
        }
        for (const td of document.querySelectorAll('td.cell')) { td.addEventListener('click', () => show(td.dataset.key)); }
        """;

    /// <summary>Writes the page for <paramref name="runs"/> to <paramref name="writer"/>.</summary>
    public static void Write(TextWriter writer, IReadOnlyList<BackendRun> runs, RunDescription? run = null)
    {
        ArgumentNullException.ThrowIfNull(writer);
        ArgumentNullException.ThrowIfNull(runs);
        run ??= new RunDescription();
        var html = new StringBuilder();
        html.Append("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Hal kernel conformance</title>\n<style>")
            .Append(Style).Append("</style></head><body>\n<h1>Hal kernel conformance</h1>\n<p>")
            .Append(E(run.Quick ? "quick subset" : "full catalogue"))
            .Append(run.Filter is null ? "" : ", filter " + E(run.Filter))
            .Append(". ").Append(E(RunTotals.Of(runs.SelectMany(b => b.Results)).ToString())).Append(".</p>\n")
            .Append("<p class=\"legend\"><span class=\"pass\">pass</span><span class=\"fail\">fail</span><span class=\"expected\">expected failure</span><span class=\"unsupported\">unsupported</span> Click a cell for its cases.</p>\n");
        foreach (var b in runs)
        {
            WriteBackend(html, b);
        }
        html.Append("<div id=\"detail\"></div>\n");
        WriteTolerances(html, Report.RulesUsed(runs));
        html.Append("<script type=\"application/json\" id=\"cases\">").Append(CaseData(runs)).Append("</script>\n<script>")
            .Append(Script).Append("</script>\n</body></html>\n");
        writer.Write(html.ToString());
    }

    /// <summary>The key of a cell in the drill-down data: <c>device|op|dtype</c>.</summary>
    public static string CellKey(string label, string op, DType dtype) => $"{label}|{op}|{dtype.Name()}";

    private static void WriteBackend(StringBuilder html, BackendRun b)
    {
        html.Append("<h2>").Append(E(b.Label)).Append("</h2>\n");
        if (!b.Available)
        {
            html.Append("<p class=\"unsupported\">skipped: ").Append(E(b.UnavailableReason ?? "")).Append("</p>\n");
            return;
        }
        html.Append("<p>").Append(E(b.Totals.ToString())).Append("</p>\n");
        var dtypes = Report.DTypes(b.Results);
        var cells = Report.Matrix(b.Results).ToDictionary(c => (c.Op, c.DType));
        html.Append("<table><tr><th>op</th>");
        foreach (var d in dtypes)
        {
            html.Append("<th>").Append(E(d.Name())).Append("</th>");
        }
        html.Append("</tr>\n");
        foreach (string op in Report.Ops(b.Results))
        {
            html.Append("<tr><th>").Append(E(op)).Append("</th>");
            foreach (var d in dtypes)
            {
                if (!cells.TryGetValue((op, d), out var cell))
                {
                    html.Append("<td class=\"empty\"></td>");
                    continue;
                }
                var t = cell.Totals;
                string css = cell.Verdict switch
                {
                    CellVerdict.Pass => "pass",
                    CellVerdict.Fail => "fail",
                    CellVerdict.ExpectedFailure => "expected",
                    _ => "unsupported",
                };
                string title = $"{t}; worst error {cell.WorstError}; path {cell.Paths}";
                string text = cell.Verdict == CellVerdict.Unsupported
                    ? "n/a"
                    : string.Create(CultureInfo.InvariantCulture, $"{t.Passed + t.UnexpectedPasses}/{t.Cases - t.Unsupported}");
                html.Append("<td class=\"cell ").Append(css).Append("\" data-key=\"").Append(E(CellKey(b.Label, op, d)))
                    .Append("\" title=\"").Append(E(title)).Append("\">").Append(E(text)).Append("</td>");
            }
            html.Append("</tr>\n");
        }
        html.Append("</table>\n");
    }

    private static void WriteTolerances(StringBuilder html, IReadOnlyList<ToleranceRule> rules)
    {
        html.Append("<h2>Tolerance rows used</h2>\n<p>An element passes when |actual − expected| ≤ U·ulp(expected) + γ(perLength·n + extra)·scale (docs/conformance.md).</p>\n")
            .Append("<table><tr><th>op</th><th>kind</th><th>U f32</th><th>U f64</th><th>U 16-bit</th><th>γ per n</th><th>γ extra</th><th>source</th></tr>\n");
        foreach (var r in rules)
        {
            html.Append("<tr><td>").Append(E(r.Op)).Append("</td><td>").Append(E(r.Kind.ToString().ToLowerInvariant()))
                .Append("</td><td>").Append(N(r.Ulps32)).Append("</td><td>").Append(N(r.Ulps64)).Append("</td><td>").Append(N(r.Ulps16))
                .Append("</td><td>").Append(N(r.GammaPerLength)).Append("</td><td>").Append(N(r.GammaExtra))
                .Append("</td><td>").Append(E(r.Source)).Append("</td></tr>\n");
        }
        html.Append("</table>\n");
    }

    private static string CaseData(IReadOnlyList<BackendRun> runs)
    {
        using var stream = new MemoryStream();
        // The default encoder escapes <, >, & and quotes as \uXXXX, so the JSON cannot close the script element.
        using (var w = new Utf8JsonWriter(stream))
        {
            w.WriteStartObject();
            foreach (var b in runs.Where(b => b.Available))
            {
                foreach (var cell in Report.Matrix(b.Results))
                {
                    w.WriteStartArray(CellKey(b.Label, cell.Op, cell.DType));
                    foreach (var r in cell.Results)
                    {
                        w.WriteStartObject();
                        w.WriteString("id", r.Case.Id);
                        w.WriteString("status", Report.StatusName(r.Status));
                        w.WriteString("seed", r.Case.Seed.ToString(CultureInfo.InvariantCulture));
                        w.WriteString("shape", r.Case.Shape);
                        w.WriteString("path", r.PathTaken is { } p ? JsonReport.PathName(p) : null);
                        w.WriteString("worst", MatrixCell.FormatWorst([r]) is var worst && worst != "-" ? worst : null);
                        w.WriteString("description", r.Case.Description);
                        w.WriteString("message", r.Message);
                        w.WriteString("reason", r.ExpectationReason);
                        w.WriteEndObject();
                    }
                    w.WriteEndArray();
                }
            }
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(stream.ToArray());
    }

    private static string E(string text) => WebUtility.HtmlEncode(text);

    private static string N(double value) => value.ToString("0.###", CultureInfo.InvariantCulture);
}
