using Hal.Backends.Cpu;

namespace Hal.Memory.Tests;

/// <summary>Pools, hits, splitting, coalescing, stats and errors of <see cref="CachingAllocator"/> over the CPU device.</summary>
public sealed class CachingAllocatorTests : IDisposable
{
    private const long KiB = 1024;
    private const long MiB = 1024 * 1024;

    private readonly IDevice _device = new CpuBackend().Open(0);

    public void Dispose() => _device.Dispose();

    [Fact]
    public void ReuseAfterFreeIsAHitOnTheSameBytes()
    {
        using var cache = new CachingAllocator(_device);
        var a = cache.Allocate(1000);
        DeviceBuffer segment = a.Segment;
        long offset = a.OffsetBytes;
        cache.Free(a);
        var b = cache.Allocate(1000);

        Assert.Same(segment, b.Segment);
        Assert.Equal(offset, b.OffsetBytes);
        var s = cache.Stats;
        Assert.Equal(1, s.CacheHits);
        Assert.Equal(1, s.CacheMisses);
        Assert.Equal(2, s.AllocationCount);
        Assert.Equal(1, s.SegmentCount);
        Assert.Equal(1024, s.AllocatedBytes);
        Assert.Equal(1000, s.RequestedBytes);
        Assert.Equal(2 * MiB, s.ReservedBytes);
    }

    [Fact]
    public void StatsAreExactOverMixedPools()
    {
        using var cache = new CachingAllocator(_device);
        long deviceBefore = _device.Allocator.Stats.BytesReserved;

        var tiny = cache.Allocate(100);            // small: 512
        var edge = cache.Allocate(MiB);            // small: exactly the small limit, 1 MiB in the same 2 MiB segment
        var large = cache.Allocate(MiB + 1);       // large: 1 MiB + 512 in a 2 MiB segment; rest 1 MiB - 512 is not split off
        var s = cache.Stats;

        Assert.Equal(512 + MiB + (2 * MiB), s.AllocatedBytes);
        Assert.Equal(100 + MiB + MiB + 1, s.RequestedBytes);
        Assert.Equal(4 * MiB, s.ReservedBytes);
        Assert.Equal(2, s.SegmentCount);
        Assert.Equal(3, s.ActiveBlockCount);
        Assert.Equal(1, s.CacheHits);              // the 1 MiB block came from the small segment's free rest
        Assert.Equal(2, s.CacheMisses);
        Assert.Equal(2 * MiB, large.BlockBytes);
        Assert.Equal(512, edge.OffsetBytes);
        Assert.Same(tiny.Segment, edge.Segment);
        Assert.Equal(4 * MiB, _device.Allocator.Stats.BytesReserved - deviceBefore);

        cache.Free(edge);
        cache.Free(large);
        tiny.Dispose();
        s = cache.Stats;
        Assert.Equal(0, s.AllocatedBytes);
        Assert.Equal(0, s.RequestedBytes);
        Assert.Equal(512 + MiB + (2 * MiB), s.PeakAllocatedBytes);
        Assert.Equal(4 * MiB, s.PeakReservedBytes);
        Assert.Equal(4 * MiB, s.CachedBytes);

        Assert.Equal(4 * MiB, cache.EmptyCache());
        s = cache.Stats;
        Assert.Equal(0, s.ReservedBytes);
        Assert.Equal(0, s.SegmentCount);
        Assert.Equal(deviceBefore, _device.Allocator.Stats.BytesReserved);

        cache.ResetPeak();
        Assert.Equal(0, cache.Stats.PeakAllocatedBytes);
        Assert.Equal(0, cache.Stats.PeakReservedBytes);
    }

    [Fact]
    public void SmallBlocksSplitOneSegmentAndCoalesceBack()
    {
        using var cache = new CachingAllocator(_device);
        var a = cache.Allocate(512);
        var b = cache.Allocate(1024);
        var c = cache.Allocate(1);
        Assert.Equal([0L, 512L, 1536L], [a.OffsetBytes, b.OffsetBytes, c.OffsetBytes]);

        cache.Free(b);
        Assert.Equal(
            [new(0, 512, true), new(512, 1024, false), new(1536, 512, true), new(2048, (2 * MiB) - 2048, false)],
            cache.Snapshot().Single().Blocks);

        cache.Free(a);  // merges with the free block after it
        Assert.Equal([new(0, 1536, false), new(1536, 512, true), new(2048, (2 * MiB) - 2048, false)], cache.Snapshot().Single().Blocks);

        cache.Free(c);  // merges with both neighbours: the segment is one free block again
        Assert.Equal([new BlockSnapshot(0, 2 * MiB, false)], cache.Snapshot().Single().Blocks);
    }

