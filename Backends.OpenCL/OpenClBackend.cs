using Hal.Registration;

namespace Hal.Backends.OpenCL;

/// <summary>Work-group tiling of the OpenCL GEMM kernel. Zero fields are chosen from the device's limits.</summary>
/// <param name="TileM">rows of C per work-group.</param>
/// <param name="TileN">columns of C per work-group.</param>
/// <param name="TileK">depth of one local-memory step.</param>
/// <param name="BlockM">rows of C per work-item (register block).</param>
/// <param name="BlockN">columns of C per work-item (register block).</param>
public readonly record struct GemmTiling(int TileM, int TileN, int TileK, int BlockM, int BlockN);

/// <summary>Options of the OpenCL backend.</summary>
public sealed class OpenClBackendOptions
{
    /// <summary>Byte limit of each opened device (the --device-memory option); null means the device's memory.</summary>
    public long? DeviceMemoryBytes { get; set; }

    /// <summary>
    /// GEMM tiling; null chooses one from the device's work-group size and local memory. The environment variable
    /// HAL_OPENCL_GEMM_TILING ("TM,TN,TK,RM,RN", e.g. "64,64,16,4,4") sets it for command-line runs.
    /// </summary>
    public GemmTiling? GemmTiling { get; set; } = TilingFromEnvironment();

    private static GemmTiling? TilingFromEnvironment()
    {
        string? text = Environment.GetEnvironmentVariable("HAL_OPENCL_GEMM_TILING");
        if (string.IsNullOrWhiteSpace(text))
        {
            return null;
        }
        var parts = text.Split(',');
        if (parts.Length != 5 || !parts.All(p => int.TryParse(p, out int v) && v >= 0))
        {
            throw new ArgumentException($"HAL_OPENCL_GEMM_TILING='{text}' is not 'TM,TN,TK,RM,RN' (five non-negative integers, 0 = the device's choice)");
        }
        var v = parts.Select(int.Parse).ToArray();
        return new GemmTiling(v[0], v[1], v[2], v[3], v[4]);
    }

    /// <summary>Largest number of freed bytes the allocator keeps for reuse (default 1 GiB).</summary>
    public long CacheBytes { get; set; } = 1L << 30;
}

/// <summary>The OpenCL backend: every device of every platform, <c>opencl:0</c>, <c>opencl:1</c>, … in platform order.</summary>
public sealed class OpenClBackend(OpenClBackendOptions? options = null) : IBackend
{
    /// <summary>The options every device opened from here uses.</summary>
    public OpenClBackendOptions Options { get; } = options ?? new OpenClBackendOptions();

    /// <inheritdoc />
    public string Name => "opencl";

    /// <inheritdoc />
    public BackendProbe Probe()
    {
        try
        {
            var (devices, reason) = OpenClRuntime.Devices;
            if (devices.Count == 0)
            {
                return BackendProbe.Unavailable(Name, reason ?? "no OpenCL device");
            }
            var infos = new List<DeviceInfo>();
            for (int i = 0; i < devices.Count; i++)
            {
                var d = devices[i];
                infos.Add(new DeviceInfo(new DeviceId(Name, i), $"{d.Name} ({d.PlatformName})", d.GlobalMemoryBytes, SupportedDTypes(d)));
            }
            return new BackendProbe(Name, true, null, infos);
        }
        catch (Exception e)
        {
            return BackendProbe.Unavailable(Name, "OpenCL probe failed: " + e.Message);
        }
    }

    /// <inheritdoc />
    public IDevice Open(int index)
    {
        var api = OpenClRuntime.RequireApi();
        var (devices, reason) = OpenClRuntime.Devices;
        if (devices.Count == 0)
        {
            throw new BackendUnavailableException(Name, reason ?? "no OpenCL device");
        }
        if (index < 0 || index >= devices.Count)
        {
            throw new ArgumentOutOfRangeException(nameof(index), index, $"the opencl backend has {devices.Count} device(s), opencl:0..opencl:{devices.Count - 1}");
        }
        return new OpenClDevice(api, new DeviceId(Name, index), devices[index], Options);
    }

    /// <summary>The dtypes the kernels accept on a device: F64 only with cl_khr_fp64; F16/BF16 are storage with F32 compute.</summary>
    internal static DType[] SupportedDTypes(OpenClDeviceInfo d) =>
        d.HasFp64
            ? [DType.F32, DType.F64, DType.F16, DType.BF16, DType.I32, DType.I64, DType.I8, DType.U8, DType.Bool]
            : [DType.F32, DType.F16, DType.BF16, DType.I32, DType.I64, DType.I8, DType.U8, DType.Bool];
}

/// <summary>Registration of the OpenCL backend.</summary>
public static class OpenClBackendRegistration
{
    /// <summary>Adds the OpenCL backend: <c>services.AddHal().AddOpenClBackend()</c>.</summary>
    public static HalBuilder AddOpenClBackend(this HalBuilder builder, Action<OpenClBackendOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var options = new OpenClBackendOptions();
        configure?.Invoke(options);
        return builder.AddBackend(new OpenClBackend(options));
    }
}
