using System.Diagnostics;
using System.Runtime.InteropServices;

namespace Hal.Collectives.Tests;

/// <summary>Starts the MPI worker under <c>mpirun</c> as real processes and collects what they print.</summary>
internal static class MpiRun
{
    private const string InstallHint = "run ./hal (as root it installs openmpi-bin and libopenmpi-dev; otherwise it prints the apt-get command)";

    /// <summary>The exit code of mpirun and every line the ranks printed (stdout then stderr).</summary>
    internal sealed record Result(int ExitCode, string[] Lines, string Output)
    {
        public string[] LinesContaining(string text) => [.. Lines.Where(l => l.Contains(text, StringComparison.Ordinal))];
    }

    /// <summary>Fails the test, never skips it, when Open MPI is not installed.</summary>
    public static string RequireMpirun()
    {
        string? mpirun = FindOnPath("mpirun");
        if (mpirun is null)
        {
            Assert.Fail($"Open MPI is not installed: mpirun is not on PATH; {InstallHint}");
        }
        if (!NativeLibrary.TryLoad("libmpi.so.40", out IntPtr library))
        {
            Assert.Fail($"Open MPI is not installed: libmpi.so.40 does not load; {InstallHint}");
        }
        NativeLibrary.Free(library);
        return mpirun!;
    }

    /// <summary>Runs <c>mpirun -np <paramref name="ranks"/> dotnet Hal.Collectives.MpiWorker.dll <paramref name="scenario"/></c>; kills the process tree after <paramref name="timeout"/>.</summary>
    public static Result Run(int ranks, string scenario, TimeSpan timeout) => RunDll(ranks, WorkerPath(), [scenario], timeout, term: "dumb");

    /// <summary>
    /// Runs <c>mpirun -np <paramref name="ranks"/> dotnet Hal.Cli.dll ARGS</c>: the real <c>hal</c> command, one rank per
    /// process, with a real terminal type as users have, so its stdout must stay clean under mpirun's pseudo-terminals.
    /// </summary>
    public static Result RunCli(int ranks, string[] args, TimeSpan timeout) => RunDll(ranks, BuiltPath("Cli", "Hal.Cli.dll"), args, timeout, term: "xterm");

    /// <summary>Runs <c>dotnet Hal.Cli.dll ARGS</c> as one ordinary process (no mpirun), for comparisons with an MPI run.</summary>
    public static Result RunLocalCli(string[] args, TimeSpan timeout)
    {
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string arg in (string[])[BuiltPath("Cli", "Hal.Cli.dll"), .. args])
        {
            start.ArgumentList.Add(arg);
        }
        using var process = Process.Start(start) ?? throw new InvalidOperationException("dotnet did not start");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(timeout))
        {
            process.Kill(entireProcessTree: true);
            process.WaitForExit();
            Assert.Fail($"hal {string.Join(' ', args)} did not finish within {timeout.TotalSeconds} s; output so far:\n{stdout.Result}\n{stderr.Result}");
        }
        process.WaitForExit();
        string output = stdout.Result + stderr.Result;
        return new Result(process.ExitCode, output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries), output);
    }

    private static Result RunDll(int ranks, string dll, string[] args, TimeSpan timeout, string term)
    {
        string scenario = string.Join(' ', args);
        string mpirun = RequireMpirun();
        var start = new ProcessStartInfo(mpirun)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        // Root needs --allow-run-as-root; more ranks than cores need --oversubscribe.
        foreach (string arg in (string[])["--allow-run-as-root", "--oversubscribe", "-np", ranks.ToString(), "dotnet", dll, .. args])
        {
            start.ArgumentList.Add(arg);
        }
        // mpirun gives each rank a pseudo-terminal; with a real terminal type .NET writes a keypad-mode escape first.
        start.Environment["TERM"] = term;
        using var process = Process.Start(start) ?? throw new InvalidOperationException("mpirun did not start");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(timeout))
        {
            process.Kill(entireProcessTree: true);
            process.WaitForExit();
            Assert.Fail($"mpirun -np {ranks} {scenario} did not finish within {timeout.TotalSeconds} s; output so far:\n{stdout.Result}\n{stderr.Result}");
        }
        process.WaitForExit();
        string output = stdout.Result + stderr.Result;
        string[] lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        return new Result(process.ExitCode, lines, output);
    }

    /// <summary>
    /// The worker built next to this test assembly: …/tests/Hal.Collectives.Tests/bin/&lt;configuration&gt;/&lt;tfm&gt;/ maps to
    /// …/tests/Hal.Collectives.MpiWorker/bin/&lt;configuration&gt;/&lt;tfm&gt;/Hal.Collectives.MpiWorker.dll.
    /// </summary>
    private static string WorkerPath() => BuiltPath("tests/Hal.Collectives.MpiWorker", "Hal.Collectives.MpiWorker.dll");

    /// <summary>
    /// A project's output for this test assembly's configuration and framework; the repository root is five folders above
    /// …/tests/Hal.Collectives.Tests/bin/&lt;configuration&gt;/&lt;tfm&gt;/.
    /// </summary>
    private static string BuiltPath(string projectFolder, string dll)
    {
        var tfmDir = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
        var configurationDir = tfmDir.Parent!;
        var root = tfmDir;
        for (int i = 0; i < 5; i++)
        {
            root = root.Parent!;
        }
        string path = Path.Combine(root.FullName, projectFolder, "bin", configurationDir.Name, tfmDir.Name, dll);
        if (!File.Exists(path))
        {
            Assert.Fail($"{dll} is not built at {path}; build tests/Hal.Collectives.Tests (it builds it too)");
        }
        return path;
    }

    private static string? FindOnPath(string name)
    {
        foreach (string dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            string candidate = Path.Combine(dir, name);
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }
        return null;
    }
}
