using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using System.Xml.Linq;
using Hal.Conformance.Kernels;
using Hal.Conformance.Reports;

namespace Hal.Conformance.Tests;

/// <summary>The report writers: each output parses back, holds every case, and escapes all text.</summary>
public sealed class ReportTests
{
    [Fact]
    public void JUnitHasOneTestcasePerCaseWithFailuresAndSkipsAndTheUnavailableBackend()
    {
        var writer = new StringWriter();
        JUnitReport.Write(writer, ReportFixtures.Runs());
        var doc = XDocument.Parse(writer.ToString());
        var root = doc.Root!;
        Assert.Equal("testsuites", root.Name.LocalName);
        Assert.Equal("8", root.Attribute("tests")!.Value);
        Assert.Equal("2", root.Attribute("failures")!.Value);
        Assert.Equal("4", root.Attribute("skipped")!.Value);
        var cases = root.Descendants("testcase").ToList();
        Assert.Equal(8, cases.Count);
        XElement Named(string name) => cases.Single(c => c.Attribute("name")!.Value == name);

        var failed = Named("unary.exp/f32/[3]/edge");
        Assert.Equal("cpu.unary.exp", failed.Attribute("classname")!.Value);
        Assert.Contains("<script>alert('x')</script>", failed.Element("failure")!.Attribute("message")!.Value, StringComparison.Ordinal);
        Assert.Contains("\uFFFD", failed.Element("failure")!.Attribute("message")!.Value, StringComparison.Ordinal);
        Assert.NotNull(Named("unary.exp/i32/[3]/bad").Element("failure"));
        Assert.StartsWith("no fused softmax", Named("softmax/f16/[3]/normal@fused").Element("skipped")!.Attribute("message")!.Value, StringComparison.Ordinal);
        Assert.StartsWith("expected failure: known gap", Named("softmax/f16/[3]/normal@composite").Element("skipped")!.Attribute("message")!.Value, StringComparison.Ordinal);
        var stale = Named("gemm/f32/[3]/normal");
        Assert.Null(stale.Element("failure"));
        Assert.Contains("unexpected pass", stale.Element("system-out")!.Value, StringComparison.Ordinal);
        Assert.Null(Named("unary.exp/f32/[3]/normal").Element("failure"));
        var unavailable = Named(JUnitReport.UnavailableCaseName);
        Assert.Equal("absent", unavailable.Attribute("classname")!.Value);
        Assert.StartsWith("no absent accelerator", unavailable.Element("skipped")!.Attribute("message")!.Value, StringComparison.Ordinal);
    }

