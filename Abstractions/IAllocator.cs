namespace Hal;

/// <summary>Memory statistics of one allocator, in bytes unless named otherwise.</summary>
/// <param name="BytesInUse">bytes held by live buffers.</param>
/// <param name="BytesReserved">bytes taken from the device (in use plus any cached, reusable blocks).</param>
/// <param name="PeakBytesInUse">the largest <paramref name="BytesInUse"/> seen since creation or the last reset.</param>
/// <param name="AllocationCount">number of successful allocations since creation.</param>
/// <param name="LimitBytes">the byte limit, or null when only the device's own memory limits allocations.</param>
public readonly record struct AllocatorStats(long BytesInUse, long BytesReserved, long PeakBytesInUse, long AllocationCount, long? LimitBytes);

/// <summary>Allocates device buffers and keeps statistics.</summary>
public interface IAllocator
{
    /// <summary>Allocates <paramref name="sizeInBytes"/> bytes (0 allowed), aligned to at least 64 bytes. Contents are unspecified.</summary>
    /// <exception cref="OutOfDeviceMemoryException">the allocation would exceed the limit or the device's memory.</exception>
    /// <exception cref="ArgumentOutOfRangeException">the size is negative.</exception>
    DeviceBuffer Allocate(long sizeInBytes);

    /// <summary>Current statistics.</summary>
    AllocatorStats Stats { get; }

    /// <summary>The byte limit, or null for none. Lowering it below the bytes in use does not free anything; later allocations fail.</summary>
    long? LimitBytes { get; set; }

    /// <summary>Sets <see cref="AllocatorStats.PeakBytesInUse"/> to the current bytes in use.</summary>
    void ResetPeak();
}
