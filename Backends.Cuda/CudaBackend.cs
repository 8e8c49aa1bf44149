using Hal.Backends.Cuda.Native;
using Hal.Registration;

namespace Hal.Backends.Cuda;

/// <summary>Options of the CUDA backend.</summary>
public sealed class CudaBackendOptions
{
    /// <summary>Byte limit of each opened device (the --device-memory option); null means the device's memory.</summary>
    public long? DeviceMemoryBytes { get; set; }

    /// <summary>Use cuBLAS for GEMM when it is found (the default); false forces the ILGPU GEMM kernel.</summary>
    public bool UseCublas { get; set; } = true;

    /// <summary>
    /// Test-only: run the same ILGPU kernels on ILGPU's CPU accelerator (a slow thread emulator) instead of a GPU,
    /// so kernels are checked where no driver is present. Never offered as a user-facing device.
    /// </summary>
    internal bool UseCpuEmulator { get; set; }
}

/// <summary>
/// The CUDA backend: devices through ILGPU's CUDA accelerator, kernels written in C# with ILGPU, GEMM through
/// cuBLAS (an ILGPU GEMM where cuBLAS is absent), collectives through NCCL. Unavailable, with the reason, where no
/// driver or device is present.
/// </summary>
public sealed class CudaBackend(CudaBackendOptions? options = null) : IBackend
{
    internal static readonly DType[] SupportedDTypes = [.. DTypeInfo.All];

    /// <summary>The options every device opened from here uses.</summary>
    public CudaBackendOptions Options { get; } = options ?? new CudaBackendOptions();

    /// <inheritdoc />
    public string Name => "cuda";

    /// <inheritdoc />
    public BackendProbe Probe()
    {
        try
        {
            if (Options.UseCpuEmulator)
            {
                return new BackendProbe(Name, true, null, [new DeviceInfo(new DeviceId(Name, 0), "ILGPU CPU emulator (test only)", CudaDevice.EmulatorMemoryBytes, SupportedDTypes)]);
            }
            var driver = CudaDriver.Query();
            if (driver.Problem is not null)
            {
                return BackendProbe.Unavailable(Name, driver.Problem);
            }
            string libs = DescribeLibraries();
            var devices = CudaDevice.ListDevices();
            if (devices.Count == 0)
            {
                return BackendProbe.Unavailable(Name, "no CUDA device visible to ILGPU");
            }
            return new BackendProbe(Name, true, null, [.. devices.Select(d => d with { Name = $"{d.Name}; {libs}" })]);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            return BackendProbe.Unavailable(Name, $"probing CUDA failed: {e.GetType().Name}: {e.Message}");
        }
    }

    /// <summary>Which of cuBLAS and NCCL were found, as one line (each missing one with its own reason).</summary>
    public static string DescribeLibraries()
    {
        string blas = Cublas.TryLocate(out string b) ? $"cuBLAS {b}" : $"{b}: GEMM runs the ILGPU kernel";
        string nccl = NcclNative.TryLocate(out string n) ? $"NCCL {n}" : $"{n}: collectives stage through the host";
        return $"{blas}; {nccl}";
    }

    /// <inheritdoc />
    public IDevice Open(int index)
    {
        if (Options.UseCpuEmulator)
        {
            if (index != 0)
            {
                throw new ArgumentOutOfRangeException(nameof(index), index, "the CUDA emulator has one device, cuda:0");
            }
            return CudaDevice.OpenEmulator(new DeviceId(Name, 0), Options);
        }
        var probe = Probe();
        if (!probe.Available)
        {
            throw new BackendUnavailableException(Name, probe.Reason ?? "unknown reason");
        }
        if (index < 0 || index >= probe.Devices.Count)
        {
            throw new ArgumentOutOfRangeException(nameof(index), index, $"the cuda backend sees {probe.Devices.Count} device(s)");
        }
        return CudaDevice.OpenGpu(new DeviceId(Name, index), index, Options);
    }
}

/// <summary>Registration of the CUDA backend.</summary>
public static class CudaBackendRegistration
{
    /// <summary>Adds the CUDA backend: <c>services.AddHal().AddCudaBackend()</c>.</summary>
    public static HalBuilder AddCudaBackend(this HalBuilder builder, Action<CudaBackendOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var options = new CudaBackendOptions();
        configure?.Invoke(options);
        return builder.AddBackend(new CudaBackend(options));
    }
}
