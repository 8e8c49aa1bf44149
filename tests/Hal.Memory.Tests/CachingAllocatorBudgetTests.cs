using Hal.Backends.Cpu;

namespace Hal.Memory.Tests;

/// <summary>The byte budget of <see cref="CachingAllocator"/>: empty the cache, retry, fall back to an exact segment, then throw with the numbers.</summary>
public sealed class CachingAllocatorBudgetTests
{
    private const long MiB = 1024 * 1024;

    [Fact]
    public void BudgetEmptiesTheCacheAndRetriesBeforeFailing()
    {
        using var device = new CpuBackend().Open(0);
        long deviceBefore = device.Allocator.Stats.BytesReserved;
        using var cache = new CachingAllocator(device, limitBytes: 4 * MiB);
        cache.Free(cache.Allocate(MiB + 1));       // a cached 2 MiB large segment
        Assert.Equal(2 * MiB, cache.Stats.ReservedBytes);

        var big = cache.Allocate((3 * MiB) + 1);   // needs a 4 MiB segment: only after the cached 2 MiB go back
        var s = cache.Stats;
        Assert.Equal(4 * MiB, s.ReservedBytes);
        Assert.Equal(1, s.SegmentCount);
        Assert.Equal(2, s.CacheMisses);
        Assert.Equal(0, s.CacheHits);
        Assert.Equal(4 * MiB, s.PeakReservedBytes);
        Assert.Equal(4 * MiB, big.BlockBytes);
        Assert.Equal(4 * MiB, device.Allocator.Stats.BytesReserved - deviceBefore);
    }

    [Fact]
    public void BudgetFallsBackToASegmentOfExactlyTheRoundedRequest()
    {
        using var device = new CpuBackend().Open(0);
        using var cache = new CachingAllocator(device, limitBytes: MiB);
        var a = cache.Allocate(1000);              // a 2 MiB small segment would break the 1 MiB budget
        Assert.Equal(1024, a.Segment.SizeInBytes);
        Assert.Equal(1024, cache.Stats.ReservedBytes);

        cache.LimitBytes = 5 * MiB;
        var b = cache.Allocate((3 * MiB) + 1);     // preferred 4 MiB segment fits: 1 KiB + 4 MiB <= 5 MiB
        Assert.Equal(4 * MiB, b.Segment.SizeInBytes);
        cache.Free(b);
        cache.LimitBytes = 5 * MiB;
        var c = cache.Allocate((4 * MiB) + 1);     // the cached 4 MiB block is too small; after emptying, a 6 MiB segment is not, 4 MiB + 512 is
        Assert.Equal((4 * MiB) + 512, c.Segment.SizeInBytes);
        Assert.Equal(1024 + (4 * MiB) + 512, cache.Stats.ReservedBytes);
        Assert.Equal(2, cache.Stats.SegmentCount);
    }

    [Fact]
    public void OutOfBudgetNamesTheDeviceAndTheNumbers()
    {
        using var device = new CpuBackend().Open(0);
        using var cache = new CachingAllocator(device, limitBytes: 4 * MiB);
        var live = cache.Allocate(3 * MiB);        // a 4 MiB segment: the whole budget
        var before = cache.Stats;

        var e = Assert.Throws<OutOfDeviceMemoryException>(() => cache.Allocate(1));
        Assert.Equal(device.Id, e.Device);
        Assert.Equal(1, e.BytesRequested);
        Assert.Equal(4 * MiB, e.BytesInUse);
        Assert.Equal(4 * MiB, e.LimitBytes);
        Assert.Contains($"asked for 1 bytes with {4 * MiB} in use and a limit of {4 * MiB} bytes", e.Message);
        Assert.Equal(before, cache.Stats);         // a failed request changes no statistic

        cache.Free(live);
        Assert.Equal(1024, cache.Allocate(1000).BlockBytes);   // the cached large segment goes back, a small one fits
        Assert.Equal(2 * MiB, cache.Stats.ReservedBytes);
        Assert.Equal(1, cache.Stats.SegmentCount);
        Assert.Equal(0, cache.Stats.CacheHits);
    }

    [Fact]
    public void LoweringTheBudgetFreesNothingUntilASegmentIsNeeded()
    {
        using var device = new CpuBackend().Open(0);
        using var cache = new CachingAllocator(device);
        var a = cache.Allocate(1000);
        cache.Free(cache.Allocate(MiB + 1));       // a cached 2 MiB large segment
        cache.LimitBytes = 3 * MiB;
        Assert.Equal(4 * MiB, cache.Stats.ReservedBytes);

        var hit = cache.Allocate(2000);            // served from the small segment: the budget is not consulted
        Assert.Equal(4 * MiB, cache.Stats.ReservedBytes);
        Assert.Equal(1, cache.Stats.CacheHits);

        // A miss: the cached 2 MiB go back; then neither a 4 MiB segment nor one of 2 MiB + 512 fits beside the small 2 MiB.
        var e = Assert.Throws<OutOfDeviceMemoryException>(() => cache.Allocate((2 * MiB) + 1));
        Assert.Equal(2 * MiB, e.BytesInUse);
        Assert.Equal(3 * MiB, e.LimitBytes);
        Assert.Equal(2 * MiB, cache.Stats.ReservedBytes);
        Assert.Equal(1, cache.Stats.SegmentCount);
        GC.KeepAlive(a);
        GC.KeepAlive(hit);
    }

    [Fact]
    public void RequestsAboveTheBudgetFailWithoutTouchingTheDevice()
    {
        using var device = new CpuBackend().Open(0);
        using var cache = new CachingAllocator(device, limitBytes: 3 * MiB);
        long deviceBefore = device.Allocator.Stats.AllocationCount;
        var e = Assert.Throws<OutOfDeviceMemoryException>(() => cache.Allocate((3 * MiB) + 1));
        Assert.Equal((3 * MiB) + 1, e.BytesRequested);
        Assert.Equal(0, e.BytesInUse);
        Assert.Equal(3 * MiB, e.LimitBytes);
        Assert.Equal(deviceBefore, device.Allocator.Stats.AllocationCount);
        Assert.Throws<OutOfDeviceMemoryException>(() => cache.Allocate(long.MaxValue));
    }

    [Fact]
    public void DeviceOutOfMemoryIsRetriedAfterEmptyingAndThenReportedWithTheDeviceNumbers()
    {
        using var device = new CpuBackend(new CpuBackendOptions { DeviceMemoryBytes = 3 * MiB }).Open(0);
        using var cache = new CachingAllocator(device);
        cache.Free(cache.Allocate(MiB + 1));       // a cached 2 MiB segment

        var a = cache.Allocate((2 * MiB) + 1);     // 4 MiB never fits the device; after emptying, 2 MiB + 512 does
        Assert.Equal((2 * MiB) + 512, a.Segment.SizeInBytes);
        Assert.Equal(1, cache.Stats.SegmentCount);

        var e = Assert.Throws<OutOfDeviceMemoryException>(() => cache.Allocate(2 * MiB));
        Assert.Equal(2 * MiB, e.BytesRequested);
        Assert.Equal((2 * MiB) + 512, e.BytesInUse);
        Assert.Equal(3 * MiB, e.LimitBytes);
        Assert.IsType<OutOfDeviceMemoryException>(e.InnerException);
    }
}
