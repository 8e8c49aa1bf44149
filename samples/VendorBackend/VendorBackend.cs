using Hal;
using Hal.Registration;

// The plugin's entry: the loader reads this attribute, checks the contract version (1.0) and runs the registration.
[assembly: HalPlugin(typeof(Hal.Samples.VendorBackend.VendorRegistration), 1, 0)]

namespace Hal.Samples.VendorBackend;

/// <summary>
/// The sample vendor backend, <c>vendor</c>: one device, <c>vendor:0</c>, whose memory is host arrays and whose
/// kernels are plain loops. A real backend keeps this shape and swaps the loops for its driver's calls.
/// </summary>
public sealed class VendorBackend : IBackend
{
    /// <summary>The dtypes the device declares: every dtype of the contract, since loops over host memory make each one cheap.</summary>
    public static IReadOnlyList<DType> DTypes { get; } = [DType.F32, DType.F64, DType.F16, DType.BF16, DType.I32, DType.I64, DType.I8, DType.U8, DType.Bool];

    /// <summary>The device's nominal memory: 4 GiB, so the suite's out-of-memory cases have a fixed limit to exceed.</summary>
    public const long MemoryBytes = 4L << 30;

    /// <inheritdoc />
    public string Name => "vendor";

    /// <inheritdoc />
    public BackendProbe Probe() =>
        // A real backend asks its driver here (and returns Unavailable with the reason when there is none); it never throws.
        new(Name, true, null, [new DeviceInfo(new DeviceId(Name, 0), VendorDevice.DeviceName, MemoryBytes, DTypes)]);

    /// <inheritdoc />
    public IDevice Open(int index)
    {
        if (index != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(index), index, "the vendor backend has one device, vendor:0");
        }
        return new VendorDevice(new DeviceId(Name, 0));
    }
}

/// <summary>The registration the assembly attribute names: adds the backend.</summary>
public sealed class VendorRegistration : IHalPlugin
{
    /// <inheritdoc />
    public void Register(HalBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.AddBackend(new VendorBackend());
    }
}
