using System.CommandLine;
using System.CommandLine.Help;
using System.CommandLine.Invocation;
using System.Reflection;
using Hal.Cli.Commands;

namespace Hal.Cli;

/// <summary>
/// The <c>hal</c> command: builds the command tree, runs one command line, and turns errors into exit codes.
/// Exit codes: 0 success; 1 an unexpected error (a bug: type and message are printed); 2 a usage error or a
/// <see cref="HalException"/> (bad option, unknown backend, plugin that does not load, out of device memory…).
/// </summary>
internal static class HalApp
{
    /// <summary>Exit code of a usage error or a <see cref="HalException"/>.</summary>
    public const int UsageExitCode = 2;

    /// <summary>Exit code of an unexpected exception.</summary>
    public const int InternalErrorExitCode = 1;

    /// <summary>Runs <c>hal</c> with <paramref name="args"/>, writing to the given writers (tests pass string writers).</summary>
    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        ArgumentNullException.ThrowIfNull(args);
        var root = CreateRootCommand();
        ParseResult parse = root.Parse(args);
        if (parse.Errors.Count > 0 && parse.Action is ParseErrorAction)
        {
            foreach (var error in parse.Errors)
            {
                stderr.WriteLine($"hal: {error.Message}");
            }
            stderr.WriteLine($"run '{CommandPath(parse.CommandResult.Command)} --help' for usage");
            return UsageExitCode;
        }
        var config = new InvocationConfiguration { Output = stdout, Error = stderr, EnableDefaultExceptionHandler = false };
        try
        {
            return parse.Invoke(config);
        }
        catch (Exception e)
        {
            return Report(Unwrap(e), stderr);
        }
    }

    /// <summary>The root command with every subcommand and the global options.</summary>
    public static Command CreateRootCommand() => CreateRootCommand(new GlobalOptions());

    /// <summary>The root command, reading the global options through <paramref name="globals"/>.</summary>
    public static Command CreateRootCommand(GlobalOptions globals)
    {
        // A plain command named "hal" rather than RootCommand, whose name would be the assembly's (Hal.Cli).
        var root = new Command("hal",
            "Hal: run deep-learning training on many kinds of accelerator through one small hardware abstraction layer.");
        root.Options.Add(new HelpOption { Recursive = true });
        root.Options.Add(new VersionOption());
        globals.AddTo(root);
        root.Subcommands.Add(DevicesCommand.Create(globals));
        root.Subcommands.Add(BenchCommand.Create(globals));
        root.Subcommands.Add(ConformanceCommand.Create(globals));
        root.Subcommands.Add(TrainCommand.Create(globals));
        root.Subcommands.Add(TestCommand.Create());
        return root;
    }

    private static int Report(Exception e, TextWriter stderr)
    {
        switch (e)
        {
            case HalException or UsageException:
                stderr.WriteLine($"hal: {e.Message}");
                return UsageExitCode;
            default:
                stderr.WriteLine($"hal: internal error: {e.GetType().FullName}: {e.Message}");
                return InternalErrorExitCode;
        }
    }

    // Reflection-based activation (dependency injection, plugin registrations) may wrap the error that matters.
    private static Exception Unwrap(Exception e)
    {
        while (e is TargetInvocationException or AggregateException && e.InnerException is { } inner)
        {
            e = inner;
        }
        return e;
    }

    private static string CommandPath(Command command)
    {
        var names = new List<string>();
        for (Command? c = command; c is not null; c = c.Parents.OfType<Command>().FirstOrDefault())
        {
            names.Add(c.Name);
        }
        names.Reverse();
        return string.Join(' ', names);
    }
}

/// <summary>A mistake on the command line found after parsing (printed as <c>hal: message</c>, exit code 2).</summary>
internal sealed class UsageException(string message) : Exception(message);
