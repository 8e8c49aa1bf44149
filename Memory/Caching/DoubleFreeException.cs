namespace Hal.Memory;

/// <summary>A <see cref="CachedBlock"/> was freed a second time.</summary>
public sealed class DoubleFreeException(DeviceId device, long offsetBytes, long sizeInBytes)
    : HalException($"a {sizeInBytes}-byte cached block at offset {offsetBytes} on {device} was freed twice; " +
        "free each block once (a tensor over it must not be used after its block is freed)")
{
    /// <summary>The device the block lives on.</summary>
    public DeviceId Device { get; } = device;

    /// <summary>The block's offset in its segment.</summary>
    public long OffsetBytes { get; } = offsetBytes;

    /// <summary>The block's size as requested.</summary>
    public long SizeInBytes { get; } = sizeInBytes;
}
