namespace Hal.Memory;

/// <summary>Statistics of a <see cref="CachingAllocator"/>; sizes in bytes.</summary>
/// <param name="AllocatedBytes">bytes of the blocks handed out and not yet freed (rounded block sizes, not the requests).</param>
/// <param name="RequestedBytes">bytes asked for by the live blocks' callers (at most <paramref name="AllocatedBytes"/>).</param>
/// <param name="ReservedBytes">bytes of every segment held from the device: allocated plus cached.</param>
/// <param name="PeakAllocatedBytes">the largest <paramref name="AllocatedBytes"/> since creation or the last peak reset.</param>
/// <param name="PeakReservedBytes">the largest <paramref name="ReservedBytes"/> since creation or the last peak reset.</param>
/// <param name="AllocationCount">successful allocations since creation.</param>
/// <param name="CacheHits">allocations served from a cached free block.</param>
/// <param name="CacheMisses">allocations that took a new segment from the device.</param>
/// <param name="SegmentCount">segments held from the device now.</param>
/// <param name="ActiveBlockCount">blocks handed out and not yet freed.</param>
/// <param name="LimitBytes">the budget on <paramref name="ReservedBytes"/>, or null for none.</param>
public readonly record struct CachingAllocatorStats(
    long AllocatedBytes,
    long RequestedBytes,
    long ReservedBytes,
    long PeakAllocatedBytes,
    long PeakReservedBytes,
    long AllocationCount,
    long CacheHits,
    long CacheMisses,
    long SegmentCount,
    long ActiveBlockCount,
    long? LimitBytes)
{
    /// <summary>Bytes reserved from the device but not handed out: what <see cref="CachingAllocator.EmptyCache"/> may give back.</summary>
    public long CachedBytes => ReservedBytes - AllocatedBytes;
}

/// <summary>One block of a segment in a <see cref="CachingAllocator.Snapshot"/>.</summary>
/// <param name="OffsetBytes">start inside the segment.</param>
/// <param name="SizeInBytes">size of the block.</param>
/// <param name="IsAllocated">true when handed out, false when cached.</param>
public readonly record struct BlockSnapshot(long OffsetBytes, long SizeInBytes, bool IsAllocated);

/// <summary>One segment (one device allocation) in a <see cref="CachingAllocator.Snapshot"/>.</summary>
/// <param name="SegmentId">number of the segment, unique for the allocator's lifetime.</param>
/// <param name="SizeInBytes">size of the device allocation.</param>
/// <param name="IsSmallPool">true for a small-pool segment.</param>
/// <param name="Blocks">the blocks in address order; they tile the segment.</param>
public sealed record SegmentSnapshot(long SegmentId, long SizeInBytes, bool IsSmallPool, IReadOnlyList<BlockSnapshot> Blocks);
