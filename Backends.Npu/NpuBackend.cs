using Hal.Registration;

namespace Hal.Backends.Npu;

/// <summary>Options of the NPU backend.</summary>
public sealed class NpuBackendOptions
{
    /// <summary>Byte limit of each opened device (the --device-memory option); null means the machine's memory.</summary>
    public long? DeviceMemoryBytes { get; set; }

    /// <summary>The execution provider that device 0 runs on (the --ep option), by short name: cpu (default), cuda, tensorrt, …</summary>
    public string ExecutionProvider { get; set; } = "cpu";
}

/// <summary>
/// The NPU backend over ONNX Runtime: one device per usable execution provider. Device 0 is the provider chosen with
/// <see cref="NpuBackendOptions.ExecutionProvider"/>; the other usable providers follow in the runtime's order.
/// </summary>
public sealed class NpuBackend(NpuBackendOptions? options = null) : IBackend
{
    /// <summary>The options every device opened from here uses.</summary>
    public NpuBackendOptions Options { get; } = options ?? new NpuBackendOptions();

    /// <inheritdoc />
    public string Name => "npu";

    /// <inheritdoc />
    public BackendProbe Probe()
    {
        try
        {
            var devices = OrderedProviders(out string? reason);
            if (reason is not null)
            {
                return new BackendProbe(Name, false, reason, []);
            }
            var infos = devices.Select((p, i) => new DeviceInfo(
                new DeviceId(Name, i), NpuDevice.Describe(p), NpuDevice.MemoryBytes(), NpuDevice.SupportedDTypes(p.Name))).ToList();
            return new BackendProbe(Name, true, ProviderSummary(), infos);
        }
        catch (Exception e)
        {
            return BackendProbe.Unavailable(Name, $"ONNX Runtime does not load: {e.GetType().Name}: {e.Message}");
        }
    }

    /// <inheritdoc />
    public IDevice Open(int index)
    {
        IReadOnlyList<ProviderStatus> devices;
        try
        {
            devices = OrderedProviders(out string? reason);
            if (reason is not null)
            {
                throw new BackendUnavailableException(Name, reason);
            }
        }
        catch (Exception e) when (e is DllNotFoundException or TypeInitializationException or EntryPointNotFoundException)
        {
            throw new BackendUnavailableException(Name, $"ONNX Runtime does not load: {e.Message}");
        }
        if (index < 0 || index >= devices.Count)
        {
            throw new ArgumentOutOfRangeException(nameof(index), index,
                $"the npu backend has {devices.Count} device(s) here: {string.Join(", ", devices.Select((p, i) => $"npu:{i} ({p.Name})"))}");
        }
        return new NpuDevice(new DeviceId(Name, index), devices[index], Options);
    }

    /// <summary>Each provider the runtime reports, usable or not and why, in one line.</summary>
    public static string ProviderSummary() =>
        "execution providers: " + string.Join("; ", OrtRuntime.Providers.Select(p => p.Usable ? $"{p.Name} usable" : $"{p.Name} not usable ({p.Reason})"));

    /// <summary>The usable providers with the chosen one first; a reason when the chosen one cannot be used.</summary>
    private IReadOnlyList<ProviderStatus> OrderedProviders(out string? reason)
    {
        string chosen = Options.ExecutionProvider.Trim().ToLowerInvariant();
        var all = OrtRuntime.Providers;
        var selected = all.FirstOrDefault(p => p.Name == chosen);
        if (selected is null)
        {
            reason = $"--ep {chosen}: ONNX Runtime has no such execution provider here (it reports: {string.Join(", ", all.Select(p => p.Name))})";
            return [];
        }
        if (!selected.Usable)
        {
            reason = $"--ep {chosen}: {selected.Reason}; {ProviderSummary()}";
            return [];
        }
        reason = null;
        return [selected, .. all.Where(p => p.Usable && p != selected)];
    }
}

/// <summary>Registration of the NPU backend.</summary>
public static class NpuBackendRegistration
{
    /// <summary>Adds the NPU backend: <c>services.AddHal().AddNpuBackend(o => o.ExecutionProvider = "cuda")</c>.</summary>
    public static HalBuilder AddNpuBackend(this HalBuilder builder, Action<NpuBackendOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var options = new NpuBackendOptions();
        configure?.Invoke(options);
        return builder.AddBackend(new NpuBackend(options));
    }
}
