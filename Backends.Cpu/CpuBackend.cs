using Hal.Registration;

namespace Hal.Backends.Cpu;

/// <summary>Options of the CPU backend.</summary>
public sealed class CpuBackendOptions
{
    /// <summary>Byte limit of each opened device (the --device-memory option); null means the machine's memory.</summary>
    public long? DeviceMemoryBytes { get; set; }

    /// <summary>Worker threads for kernels; null means one per processor.</summary>
    public int? Threads { get; set; }

    /// <summary>
    /// Widest vectors the GEMM micro-kernels may use, in bits: 512 (the default) picks the AVX-512 kernels where the
    /// processor has AVX-512F, 256 keeps the 256-bit ones; tests set 256 to cover both paths on one machine.
    /// </summary>
    internal int GemmMaxVectorBits { get; set; } = 512;
}

/// <summary>The CPU backend: one device, <c>cpu:0</c>, always available.</summary>
public sealed class CpuBackend(CpuBackendOptions? options = null) : IBackend
{
    internal static readonly DType[] SupportedDTypes = [.. DTypeInfo.All];

    /// <summary>The options every device opened from here uses.</summary>
    public CpuBackendOptions Options { get; } = options ?? new CpuBackendOptions();

    /// <inheritdoc />
    public string Name => "cpu";

    /// <inheritdoc />
    public BackendProbe Probe() =>
        new(Name, true, null, [new DeviceInfo(new DeviceId(Name, 0), CpuDevice.DescribeProcessor(), CpuDevice.MachineMemoryBytes(), SupportedDTypes)]);

    /// <inheritdoc />
    public IDevice Open(int index)
    {
        if (index != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(index), index, "the cpu backend has one device, cpu:0");
        }
        return new CpuDevice(new DeviceId(Name, 0), Options);
    }
}

/// <summary>Registration of the CPU backend.</summary>
public static class CpuBackendRegistration
{
    /// <summary>Adds the CPU backend: <c>services.AddHal().AddCpuBackend()</c>.</summary>
    public static HalBuilder AddCpuBackend(this HalBuilder builder, Action<CpuBackendOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var options = new CpuBackendOptions();
        configure?.Invoke(options);
        return builder.AddBackend(new CpuBackend(options));
    }
}