    [Fact]
    public void JsonHoldsEveryCaseWithItsErrorTotalsAndTheToleranceRowsUsed()
    {
        using var stream = new MemoryStream();
        JsonReport.Write(stream, ReportFixtures.Runs(), new RunDescription(Quick: true, Filter: "unary.*"));
        using var doc = JsonDocument.Parse(stream.ToArray());
        var root = doc.RootElement;
        Assert.Equal(JsonReport.Schema, root.GetProperty("schema").GetString());
        Assert.True(root.GetProperty("quick").GetBoolean());
        Assert.Equal("unary.*", root.GetProperty("filter").GetString());
        var backends = root.GetProperty("backends").EnumerateArray().ToList();
        Assert.Equal(2, backends.Count);
        Assert.False(backends[1].GetProperty("available").GetBoolean());
        Assert.StartsWith("no absent accelerator", backends[1].GetProperty("reason").GetString(), StringComparison.Ordinal);
        var cases = backends[0].GetProperty("cases").EnumerateArray().ToList();
        Assert.Equal(7, cases.Count);
        var failed = cases[1];
        Assert.Equal("unary.exp/f32/[3]/edge", failed.GetProperty("id").GetString());
        Assert.Equal("failed", failed.GetProperty("status").GetString());
        Assert.Equal(12345678901234567890UL, failed.GetProperty("seed").GetUInt64());
        var output = failed.GetProperty("outputs")[0];
        Assert.Equal(2, output.GetProperty("worstIndex").GetInt64());
        Assert.Equal(1.5, output.GetProperty("expected").GetDouble());
        Assert.Equal(1.75, output.GetProperty("actual").GetDouble());
        Assert.Equal(16, output.GetProperty("ulp").GetDouble());
        Assert.Equal(5.3, output.GetProperty("normalised").GetDouble());
        var composite = cases[4];
        Assert.Equal("composite", composite.GetProperty("pathAsked").GetString());
        Assert.Equal("composite", composite.GetProperty("pathTaken").GetString());
        Assert.Equal("expected-failure", composite.GetProperty("status").GetString());
        Assert.Equal("NaN", composite.GetProperty("outputs")[0].GetProperty("normalised").GetString());
        Assert.Equal("Infinity", composite.GetProperty("outputs")[0].GetProperty("ulp").GetString());
        Assert.Equal(["reduce.max"], composite.GetProperty("kernelsUsed").EnumerateArray().Select(k => k.GetString()!).ToArray());
        var totals = backends[0].GetProperty("totals");
        Assert.Equal(7, totals.GetProperty("cases").GetInt32());
        Assert.Equal(1, totals.GetProperty("failed").GetInt32());
        Assert.Equal(1, totals.GetProperty("errored").GetInt32());
        Assert.Equal(2, totals.GetProperty("unsupported").GetInt32());
        Assert.Equal(1, totals.GetProperty("expectedFailures").GetInt32());
        Assert.Equal(1, totals.GetProperty("unexpectedPasses").GetInt32());
        var rows = root.GetProperty("tolerances").EnumerateArray().Select(r => r.GetProperty("op").GetString()).ToList();
        Assert.Equal(["unary.exp", "gemm", "softmax"], rows);
    }

