using Hal.Backends.Npu.Onnx;
using Microsoft.ML.OnnxRuntime;

namespace Hal.Backends.Npu;

/// <summary>
/// The process-wide ONNX Runtime environment: one global intra-op thread pool shared by every session (a pool per
/// session would start a set of threads for each of the many small kernel graphs), and the execution providers the
/// runtime reports, each with whether a session can be created on it here and why not.
/// </summary>
internal static class OrtRuntime
{
    private static readonly Lazy<OrtEnv> s_env = new(CreateEnv);
    private static readonly Lazy<IReadOnlyList<ProviderStatus>> s_providers = new(ProbeProviders);

    // The runtime's error log: a provider that fails to load says which library is missing only there.
    private static readonly List<string> s_errorLog = [];
    private static readonly DOrtLoggingFunction s_logger = Log;

    /// <summary>The environment (created on first use).</summary>
    public static OrtEnv Env => s_env.Value;

    /// <summary>Every provider the runtime reports, in the runtime's order, with the CPU provider first.</summary>
    public static IReadOnlyList<ProviderStatus> Providers => s_providers.Value;

    /// <summary>The short name shown to people: <c>CUDAExecutionProvider</c> is <c>cuda</c>.</summary>
    public static string ShortName(string ortName)
    {
        const string suffix = "ExecutionProvider";
        string s = ortName.EndsWith(suffix, StringComparison.Ordinal) ? ortName[..^suffix.Length] : ortName;
        return s.ToLowerInvariant();
    }

    /// <summary>Session options for kernels on <paramref name="provider"/>: global threads, full graph optimisation,
    /// and (for providers other than the CPU) no silent fallback of nodes to the CPU, so that a graph the provider
    /// cannot run fails at creation and the caller can fall back with a warning.</summary>
    /// <exception cref="OnnxRuntimeException">the provider cannot be appended (its libraries are missing).</exception>
    public static SessionOptions CreateSessionOptions(string provider)
    {
        _ = Env;
        var options = new SessionOptions
        {
            GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
            ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
            LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_FATAL,
        };
        try
        {
            options.DisablePerSessionThreads();
            AppendProvider(options, provider);
            if (provider != "cpu")
            {
                options.AddSessionConfigEntry("session.disable_cpu_ep_fallback", "1");
            }
            return options;
        }
        catch
        {
            options.Dispose();
            throw;
        }
    }

    private static void AppendProvider(SessionOptions options, string provider)
    {
        switch (provider)
        {
            case "cpu":
                break;
            case "cuda":
                options.AppendExecutionProvider_CUDA(0);
                break;
            case "tensorrt":
                options.AppendExecutionProvider_Tensorrt(0);
                break;
            case "dnnl":
                options.AppendExecutionProvider_Dnnl(0);
                break;
            case "migraphx":
                options.AppendExecutionProvider_MIGraphX(0);
                break;
            case "rocm":
                options.AppendExecutionProvider_ROCm(0);
                break;
            case "dml":
                options.AppendExecutionProvider_DML(0);
                break;
            case "openvino":
                options.AppendExecutionProvider_OpenVINO("");
                break;
            default:
                // Providers registered by name (QNN, XNNPACK, WebGPU, …) take their ORT name without the suffix.
                options.AppendExecutionProvider(OrtNameOf(provider), []);
                break;
        }
    }

    private static string OrtNameOf(string shortName)
    {
        foreach (var p in Providers)
        {
            if (p.Name == shortName)
            {
                return p.OrtName.EndsWith("ExecutionProvider", StringComparison.Ordinal) ? p.OrtName[..^"ExecutionProvider".Length] : p.OrtName;
            }
        }
        return shortName;
    }

    private static OrtEnv CreateEnv()
    {
        using var threads = new OrtThreadingOptions
        {
            GlobalIntraOpNumThreads = Environment.ProcessorCount,
            GlobalInterOpNumThreads = 1,
            // Spinning workers would take processor time from the host code between kernels on small machines.
            GlobalSpinControl = false,
        };
        var creation = new EnvironmentCreationOptions
        {
            logId = "hal",
            // Errors are collected (provider load failures become the probe's reasons), not printed by the runtime.
            logLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR,
            threadOptions = threads,
            loggingFunction = s_logger,
        };
        return OrtEnv.CreateInstanceWithOptions(ref creation);
    }

    private static IReadOnlyList<ProviderStatus> ProbeProviders()
    {
        string[] names;
        try
        {
            names = Env.GetAvailableProviders();
        }
        catch (Exception e) when (e is OnnxRuntimeException or DllNotFoundException or TypeInitializationException or EntryPointNotFoundException)
        {
            return [new ProviderStatus("cpu", "CPUExecutionProvider", false, $"ONNX Runtime does not load: {e.Message}")];
        }
        var result = new List<ProviderStatus>();
        foreach (string ortName in names.OrderBy(n => n == "CPUExecutionProvider" ? 0 : 1))
        {
            string shortName = ShortName(ortName);
            string? reason = TryCreateSession(shortName);
            result.Add(new ProviderStatus(shortName, ortName, reason is null, reason));
        }
        return result;
    }

    private static void Log(IntPtr param, OrtLoggingLevel severity, string category, string logId, string codeLocation, string message)
    {
        lock (s_errorLog)
        {
            s_errorLog.Add(message);
            if (s_errorLog.Count > 64)
            {
                s_errorLog.RemoveAt(0);
            }
        }
    }

    /// <summary>Creates a one-node session on the provider; null when it works, else why not.</summary>
    private static string? TryCreateSession(string provider)
    {
        lock (s_errorLog)
        {
            s_errorLog.Clear();
        }
        try
        {
            using var options = CreateSessionOptions(provider);
            var g = new OnnxGraph();
            string x = g.Input("x", DType.F32, 1);
            g.Output("y", g.Node("Relu", [x]), DType.F32, 1);
            using var session = new InferenceSession(g.ToBytes(), options);
            return null;
        }
        catch (Exception e)
        {
            string message = e.Message.ReplaceLineEndings(" ").Trim();
            lock (s_errorLog)
            {
                // "Failed to load library …/libonnxruntime_providers_cuda.so with error: libcublasLt.so.13: cannot open …"
                const string marker = "with error: ";
                string? detail = s_errorLog.Select(m => m.IndexOf(marker, StringComparison.Ordinal) is int i and >= 0 ? m[(i + marker.Length)..] : null).LastOrDefault(d => d is not null);
                if (detail is not null)
                {
                    message = $"{detail.ReplaceLineEndings(" ").Trim()} ({message})";
                }
            }
            return $"cannot create a session on it: {message}";
        }
    }
}

/// <summary>One execution provider: its short name (<c>cuda</c>), ORT name, and whether it can be used here (and why not).</summary>
internal sealed record ProviderStatus(string Name, string OrtName, bool Usable, string? Reason);
