using System.Globalization;
using System.Text;
using System.Xml;
using Hal.Conformance.Kernels;

namespace Hal.Conformance.Reports;

/// <summary>
/// JUnit XML for CI: one <c>&lt;testsuite&gt;</c> per backend, one <c>&lt;testcase&gt;</c> per case with
/// classname = <c>backend.op</c> and name = the case id. Failed and errored cases carry <c>&lt;failure message&gt;</c>
/// with the runner's message; unsupported cases are <c>&lt;skipped message="reason"&gt;</c>; expected failures are
/// skipped with <c>expected failure: reason</c>; an unexpected pass passes, with a <c>&lt;system-out&gt;</c> note
/// saying that the expectation is stale (it does not fail the run: the code got better, the file is what is out of
/// date). A backend that cannot run here is one skipped testcase named <c>(backend unavailable)</c> with the reason.
/// </summary>
public static class JUnitReport
{
    /// <summary>The name of the one testcase an unavailable backend reports.</summary>
    public const string UnavailableCaseName = "(backend unavailable)";

    /// <summary>Writes the report of <paramref name="runs"/> to <paramref name="writer"/>.</summary>
    public static void Write(TextWriter writer, IReadOnlyList<BackendRun> runs)
    {
        ArgumentNullException.ThrowIfNull(writer);
        ArgumentNullException.ThrowIfNull(runs);
        var settings = new XmlWriterSettings { Indent = true, Encoding = new UTF8Encoding(false) };
        using var xml = XmlWriter.Create(writer, settings);
        xml.WriteStartDocument();
        xml.WriteStartElement("testsuites");
        xml.WriteAttributeString("name", "hal conformance");
        var all = RunTotals.Of(runs.SelectMany(r => r.Results));
        xml.WriteAttributeString("tests", Int(all.Cases + runs.Count(r => !r.Available)));
        xml.WriteAttributeString("failures", Int(all.UnexpectedFailures));
        xml.WriteAttributeString("errors", "0");
        xml.WriteAttributeString("skipped", Int(all.Unsupported + all.ExpectedFailures + runs.Count(r => !r.Available)));
        xml.WriteAttributeString("time", Seconds(runs.SelectMany(r => r.Results).Sum(r => r.Seconds)));
        foreach (var run in runs)
        {
            WriteSuite(xml, run);
        }
        xml.WriteEndElement();
        xml.WriteEndDocument();
    }

    private static void WriteSuite(XmlWriter xml, BackendRun run)
    {
        var t = run.Totals;
        xml.WriteStartElement("testsuite");
        xml.WriteAttributeString("name", Clean(run.Label));
        xml.WriteAttributeString("tests", Int(run.Available ? t.Cases : 1));
        xml.WriteAttributeString("failures", Int(t.UnexpectedFailures));
        xml.WriteAttributeString("errors", "0");
        xml.WriteAttributeString("skipped", Int(run.Available ? t.Unsupported + t.ExpectedFailures : 1));
        xml.WriteAttributeString("time", Seconds(run.Results.Sum(r => r.Seconds)));
        if (!run.Available)
        {
            xml.WriteStartElement("testcase");
            xml.WriteAttributeString("classname", Clean(run.Backend));
            xml.WriteAttributeString("name", UnavailableCaseName);
            xml.WriteAttributeString("time", "0");
            xml.WriteStartElement("skipped");
            xml.WriteAttributeString("message", Clean(run.UnavailableReason ?? ""));
            xml.WriteEndElement();
            xml.WriteEndElement();
        }
        string backend = Report.BackendOf(run.Label);
        foreach (var r in run.Results)
        {
            xml.WriteStartElement("testcase");
            xml.WriteAttributeString("classname", Clean($"{backend}.{r.Case.Op}"));
            xml.WriteAttributeString("name", Clean(r.Case.Id));
            xml.WriteAttributeString("time", Seconds(r.Seconds));
            switch (r.Status)
            {
                case CaseStatus.Failed or CaseStatus.Errored:
                    xml.WriteStartElement("failure");
                    xml.WriteAttributeString("message", Clean(r.Message));
                    xml.WriteAttributeString("type", r.Status == CaseStatus.Failed ? "failed" : "errored");
                    xml.WriteString(Clean(r.Message));
                    xml.WriteEndElement();
                    break;
                case CaseStatus.Unsupported:
                    xml.WriteStartElement("skipped");
                    xml.WriteAttributeString("message", Clean(r.Message));
                    xml.WriteEndElement();
                    break;
                case CaseStatus.ExpectedFailure:
                    xml.WriteStartElement("skipped");
                    xml.WriteAttributeString("message", Clean($"expected failure: {r.ExpectationReason}"));
                    xml.WriteString(Clean(r.Message));
                    xml.WriteEndElement();
                    break;
                case CaseStatus.UnexpectedPass:
                    xml.WriteElementString("system-out", Clean($"unexpected pass: {r.Message}"));
                    break;
            }
            xml.WriteEndElement();
        }
        xml.WriteEndElement();
    }

    private static string Int(int n) => n.ToString(CultureInfo.InvariantCulture);

    private static string Seconds(double s) => s.ToString("0.######", CultureInfo.InvariantCulture);

    /// <summary>Replaces characters XML 1.0 cannot hold (control characters from a driver's message) with U+FFFD.</summary>
    internal static string Clean(string text)
    {
        var sb = new StringBuilder(text.Length);
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            if (char.IsHighSurrogate(c) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                sb.Append(c).Append(text[++i]);
            }
            else if (XmlConvert.IsXmlChar(c))
            {
                sb.Append(c);
            }
            else
            {
                sb.Append('\uFFFD');
            }
        }
        return sb.ToString();
    }
}
