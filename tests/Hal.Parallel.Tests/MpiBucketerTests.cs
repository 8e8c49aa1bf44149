using System.Diagnostics;

namespace Hal.Parallel.Tests;

/// <summary>
/// GradientBucketer over the MPI communicator in real processes: <c>mpirun -np 2</c> runs the worker's
/// <c>mpi-bucketer</c> scenario, where each rank checks its averaged slab against the exact mean and prints PASS or
/// FAIL per case. Without Open MPI the test fails and says so (the collectives tests install it through ./hal).
/// </summary>
public sealed class MpiBucketerTests
{
    // Generous for two oversubscribed .NET processes on a loaded 2-core machine; the process tree is killed past it.
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(180);

    // F32 and BF16 × three (count, e) cases, one line per rank.
    private const int CasesPerRank = 6;

    [Fact]
    public void Two_processes_under_mpirun_average_the_slab_exactly()
    {
        const int ranks = 2;
        var (exitCode, output) = RunUnderMpirun(ranks, "mpi-bucketer");

        string[] lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        Assert.True(exitCode == 0, $"mpirun exit code {exitCode}:\n{output}");
        Assert.DoesNotContain(lines, l => l.StartsWith("FAIL", StringComparison.Ordinal));
        Assert.Equal(ranks * CasesPerRank, lines.Count(l => l.StartsWith("PASS", StringComparison.Ordinal)));
    }

    private static (int ExitCode, string Output) RunUnderMpirun(int ranks, string scenario)
    {
        string mpirun = FindOnPath("mpirun") ?? throw new InvalidOperationException("Open MPI is not installed: mpirun is not on PATH; run ./hal, which installs openmpi-bin");
        var start = new ProcessStartInfo(mpirun)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        // Root needs --allow-run-as-root; more ranks than cores need --oversubscribe.
        foreach (string arg in (string[])["--allow-run-as-root", "--oversubscribe", "-np", ranks.ToString(System.Globalization.CultureInfo.InvariantCulture), "dotnet", WorkerPath(), scenario])
        {
            start.ArgumentList.Add(arg);
        }
        start.Environment["TERM"] = "dumb";
        using var process = Process.Start(start) ?? throw new InvalidOperationException("mpirun did not start");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(Limit))
        {
            process.Kill(entireProcessTree: true);
            process.WaitForExit();
            Assert.Fail($"mpirun -np {ranks} {scenario} did not finish within {Limit.TotalSeconds} s:\n{stdout.Result}\n{stderr.Result}");
        }
        process.WaitForExit();
        return (process.ExitCode, stdout.Result + stderr.Result);
    }

    /// <summary>
    /// The worker built beside this assembly: …/tests/Hal.Parallel.Tests/bin/&lt;configuration&gt;/&lt;tfm&gt;/ maps to
    /// …/tests/Hal.Parallel.Worker/bin/&lt;configuration&gt;/&lt;tfm&gt;/Hal.Parallel.Worker.dll.
    /// </summary>
    private static string WorkerPath()
    {
        var tfmDir = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
        var configurationDir = tfmDir.Parent!;
        var testsDir = configurationDir.Parent!.Parent!.Parent!;
        string path = Path.Combine(testsDir.FullName, "Hal.Parallel.Worker", "bin", configurationDir.Name, tfmDir.Name, "Hal.Parallel.Worker.dll");
        if (!File.Exists(path))
        {
            Assert.Fail($"Hal.Parallel.Worker.dll is not built at {path}; build tests/Hal.Parallel.Tests (it builds it too)");
        }
        return path;
    }

    private static string? FindOnPath(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "")
            .Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Select(dir => Path.Combine(dir, name))
            .FirstOrDefault(File.Exists);
}
