using System.Text.Json;
using System.Xml.Linq;
using Hal.Cli.Commands;
using Hal.Conformance.Kernels;
using Hal.Conformance.Reports;

namespace Hal.Cli.Tests;

/// <summary><c>hal conformance</c> in its kernel mode: filtered runs (to stay fast), reports, exit codes and bad flags.</summary>
public sealed class KernelConformanceCommandTests : IDisposable
{
    /// <summary>A small slice of the catalogue that exists from the start: exp at f32 on short vectors.</summary>
    private const string Filter = "unary.exp/f32/[1*";

    private readonly string _dir = Directory.CreateTempSubdirectory("hal-kconf-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string PathOf(string name) => Path.Combine(_dir, name);

    private static int CasesMatching(string glob) => KernelCatalogue.All().Count(c => Glob.IsMatch(glob, c.Id));

    [Fact]
    public void AFilteredCpuRunPassesAndWritesEveryReport()
    {
        int n = CasesMatching(Filter);
        Assert.True(n > 0);
        var r = CliRunner.Run("conformance", "--filter", Filter, "--json", PathOf("r.json"), "--junit", PathOf("r.xml"), "--html", PathOf("r.html"));
        Assert.True(r.ExitCode == 0, $"exit {r.ExitCode}\n{r.Stdout}\n{r.Stderr}");
        Assert.Contains($"cpu:0: {n} cases: {n} passed, 0 failed", r.Stdout, StringComparison.Ordinal);
        Assert.Contains($"cpu:0: {n}/{n} cases, 0 failed", r.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("cases, 0 failed", r.Stdout, StringComparison.Ordinal);

        using var json = JsonDocument.Parse(File.ReadAllText(PathOf("r.json")));
        Assert.Equal(Filter, json.RootElement.GetProperty("filter").GetString());
        var cases = json.RootElement.GetProperty("backends")[0].GetProperty("cases");
        Assert.Equal(n, cases.GetArrayLength());
        Assert.All(cases.EnumerateArray(), c => Assert.Equal("passed", c.GetProperty("status").GetString()));

        var junit = XDocument.Load(PathOf("r.xml"));
        Assert.Equal(n, junit.Descendants("testcase").Count());
        Assert.Empty(junit.Descendants("failure"));

        string html = File.ReadAllText(PathOf("r.html"));
        Assert.StartsWith("<!DOCTYPE html>", html, StringComparison.Ordinal);
        Assert.Contains("class=\"cell pass\"", html, StringComparison.Ordinal);
    }

    [Fact]
    public void TheVendorSampleLoadsAsAPluginAndPasses()
    {
        int n = CasesMatching(Filter);
        var r = CliRunner.Run("conformance", "--plugin", CliRunner.VendorPluginPath, "--backend", "vendor", "--filter", Filter);
        Assert.True(r.ExitCode == 0, $"exit {r.ExitCode}\n{r.Stdout}\n{r.Stderr}");
        Assert.Contains($"vendor:0: {n} cases: {n} passed, 0 failed", r.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public void CompareCpuWithTheVendorSampleReportsTheDivergencePerOp()
    {
        int n = CasesMatching(Filter);
        var r = CliRunner.Run("conformance", "--plugin", CliRunner.VendorPluginPath, "--compare", "cpu,vendor", "--filter", Filter, "--json", PathOf("c.json"));
        Assert.True(r.ExitCode == 0, $"exit {r.ExitCode}\n{r.Stdout}\n{r.Stderr}");
        Assert.Contains("cpu:0 vs vendor:0", r.Stdout, StringComparison.Ordinal);
        Assert.Contains($"{n} cases compared; largest divergence", r.Stdout, StringComparison.Ordinal);
        using var json = JsonDocument.Parse(File.ReadAllText(PathOf("c.json")));
        Assert.Equal(["cpu:0", "vendor:0"], json.RootElement.GetProperty("backends").EnumerateArray().Select(b => b.GetProperty("device").GetString()!).ToArray());
    }

    [Fact]
    public void AllListsAnUnavailableBackendAsSkippedWithItsReason()
    {
        var r = CliRunner.Run("conformance", "--all", "--plugin", CliRunner.TestPluginPath, "--filter", Filter, "--junit", PathOf("a.xml"));
        Assert.True(r.ExitCode == 0, $"exit {r.ExitCode}\n{r.Stdout}\n{r.Stderr}");
        Assert.Contains("SKIPPED backend testvendor: no TestVendor accelerator is attached to this machine", r.Stdout, StringComparison.Ordinal);
        var skipped = XDocument.Load(PathOf("a.xml")).Descendants("testcase").Single(c => c.Attribute("classname")!.Value == "testvendor");
        Assert.Equal("no TestVendor accelerator is attached to this machine", skipped.Element("skipped")!.Attribute("message")!.Value);
    }

    [Fact]
    public void AnExpectationOnAPassingCaseIsAnUnexpectedPassThatDoesNotFailTheRun()
    {
        string id = KernelCatalogue.All().First(c => Glob.IsMatch(Filter, c.Id)).Id;
        File.WriteAllText(PathOf("e.json"), JsonSerializer.Serialize(new { expectedFailures = new[] { new { @case = id, reason = "thought broken" } } }));
        var r = CliRunner.Run("conformance", "--filter", Filter, "--expect", PathOf("e.json"));
        Assert.True(r.ExitCode == 0, $"exit {r.ExitCode}\n{r.Stdout}\n{r.Stderr}");
        Assert.Contains($"UNEXPECTED PASS [cpu:0] {id}: passed, but the expectations mark it as failing (thought broken)", r.Stdout, StringComparison.Ordinal);
        Assert.Contains("1 unexpected passes", r.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public void CasesThatCannotAllocateFailTheRunUnlessExpected()
    {
        // A 1 KiB device cannot hold a 1031-element f32 input: every case errors with the typed out-of-memory error.
        const string large = "unary.exp/f32/[1031]/*";
        int n = CasesMatching(large);
        Assert.True(n > 0);
        var r = CliRunner.Run("conformance", "--filter", large, "--device-memory", "1KiB", "--junit", PathOf("oom.xml"));
        Assert.True(r.ExitCode == 1, $"exit {r.ExitCode}\n{r.Stdout}\n{r.Stderr}");
        Assert.Contains($"cpu:0: {n} cases: 0 passed, 0 failed, {n} errored", r.Stdout, StringComparison.Ordinal);
        Assert.Contains("ERROR [cpu:0] raised OutOfDeviceMemoryException: out of memory on cpu:0: asked for 4124 bytes", r.Stdout, StringComparison.Ordinal);
        Assert.Equal(n, XDocument.Load(PathOf("oom.xml")).Descendants("failure").Count());

        File.WriteAllText(PathOf("oom.json"), $$"""{"expectedFailures":[{"case":"{{large}}","reason":"a 1 KiB device"}]}""");
        var expected = CliRunner.Run("conformance", "--filter", large, "--device-memory", "1KiB", "--expect", PathOf("oom.json"));
        Assert.True(expected.ExitCode == 0, $"exit {expected.ExitCode}\n{expected.Stdout}\n{expected.Stderr}");
        Assert.Contains($"{n} expected failures", expected.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public void TheExitCodeIsOneOnlyForUnexpectedFailures()
    {
        KernelCaseResult R(CaseStatus s) => new(KernelCatalogue.All().First(), "cpu:0", s, null, [], "m", [], 0);
        Assert.Equal(0, ConformanceKernels.ExitCodeFor([BackendRun.Ran("cpu", "cpu:0", [R(CaseStatus.Passed), R(CaseStatus.Unsupported), R(CaseStatus.ExpectedFailure), R(CaseStatus.UnexpectedPass)]), BackendRun.Unavailable("x", "absent")]));
        Assert.Equal(1, ConformanceKernels.ExitCodeFor([BackendRun.Ran("cpu", "cpu:0", [R(CaseStatus.Passed), R(CaseStatus.Failed)])]));
        Assert.Equal(1, ConformanceKernels.ExitCodeFor([BackendRun.Ran("cpu", "cpu:0", [R(CaseStatus.Errored)])]));
    }

    [Theory]
    [InlineData("unknown backend", "no backend of that name is registered", "--backend", "nosuch")]
    [InlineData("unavailable backend", "backend 'testvendor' is not available: no TestVendor accelerator", "--backend", "testvendor")]
    [InlineData("missing expectations", "does not exist", "--expect", "/nonexistent/expectations.json")]
    [InlineData("filter matching nothing", "--filter 'no/such/*' matches no case id", "--filter", "no/such/*")]
    [InlineData("one backend in compare", "--compare: expected two backends", "--compare", "cpu")]
    [InlineData("compare with backend", "leave out --backend", "--compare", "cpu,cpu", "--backend", "cpu")]
    [InlineData("backend twice", "--backend cpu is given twice", "--backend", "cpu", "--backend", "cpu")]
    [InlineData("bad device index", "indices 0–0", "--backend", "cpu:3")]
    [InlineData("kernel flag with collectives", "--filter checks kernels; it does not apply to --collectives", "--collectives", "--filter", "x")]
    public void BadFlagValuesExitTwoWithAClearMessage(string what, string message, params string[] args)
    {
        var r = CliRunner.Run(["conformance", "--plugin", CliRunner.TestPluginPath, .. args]);
        Assert.True(r.ExitCode == 2, $"{what}: exit {r.ExitCode}\n{r.Stdout}\n{r.Stderr}");
        Assert.Contains(message, r.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void AnExpectationsFileThatIsNotJsonIsAUsageError()
    {
        File.WriteAllText(PathOf("bad.json"), "{ not json");
        var r = CliRunner.Run("conformance", "--filter", Filter, "--expect", PathOf("bad.json"));
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("is not valid JSON", r.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void PrintTolerancesWritesTheGeneratedTable()
    {
        var r = CliRunner.Run("conformance", "--print-tolerances");
        Assert.Equal(0, r.ExitCode);
        Assert.Equal(ToleranceMarkdown.Generate(), r.Stdout);
    }
}