    [Fact]
    public void LargeBlocksSplitOnlyWhenMoreThanASmallRequestIsLeft()
    {
        using var cache = new CachingAllocator(_device);
        cache.Free(cache.Allocate(8 * MiB));

        var two = cache.Allocate(2 * MiB);         // hit; 6 MiB left over, split off
        Assert.Equal([new(0, 2 * MiB, true), new(2 * MiB, 6 * MiB, false)], cache.Snapshot().Single().Blocks);

        var big = cache.Allocate(7 * MiB);         // no cached block of 7 MiB: a new segment
        Assert.Equal(2, cache.Stats.SegmentCount);
        Assert.Equal(0, big.OffsetBytes);
        Assert.Equal(8 * MiB, big.BlockBytes);    // an 8 MiB segment; the 1 MiB rest is not more than a small request

        var almost = cache.Allocate((5 * MiB) + (MiB / 2)); // hit on the 6 MiB block; 0.5 MiB left is kept with it
        Assert.Equal(2 * MiB, almost.OffsetBytes);
        Assert.Equal(6 * MiB, almost.BlockBytes);
        Assert.Equal(2, cache.Stats.CacheHits);
        Assert.Equal((2 * MiB) + (8 * MiB) + (6 * MiB), cache.Stats.AllocatedBytes);
    }

    [Fact]
    public void SmallAndLargePoolsDoNotLendToEachOther()
    {
        using var cache = new CachingAllocator(_device);
        cache.Free(cache.Allocate(4 * MiB));       // a cached large segment
        var small = cache.Allocate(4 * KiB);
        Assert.Equal(2, cache.Stats.SegmentCount);
        Assert.Equal(2 * MiB, small.Segment.SizeInBytes);
        Assert.Equal(0, cache.Stats.CacheHits);
    }

    [Fact]
    public void BestFitTakesTheSmallestCachedBlockThatFits()
    {
        using var cache = new CachingAllocator(_device);
        var a = cache.Allocate(4 * KiB);
        var sep1 = cache.Allocate(512);
        var b = cache.Allocate(2 * KiB);
        var sep2 = cache.Allocate(512);
        cache.Free(a);
        cache.Free(b);
        var c = cache.Allocate(1536);              // fits both freed holes; the 2 KiB one is the better fit
        Assert.Equal(b.OffsetBytes, c.OffsetBytes);
        Assert.Equal(1536, c.BlockBytes);
        GC.KeepAlive(sep1);
        GC.KeepAlive(sep2);
    }

    [Theory]
    [InlineData(0, 512)]
    [InlineData(1, 512)]
    [InlineData(7, 512)]
    [InlineData(511, 512)]
    [InlineData(512, 512)]
    [InlineData(513, 1024)]
    [InlineData(1023, 1024)]
    [InlineData(1025, 1536)]
    [InlineData(1048575, 1048576)]
    [InlineData(1048577, 1049088)]
    public void RequestsRoundUpToWholeRoundingUnits(long requested, long expected)
    {
        using var cache = new CachingAllocator(_device);
        Assert.Equal(expected, cache.RoundSize(requested));
        var block = cache.Allocate(requested);
        // Small blocks are always cut to the rounded size; the one large case here keeps its 2 MiB segment whole.
        Assert.Equal(requested > MiB ? 2 * MiB : expected, block.BlockBytes);
        Assert.Equal(0, block.OffsetBytes % 512);
    }

    [Fact]
    public void ZeroByteRequestsGetDistinctBlocksOfOneRoundingUnit()
    {
        using var cache = new CachingAllocator(_device);
        var a = cache.Allocate(0);
        var b = cache.Allocate(0);
        Assert.Equal(0, a.SizeInBytes);
        Assert.Equal(512, a.BlockBytes);
        Assert.NotEqual(a.OffsetBytes, b.OffsetBytes);
        Assert.Equal(1024, cache.Stats.AllocatedBytes);
        Assert.Equal(0, cache.Stats.RequestedBytes);
        Assert.Equal(0, a.AsTensor(new Shape(0), DType.F32).ElementCount);
        Assert.Throws<ArgumentException>(() => a.AsTensor(new Shape(1), DType.F32));
    }

