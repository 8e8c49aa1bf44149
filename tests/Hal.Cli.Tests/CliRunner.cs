using System.Reflection;

namespace Hal.Cli.Tests;

/// <summary>Runs <c>hal</c> in-process and captures what it writes.</summary>
internal static class CliRunner
{
    internal sealed record Result(int ExitCode, string Stdout, string Stderr);

    public static Result Run(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int exit = HalApp.Run(args, stdout, stderr);
        return new Result(exit, stdout.ToString(), stderr.ToString());
    }

    /// <summary>The compatible test plugin (contract 1.0), in its own build folder.</summary>
    public static string TestPluginPath => Metadata("TestPluginPath");

    /// <summary>The test plugin that claims contract 2.0.</summary>
    public static string FuturePluginPath => Metadata("FuturePluginPath");

    /// <summary>The sample vendor backend (samples/VendorBackend), in its own build folder.</summary>
    public static string VendorPluginPath => Metadata("VendorPluginPath");

    /// <summary>The repository root (for scripts/).</summary>
    public static string RepositoryRoot => Metadata("RepositoryRoot");

    private static string Metadata(string key) =>
        typeof(CliRunner).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == key).Value
        ?? throw new InvalidOperationException($"assembly metadata {key} is empty");
}
