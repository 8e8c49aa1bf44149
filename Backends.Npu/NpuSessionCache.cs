using System.Diagnostics;
using Hal.Backends.Npu.Onnx;
using Microsoft.ML.OnnxRuntime;

namespace Hal.Backends.Npu;

/// <summary>Counters of a device's session cache: lookups that found a compiled session, sessions created and what they cost.</summary>
/// <param name="Hits">kernel calls that reused a compiled session.</param>
/// <param name="Misses">kernel calls that had to build and compile one.</param>
/// <param name="Sessions">sessions alive in the cache.</param>
/// <param name="CreationSeconds">total wall time spent building and compiling sessions.</param>
/// <param name="CpuFallbacks">graphs the chosen provider could not run, compiled for the CPU provider instead.</param>
/// <param name="HostFallbacks">graphs no provider could run, served by the host implementation.</param>
public sealed record NpuSessionCacheStats(long Hits, long Misses, int Sessions, double CreationSeconds, int CpuFallbacks, int HostFallbacks)
{
    /// <summary>Hits / (hits + misses); 0 before the first lookup.</summary>
    public double HitRate => Hits + Misses == 0 ? 0 : (double)Hits / (Hits + Misses);
}

/// <summary>A compiled kernel: the session and the provider it runs on, or none when the host fallback serves it.</summary>
internal sealed class CompiledKernel(string key, InferenceSession? session, string provider)
{
    public string Key { get; } = key;

    public InferenceSession? Session { get; } = session;

    /// <summary>The provider the session runs on (the CPU provider after a fallback).</summary>
    public string Provider { get; } = provider;

    public bool UsesHostFallback => Session is null;

    public IReadOnlyCollection<string> InputNames { get; } = session is null ? [] : [.. session.InputMetadata.Keys];

    public IReadOnlyCollection<string> OutputNames { get; } = session is null ? [] : [.. session.OutputMetadata.Keys];
}

/// <summary>
/// Compiled kernel graphs keyed by (op, dtypes, attributes, shape class). Graphs use symbolic dimensions, so the
/// shape class is the ranks (and broadcast pattern) only, and one session serves every size. Session creation is
/// paid once per key; a graph the provider cannot run is compiled for the CPU provider with a one-time warning.
/// </summary>
internal sealed class NpuSessionCache(string provider) : IDisposable
{
    private readonly Dictionary<string, CompiledKernel> _kernels = [];
    private readonly Lock _lock = new();
    private long _hits;
    private long _misses;
    private double _creationSeconds;
    private int _cpuFallbacks;
    private int _hostFallbacks;

    /// <summary>Where one-time fallback warnings go (standard error unless replaced).</summary>
    public static TextWriter Warnings { get; set; } = Console.Error;

    public string Provider { get; } = provider;

    public NpuSessionCacheStats Stats
    {
        get
        {
            lock (_lock)
            {
                return new NpuSessionCacheStats(_hits, _misses, _kernels.Count, _creationSeconds, _cpuFallbacks, _hostFallbacks);
            }
        }
    }

    /// <summary>The compiled kernel for <paramref name="key"/>, building its graph with <paramref name="build"/> on a miss.</summary>
    /// <exception cref="OnnxRuntimeKernelException">the graph does not compile on any provider for a reason other than a missing operator implementation.</exception>
    public CompiledKernel Get(string key, Func<OnnxGraph> build)
    {
        lock (_lock)
        {
            if (_kernels.TryGetValue(key, out var found))
            {
                _hits++;
                return found;
            }
            _misses++;
            var clock = Stopwatch.StartNew();
            var kernel = Compile(key, build().ToBytes());
            _creationSeconds += clock.Elapsed.TotalSeconds;
            _kernels.Add(key, kernel);
            return kernel;
        }
    }

    public void Dispose()
    {
        lock (_lock)
        {
            foreach (var k in _kernels.Values)
            {
                k.Session?.Dispose();
            }
            _kernels.Clear();
        }
    }

    private CompiledKernel Compile(string key, byte[] model)
    {
        string? firstError = null;
        if (Provider != "cpu")
        {
            try
            {
                return new CompiledKernel(key, CreateSession(model, Provider), Provider);
            }
            catch (OnnxRuntimeException e)
            {
                firstError = e.Message;
                _cpuFallbacks++;
                Warnings.WriteLine($"npu: kernel {key} cannot run on the {Provider} provider ({OneLine(e.Message)}); it runs on the CPU provider");
            }
        }
        try
        {
            return new CompiledKernel(key, CreateSession(model, "cpu"), "cpu");
        }
        catch (OnnxRuntimeException e) when (IsMissingImplementation(e.Message))
        {
            _hostFallbacks++;
            Warnings.WriteLine($"npu: kernel {key} has no ONNX Runtime implementation ({OneLine(e.Message)}); it runs on the host");
            return new CompiledKernel(key, null, "host");
        }
        catch (OnnxRuntimeException e)
        {
            throw new OnnxRuntimeKernelException(key, firstError is null ? "cpu" : Provider, $"session creation failed: {OneLine(firstError ?? e.Message)}", e);
        }
    }

    private static InferenceSession CreateSession(byte[] model, string provider)
    {
        using var options = OrtRuntime.CreateSessionOptions(provider);
        return new InferenceSession(model, options);
    }

    private static bool IsMissingImplementation(string message) =>
        message.Contains("Could not find an implementation", StringComparison.OrdinalIgnoreCase) ||
        // The operator's schema has no such element type (ReduceSum of int8): the same for every provider.
        message.Contains("Type Error: Type 'tensor(", StringComparison.Ordinal) ||
        message.Contains("NOT_IMPLEMENTED", StringComparison.OrdinalIgnoreCase) ||
        message.Contains("not supported", StringComparison.OrdinalIgnoreCase);

    private static string OneLine(string message) => message.ReplaceLineEndings(" ").Trim();
}