    [Fact]
    public void HtmlIsSelfContainedEscapedAndCarriesTheDrillDownOfEveryCell()
    {
        var writer = new StringWriter();
        HtmlReport.Write(writer, ReportFixtures.Runs());
        string html = writer.ToString();
        Assert.DoesNotContain("<script>alert", html, StringComparison.Ordinal);
        Assert.DoesNotContain(" src=", html, StringComparison.Ordinal);
        Assert.DoesNotContain(" href=", html, StringComparison.Ordinal);
        Assert.Contains("&lt;script&gt;alert", html, StringComparison.Ordinal);
        Assert.Contains("class=\"cell fail\"", html, StringComparison.Ordinal);
        Assert.Contains("class=\"cell unsupported\"", html, StringComparison.Ordinal);
        Assert.Contains("class=\"cell expected\"", html, StringComparison.Ordinal);
        Assert.Contains("class=\"cell pass\"", html, StringComparison.Ordinal);
        var json = Regex.Match(html, "<script type=\"application/json\" id=\"cases\">(.*?)</script>", RegexOptions.Singleline).Groups[1].Value;
        using var doc = JsonDocument.Parse(json);
        var cell = doc.RootElement.GetProperty(HtmlReport.CellKey("cpu:0", "unary.exp", DType.F32));
        Assert.Equal(2, cell.GetArrayLength());
        Assert.Contains("<script>alert", cell[1].GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.Equal(5, doc.RootElement.EnumerateObject().Count());
    }

    [Fact]
    public void ConsoleShowsTheMatrixEveryFailureTheSkippedBackendAndTotals()
    {
        var writer = new StringWriter();
        ConsoleReport.Write(writer, ReportFixtures.Runs());
        string text = writer.ToString();
        var rows = text.Split('\n').Where(l => Regex.IsMatch(l, @"^\s*[│|]")).ToList();
        var row = rows.Single(l => l.Contains("unary.exp", StringComparison.Ordinal) && l.Contains("f32", StringComparison.Ordinal));
        Assert.Matches(@"[│|]\s*1\s*[│|]\s*1\s*[│|]\s*0\s*[│|]\s*0\s*[│|]\s*16 ULP\s*[│|]", row);
        Assert.Contains("FAIL [cpu:0] case unary.exp/f32/[3]/edge, seed 1, shape [3]: output y[2]: expected 1.5, actual 1.75", text, StringComparison.Ordinal);
        Assert.Contains("ERROR [cpu:0] raised InvalidOperationException: boom", text, StringComparison.Ordinal);
        Assert.Contains("UNEXPECTED PASS [cpu:0] gemm/f32/[3]/normal", text, StringComparison.Ordinal);
        Assert.DoesNotContain("\u001b[", text, StringComparison.Ordinal);
        Assert.Contains("SKIPPED backend absent: no absent accelerator", text, StringComparison.Ordinal);
        Assert.Contains("cpu:0: 7 cases: 1 passed, 1 failed, 1 errored, 2 unsupported, 1 expected failures, 1 unexpected passes", text, StringComparison.Ordinal);
        var softmax = rows.Single(l => l.Contains("softmax", StringComparison.Ordinal));
        Assert.Contains("composite", softmax, StringComparison.Ordinal);
    }

    [Fact]
    public void WorstErrorIsExactForExactRulesUlpForUlpRulesAndNormalisedForGammaRules()
    {
        KernelCaseResult R(string op, OutputVerdict v) => new(ReportFixtures.Case(op + "/f32/x", op, DType.F32), "cpu:0", CaseStatus.Passed, null, [v], "", [], 0);
        Assert.Equal("exact", MatrixCell.FormatWorst([R("cast", ReportFixtures.Verdict(true, 0, 0))]));
        Assert.Equal("mismatch", MatrixCell.FormatWorst([R("cast", ReportFixtures.Verdict(false, 1, double.PositiveInfinity))]));
        Assert.Equal("2.5 ULP", MatrixCell.FormatWorst([R("unary.exp", ReportFixtures.Verdict(true, 2.5, 0.8)), R("unary.exp", ReportFixtures.Verdict(true, 1, 0.3))]));
        Assert.Equal("0.8×", MatrixCell.FormatWorst([R("gemm", ReportFixtures.Verdict(true, 9, 0.8))]));
    }

    [Fact]
    public void ToleranceMarkdownHasOneRowPerRuleAndEscapesPipes()
    {
        var lines = ToleranceMarkdown.Generate().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(ToleranceTable.Rules.Count + 2, lines.Length);
        Assert.All(lines.Skip(2), l => Assert.Equal(9, Regex.Matches(l, @"(?<!\\)\|").Count));
    }

    [Fact]
    public void DocsHoldExactlyTheGeneratedToleranceTable()
    {
        string root = typeof(ReportTests).Assembly.GetCustomAttributes(typeof(System.Reflection.AssemblyMetadataAttribute), false)
            .Cast<System.Reflection.AssemblyMetadataAttribute>().Single(a => a.Key == "RepositoryRoot").Value!;
        string doc = File.ReadAllText(Path.Combine(root, "docs", "conformance.md"), Encoding.UTF8).Replace("\r\n", "\n", StringComparison.Ordinal);
        int begin = doc.IndexOf(ToleranceMarkdown.BeginMarker + "\n", StringComparison.Ordinal);
        int end = doc.IndexOf(ToleranceMarkdown.EndMarker, StringComparison.Ordinal);
        Assert.True(begin >= 0 && end > begin, "docs/conformance.md must hold the tolerance table between its markers");
        string table = doc[(begin + ToleranceMarkdown.BeginMarker.Length + 1)..end];
        Assert.True(table == ToleranceMarkdown.Generate(),
            "docs/conformance.md's tolerance table differs from the code: replace it with the output of `hal conformance --print-tolerances`");
    }
}