    [Fact]
    public void DoubleFreeRaisesATypedErrorWithTheBlock()
    {
        using var cache = new CachingAllocator(_device);
        var a = cache.Allocate(100);
        var b = cache.Allocate(100);
        cache.Free(b);
        var e = Assert.Throws<DoubleFreeException>(() => cache.Free(b));
        Assert.Equal(512, e.OffsetBytes);
        Assert.Equal(100, e.SizeInBytes);
        Assert.Equal(_device.Id, e.Device);
        b.Dispose();                               // Dispose stays idempotent
        a.Dispose();
        Assert.Throws<DoubleFreeException>(() => cache.Free(a));
        Assert.Equal(0, cache.Stats.AllocatedBytes);
        Assert.Throws<ObjectDisposedException>(() => a.AsTensor(new Shape(1), DType.F32));
    }

    [Fact]
    public void InvalidArgumentsRaise()
    {
        using var cache = new CachingAllocator(_device);
        using var other = new CachingAllocator(_device);
        Assert.Throws<ArgumentOutOfRangeException>(() => cache.Allocate(-1));
        Assert.Throws<ArgumentOutOfRangeException>(() => cache.LimitBytes = -1);
        var foreign = other.Allocate(8);
        Assert.Throws<ArgumentException>(() => cache.Free(foreign));
        Assert.Throws<ArgumentException>(() => new CachingAllocator(_device, options: new CachingAllocatorOptions { BlockRoundingBytes = 96 }));
        Assert.Throws<ArgumentException>(() => new CachingAllocator(_device, options: new CachingAllocatorOptions { SmallSegmentBytes = 512 }));
        Assert.Equal(0, cache.Stats.AllocationCount);
    }

    [Fact]
    public void TensorsOverBlocksKeepTheirOwnBytes()
    {
        using var cache = new CachingAllocator(_device);
        var ops = new Ops(_device);
        var a = cache.Allocate(7 * sizeof(float));
        var b = cache.Allocate(9 * sizeof(float));
        var ta = a.AsTensor(new Shape(7), DType.F32);
        var tb = b.AsTensor(new Shape(9), DType.F32);
        Assert.Equal(512, tb.OffsetBytes);

        double[] va = [.. Enumerable.Range(0, 7).Select(i => i + 0.5)];
        double[] vb = [.. Enumerable.Range(0, 9).Select(i => -i - 0.25)];
        using (var src = ops.FromArray(va, new Shape(7), DType.F32))
        {
            _device.CopyDeviceToDevice(src.Buffer, src.OffsetBytes, ta.Buffer, ta.OffsetBytes, ta.SizeInBytes);
        }
        using (var src = ops.FromArray(vb, new Shape(9), DType.F32))
        {
            _device.CopyDeviceToDevice(src.Buffer, src.OffsetBytes, tb.Buffer, tb.OffsetBytes, tb.SizeInBytes);
        }
        Assert.Equal(va, ops.ToDoubleArray(ta));
        Assert.Equal(vb, ops.ToDoubleArray(tb));
    }

    [Fact]
    public void DisposeGivesEverySegmentBackAndRefusesLaterAllocations()
    {
        long before = _device.Allocator.Stats.BytesReserved;
        var cache = new CachingAllocator(_device);
        var live = cache.Allocate(3 * MiB);
        cache.Free(cache.Allocate(10));
        Assert.Equal((4 * MiB) + (2 * MiB), _device.Allocator.Stats.BytesReserved - before);
        cache.Dispose();
        Assert.Equal(before, _device.Allocator.Stats.BytesReserved);
        Assert.True(live.IsFreed);
        live.Dispose();
        cache.Free(live);                          // freeing after the allocator is gone is a no-op, not a double free
        Assert.Throws<ObjectDisposedException>(() => cache.Allocate(1));
        Assert.Throws<ObjectDisposedException>(() => live.AsTensor(new Shape(1), DType.U8));
        Assert.Equal(0, cache.EmptyCache());
    }
}
