using Hal.Models.Optim;

namespace Hal.Models.Zero;

/// <summary>What a <see cref="ZeroEngine"/> shards and where it keeps things.</summary>
public sealed class ZeroEngineOptions
{
    /// <summary>
    /// 2: parameter chunks stay resident on the device between uses (gathered once per step after the update);
    /// 3: a parameter chunk is gathered before the layer that uses it and released after. Gradients and optimizer
    /// states are sharded in both (stage 1 under offload behaves as 2).
    /// </summary>
    public int Stage { get; init; } = 3;

    /// <summary>Placement between device, host and NVMe.</summary>
    public OffloadSpec Offload { get; init; } = OffloadSpec.None;

    /// <summary>The update rule (AdamW only here) and its hyper-parameters.</summary>
    public OptimizerOptions Optimizer { get; init; } = new();

    /// <summary>Bytes of host memory the optimizer-state chunks may take; beyond it they go to NVMe (null: no limit).</summary>
    public long? HostLimitBytes { get; init; }

    /// <summary>Directory for optimizer-state chunks that do not fit in host memory (null: the host limit is a hard limit).</summary>
    public string? NvmeDirectory { get; init; }

    /// <summary>Opens an NVMe chunk file for writing (null: a plain file in <see cref="NvmeDirectory"/>); lets a caller place the files on a special device or simulate a full disk.</summary>
    public Func<string, Microsoft.Win32.SafeHandles.SafeFileHandle>? NvmeFileOpener { get; init; }

    /// <summary>Rows per tile of a [V, C] vocabulary matrix (0: tiles of about <see cref="DefaultTileBytes"/>).</summary>
    public int TileRows { get; init; }

    /// <summary>Target bytes of one vocabulary tile in the compute dtype (a sixteenth of the device budget when that is smaller).</summary>
    public const long DefaultTileBytes = 8L << 20;
}

/// <summary>Where a <see cref="ZeroEngine"/>'s bytes were, and what moved (this rank).</summary>
/// <param name="DeviceStateBytes">Optimizer-state chunks (fp32 master, gradient, moments) on the device now.</param>
/// <param name="HostBytes">Optimizer-state chunks in host memory now, plus host copies of evicted partial gradients.</param>
/// <param name="NvmeBytes">Optimizer-state chunks in NVMe files now.</param>
/// <param name="PeakCacheBytes">Most bytes of gathered parameter and gradient chunks on the device at once.</param>
/// <param name="HostToDeviceBytes">Bytes copied host → device (parameter shards, restored gradients).</param>
/// <param name="DeviceToHostBytes">Bytes copied device → host (gradient shards, evicted partial gradients).</param>
/// <param name="NvmeTrafficBytes">Bytes read from and written to NVMe files.</param>
/// <param name="Gathers">Parameter chunks materialised on the device (gathered or copied from their shards).</param>
public readonly record struct ZeroMemoryStats(long DeviceStateBytes, long HostBytes, long NvmeBytes, long PeakCacheBytes,
    long HostToDeviceBytes, long DeviceToHostBytes, long NvmeTrafficBytes, long Gathers)
{
    /// <summary>All bytes that moved between tiers.</summary>
    public long TierTrafficBytes => HostToDeviceBytes + DeviceToHostBytes + NvmeTrafficBytes;
}

/// <summary>The model states meant for a tier do not fit in what it was given; says how many bytes and what to change.</summary>
public sealed class OffloadSpaceException(Memory.Tier tier, long neededBytes, long limitBytes, string advice)
    : HalException(string.Create(System.Globalization.CultureInfo.InvariantCulture, $"the optimizer states placed in the {tier} tier need {neededBytes:N0} bytes but its limit is {limitBytes:N0} bytes; {advice}"))
{
    /// <summary>The tier that is too small.</summary>
    public Memory.Tier Tier { get; } = tier;

    /// <summary>Bytes the placement needs there.</summary>
    public long NeededBytes { get; } = neededBytes;

    /// <summary>The tier's limit.</summary>
    public long LimitBytes { get; } = limitBytes;
}
