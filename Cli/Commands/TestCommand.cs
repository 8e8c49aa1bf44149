using System.CommandLine;
using System.Diagnostics;

namespace Hal.Cli.Commands;

/// <summary>
/// <c>hal test [dotnet test arguments]</c>: runs the whole test suite. The suite is run and counted by the repository's
/// <c>./hal test</c> (it builds, runs <c>dotnet test</c> with a TRX logger and prints <c>N passed, N failed, N skipped</c>),
/// so this command finds the repository this build came from and hands over to that script.
/// </summary>
internal static class TestCommand
{
    public static Command Create()
    {
        var command = new Command("test",
            "Run the whole test suite (the repository's ./hal test); extra arguments go to dotnet test. The last line is 'N passed, N failed, N skipped'.")
        {
            TreatUnmatchedTokensAsErrors = false,
        };
        command.SetAction(parse =>
        {
            string? root = FindRepositoryRoot(AppContext.BaseDirectory);
            if (root is null)
            {
                throw new UsageException(
                    "the test suite runs from a source checkout: run './hal test' in the repository (this build's folder has no repository above it)");
            }
            return RunWrapper(root, parse.UnmatchedTokens, parse.InvocationConfiguration.Output, parse.InvocationConfiguration.Error);
        });
        return command;
    }

    /// <summary>The nearest folder at or above <paramref name="start"/> that holds both <c>hal</c> and <c>Hal.sln</c>.</summary>
    internal static string? FindRepositoryRoot(string start)
    {
        for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "hal")) && File.Exists(Path.Combine(dir.FullName, "Hal.sln")))
            {
                return dir.FullName;
            }
        }
        return null;
    }

    private static int RunWrapper(string root, IReadOnlyList<string> extraArgs, TextWriter stdout, TextWriter stderr)
    {
        var info = new ProcessStartInfo("bash")
        {
            WorkingDirectory = root,
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        info.ArgumentList.Add(Path.Combine(root, "hal"));
        info.ArgumentList.Add("test");
        foreach (string a in extraArgs)
        {
            info.ArgumentList.Add(a);
        }
        using var process = Process.Start(info) ?? throw new UsageException("could not start bash to run ./hal test");
        // Forward both streams line by line as they come, so a long run shows progress.
        process.OutputDataReceived += (_, e) => WriteLine(stdout, e.Data);
        process.ErrorDataReceived += (_, e) => WriteLine(stderr, e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        process.WaitForExit();
        return process.ExitCode;
    }

    private static void WriteLine(TextWriter writer, string? line)
    {
        if (line is null)
        {
            return;
        }
        lock (writer)
        {
            writer.WriteLine(line);
        }
    }
}
