using System.Diagnostics;

namespace Hal.Cli.Tests;

/// <summary>The part of <c>./hal test</c> that counts results, run alone: <c>bash scripts/trx-summary.sh DIR [STATUS]</c>.</summary>
public class TrxSummaryTests
{
    private static (int ExitCode, string Stdout) Summarize(params string[] args)
    {
        var info = new ProcessStartInfo("bash")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        info.ArgumentList.Add(Path.Combine(CliRunner.RepositoryRoot, "scripts", "trx-summary.sh"));
        foreach (string a in args)
        {
            info.ArgumentList.Add(a);
        }
        using var p = Process.Start(info)!;
        string stdout = p.StandardOutput.ReadToEnd();
        p.StandardError.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, stdout);
    }

    private static string Fixture(string name) => Path.Combine(AppContext.BaseDirectory, "Fixtures", name);

    [Fact]
    public void SumsEveryTrxFileCountingErrorsAsFailures()
    {
        // first.trx: total 12, passed 8, failed 2 + error 1 → 3 failed, 1 skipped.
        // second.trx (attributes over several lines): total 30, passed 27, notExecuted 3 → 3 skipped.
        var (exit, stdout) = Summarize(Fixture("trx-mixed"));
        Assert.Equal("35 passed, 3 failed, 4 skipped\n", stdout);
        Assert.Equal(1, exit);
    }

    [Fact]
    public void AllPassingExitsZero()
    {
        var (exit, stdout) = Summarize(Fixture("trx-passing"), "0");
        Assert.Equal("5 passed, 0 failed, 0 skipped\n", stdout);
        Assert.Equal(0, exit);
    }

    [Fact]
    public void AFailedRunWithNoFailingTestCountsOneFailure()
    {
        var (exit, stdout) = Summarize(Fixture("trx-passing"), "1");
        Assert.Equal("5 passed, 1 failed, 0 skipped\n", stdout);
        Assert.Equal(1, exit);
    }

    [Fact]
    public void ABuildFailureWithNoResultsIsOneFailure()
    {
        string empty = Path.Combine(Path.GetTempPath(), $"hal-no-trx-{Environment.ProcessId}");
        var (exit, stdout) = Summarize(empty, "1");
        Assert.Equal("0 passed, 1 failed, 0 skipped\n", stdout);
        Assert.Equal(1, exit);
    }

    [Fact]
    public void AFailedRunKeepsItsOwnFailureCount()
    {
        var (exit, stdout) = Summarize(Fixture("trx-mixed"), "1");
        Assert.Equal("35 passed, 3 failed, 4 skipped\n", stdout);
        Assert.Equal(1, exit);
    }
}
