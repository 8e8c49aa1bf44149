namespace Hal.Memory;

/// <summary>
/// Sizes that shape a <see cref="CachingAllocator"/>'s pools. The defaults follow the PyTorch CUDA caching allocator:
/// every request is rounded up to 512 bytes; requests up to 1 MiB are small and share 2 MiB segments; larger requests
/// get a segment of their own rounded up to 2 MiB, and a cached large block is split only when more than 1 MiB
/// would be left over (smaller leftovers stay with the block, so large blocks do not shatter into slivers).
/// </summary>
public sealed record CachingAllocatorOptions
{
    /// <summary>Every block size and offset is a multiple of this many bytes (a power of two, at least 64).</summary>
    public long BlockRoundingBytes { get; init; } = 512;

    /// <summary>Requests whose rounded size is at most this many bytes go to the small pool.</summary>
    public long SmallRequestMaxBytes { get; init; } = 1L << 20;

    /// <summary>Size of every small-pool segment taken from the device, in bytes.</summary>
    public long SmallSegmentBytes { get; init; } = 2L << 20;

    /// <summary>Large-pool segments are the rounded request rounded up again to a multiple of this many bytes.</summary>
    public long LargeSegmentRoundingBytes { get; init; } = 2L << 20;

    /// <summary>The defaults.</summary>
    public static CachingAllocatorOptions Default { get; } = new();

    /// <summary>Raises <see cref="ArgumentException"/> when the sizes do not fit together.</summary>
    public void Validate()
    {
        if (BlockRoundingBytes < 64 || (BlockRoundingBytes & (BlockRoundingBytes - 1)) != 0)
        {
            throw new ArgumentException($"BlockRoundingBytes must be a power of two of at least 64, not {BlockRoundingBytes}");
        }
        if (SmallRequestMaxBytes < BlockRoundingBytes || SmallRequestMaxBytes % BlockRoundingBytes != 0)
        {
            throw new ArgumentException($"SmallRequestMaxBytes ({SmallRequestMaxBytes}) must be a positive multiple of BlockRoundingBytes ({BlockRoundingBytes})");
        }
        if (SmallSegmentBytes < SmallRequestMaxBytes || SmallSegmentBytes % BlockRoundingBytes != 0)
        {
            throw new ArgumentException($"SmallSegmentBytes ({SmallSegmentBytes}) must be a multiple of BlockRoundingBytes ({BlockRoundingBytes}) and hold the largest small request ({SmallRequestMaxBytes})");
        }
        if (LargeSegmentRoundingBytes < BlockRoundingBytes || LargeSegmentRoundingBytes % BlockRoundingBytes != 0)
        {
            throw new ArgumentException($"LargeSegmentRoundingBytes ({LargeSegmentRoundingBytes}) must be a positive multiple of BlockRoundingBytes ({BlockRoundingBytes})");
        }
    }
}
