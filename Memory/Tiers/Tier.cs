using Microsoft.Win32.SafeHandles;

namespace Hal.Memory;

/// <summary>Where a chunk's payload lives, fastest first.</summary>
public enum Tier
{
    /// <summary>The compute device's memory (a buffer from its allocator).</summary>
    Device,

    /// <summary>Host memory (native, 64-byte aligned, never moved by the garbage collector).</summary>
    Host,

    /// <summary>A file on local storage (NVMe), one per chunk.</summary>
    Nvme,
}

/// <summary>Moving or adding a chunk would exceed a tier's byte limit.</summary>
public sealed class TierFullException(Tier tier, long bytesRequested, long bytesInUse, long limitBytes)
    : HalException($"the {tier} tier is full: asked for {bytesRequested} bytes with {bytesInUse} in use and a limit of {limitBytes} bytes; " +
        "move chunks to a slower tier first, or raise the tier's limit")
{
    /// <summary>The tier that is full.</summary>
    public Tier Tier { get; } = tier;

    /// <summary>Bytes asked for.</summary>
    public long BytesRequested { get; } = bytesRequested;

    /// <summary>Bytes in use in the tier at the time.</summary>
    public long BytesInUse { get; } = bytesInUse;

    /// <summary>The tier's limit in bytes.</summary>
    public long LimitBytes { get; } = limitBytes;
}

/// <summary>The file system under the NVMe tier ran out of space while writing a chunk (the tier's own limit was not reached).</summary>
public sealed class NvmeDiskFullException(string path, long bytesRequested, long bytesInUse, Exception inner)
    : HalException($"the disk under the Nvme tier is full: writing {bytesRequested} bytes to '{path}' failed with {bytesInUse} bytes of chunks on it " +
        $"({inner.Message}); free disk space, point the tier at a larger disk, or lower its limit", inner)
{
    /// <summary>The file being written.</summary>
    public string Path { get; } = path;

    /// <summary>Bytes being written.</summary>
    public long BytesRequested { get; } = bytesRequested;

    /// <summary>Bytes of chunks the tier held before this write.</summary>
    public long BytesInUse { get; } = bytesInUse;
}

/// <summary>Bytes moved between tiers, per direction, since the store was created.</summary>
/// <param name="DeviceToHostBytes">device → host.</param>
/// <param name="HostToDeviceBytes">host → device.</param>
/// <param name="HostToNvmeBytes">host → NVMe file.</param>
/// <param name="NvmeToHostBytes">NVMe file → host.</param>
public readonly record struct ChunkTraffic(long DeviceToHostBytes, long HostToDeviceBytes, long HostToNvmeBytes, long NvmeToHostBytes);

/// <summary>Settings of a <see cref="ChunkStore"/>.</summary>
public sealed class ChunkStoreOptions
{
    /// <summary>The compute device; null for a store without a device tier.</summary>
    public IDevice? Device { get; init; }

    /// <summary>Byte limit of the device tier (the device's allocator may refuse earlier); null for none.</summary>
    public long? DeviceLimitBytes { get; init; }

    /// <summary>Byte limit of the host tier; null for none.</summary>
    public long? HostLimitBytes { get; init; }

    /// <summary>Byte limit of the NVMe tier; null for none (the disk may still fill up).</summary>
    public long? NvmeLimitBytes { get; init; }

    /// <summary>
    /// The directory the NVMe tier's files go under (the store makes its own subdirectory there and removes it on
    /// dispose); null for the system's temporary directory.
    /// </summary>
    public string? NvmeDirectory { get; init; }

    /// <summary>
    /// Opens a chunk's file for asynchronous writing, given its path; null uses <see cref="File.OpenHandle"/>
    /// (create or truncate, write, <see cref="FileOptions.Asynchronous"/>). Lets a caller place files on a special
    /// device, or simulate a full disk.
    /// </summary>
    public Func<string, SafeFileHandle>? NvmeFileOpener { get; init; }
}
