using System.CommandLine;
using Hal.Backends.Cpu;
using Hal.Backends.Cuda;
using Hal.Backends.Npu;
using Hal.Backends.OpenCL;
using Hal.Registration;
using Microsoft.Extensions.DependencyInjection;

namespace Hal.Cli;

/// <summary>Options every command accepts (<c>--plugin</c>, <c>--device-memory</c>) and the runtime they configure.</summary>
internal sealed class GlobalOptions
{
    /// <summary><c>--plugin PATH</c>, repeatable: an out-of-tree backend assembly.</summary>
    public Option<string[]> Plugins { get; } = new("--plugin")
    {
        Description = "Load an out-of-tree backend from this assembly (repeatable).",
        HelpName = "PATH",
        Recursive = true,
        Arity = ArgumentArity.ZeroOrMore,
        AllowMultipleArgumentsPerToken = false,
    };

    /// <summary><c>--device-memory SIZE</c>: a byte limit for every device opened.</summary>
    public Option<long?> DeviceMemory { get; } = new("--device-memory")
    {
        Description = "Limit each opened device's memory, e.g. 512MiB, 2GiB, 1.5GB or a byte count.",
        HelpName = "SIZE",
        Recursive = true,
        CustomParser = result =>
        {
            string text = result.Tokens.Count > 0 ? result.Tokens[0].Value : "";
            if (ByteSize.TryParse(text, out long bytes, out string error))
            {
                return bytes;
            }
            result.AddError($"--device-memory: {error}");
            return null;
        },
    };

    /// <summary><c>--ep NAME</c>: the ONNX Runtime execution provider that the npu backend's device 0 runs on.</summary>
    public Option<string?> ExecutionProvider { get; } = new("--ep")
    {
        Description = "Execution provider of the npu backend's device 0: cpu (default), cuda, tensorrt, … (hal devices lists them and why each can or cannot run).",
        HelpName = "NAME",
        Recursive = true,
    };

    /// <summary>Adds the options to the root command (they are recursive, so every subcommand accepts them).</summary>
    public void AddTo(Command root)
    {
        root.Options.Add(Plugins);
        root.Options.Add(DeviceMemory);
        root.Options.Add(ExecutionProvider);
    }

    /// <summary>Registers the built-in backends and the plugins named on the command line, and resolves the runtime.</summary>
    /// <exception cref="PluginLoadException">a plugin does not load.</exception>
    /// <exception cref="HalException">two backends share a name.</exception>
    public HalSession OpenSession(ParseResult parse)
    {
        var settings = new BackendSettings(parse.GetValue(DeviceMemory), parse.GetValue(ExecutionProvider) ?? "cpu");
        var services = new ServiceCollection();
        var hal = services.AddHal();
        hal.AddBuiltInBackends(settings);
        foreach (string path in parse.GetValue(Plugins) ?? [])
        {
            hal.AddPlugin(path);
        }
        var provider = services.BuildServiceProvider();
        try
        {
            return new HalSession(provider, provider.GetRequiredService<HalRuntime>());
        }
        catch
        {
            provider.Dispose();
            throw;
        }
    }
}

/// <summary>Settings from the command line that every backend receives.</summary>
internal sealed record BackendSettings(long? DeviceMemoryBytes, string ExecutionProvider = "cpu");

/// <summary>The backends this command line ships with. New in-tree backends register here, each through its own extension.</summary>
internal static class BuiltInBackends
{
    public static HalBuilder AddBuiltInBackends(this HalBuilder builder, BackendSettings settings) =>
        builder.AddCpuBackend(o => o.DeviceMemoryBytes = settings.DeviceMemoryBytes)
            .AddOpenClBackend(o => o.DeviceMemoryBytes = settings.DeviceMemoryBytes)
            .AddNpuBackend(o =>
            {
                o.DeviceMemoryBytes = settings.DeviceMemoryBytes;
                o.ExecutionProvider = settings.ExecutionProvider;
            })
            .AddCudaBackend(o => o.DeviceMemoryBytes = settings.DeviceMemoryBytes);
}

/// <summary>A resolved runtime and the service provider that owns it.</summary>
internal sealed class HalSession(ServiceProvider provider, HalRuntime runtime) : IDisposable
{
    public HalRuntime Runtime { get; } = runtime;

    public void Dispose() => provider.Dispose();
}
