namespace Hal;

/// <summary>A device a backend can open, as listed by <see cref="IBackend.Probe"/>.</summary>
public sealed record DeviceInfo(DeviceId Id, string Name, long MemoryBytes, IReadOnlyList<DType> DTypes);

/// <summary>Whether a backend can run here, why not, and which devices it sees.</summary>
public sealed record BackendProbe(string Backend, bool Available, string? Reason, IReadOnlyList<DeviceInfo> Devices)
{
    public static BackendProbe Unavailable(string backend, string reason) => new(backend, false, reason, []);
}

/// <summary>
/// A family of devices (cpu, opencl, npu, cuda, or a vendor's). Implementations are cheap to construct:
/// nothing native is touched before <see cref="Probe"/> or <see cref="Open"/>.
/// </summary>
public interface IBackend
{
    /// <summary>Lower-case name used in device ids and on the command line.</summary>
    string Name { get; }

    /// <summary>Whether the backend can run here; when not, the reason (no driver, no device, library missing). Never throws.</summary>
    BackendProbe Probe();

    /// <summary>Opens device <paramref name="index"/>.</summary>
    /// <exception cref="BackendUnavailableException">the backend cannot run here.</exception>
    /// <exception cref="ArgumentOutOfRangeException">no device has that index.</exception>
    IDevice Open(int index);
}
