using Hal.Backends.Cpu;

namespace Hal.Memory.Tests;

/// <summary>
/// Seeded random allocate/free/empty sequences checked step by step against a plain model of the documented policy
/// (rounding, pools, best fit, split rule, coalescing) and against the bytes written into every live block.
/// </summary>
public sealed class CachingAllocatorModelTests
{
    // Small sizes so that a few thousand steps split, coalesce and empty many segments.
    private static readonly CachingAllocatorOptions TinyPools = new()
    {
        BlockRoundingBytes = 64,
        SmallRequestMaxBytes = 1024,
        SmallSegmentBytes = 4096,
        LargeSegmentRoundingBytes = 4096,
    };

    private static readonly long[] EdgeSizes = [0, 1, 63, 64, 65, 127, 128, 129, 1023, 1024, 1025, 4095, 4096, 4097, 8191, 8192, 8193];

    [Theory]
    [InlineData(1)]
    [InlineData(20261128)]
    [InlineData(777)]
    public void RandomSequenceMatchesTheModel(int seed)
    {
        using var device = new CpuBackend().Open(0);
        long deviceBefore = device.Allocator.Stats.BytesReserved;
        using var cache = new CachingAllocator(device, options: TinyPools);
        var rng = new Random(seed);
        var live = new List<(CachedBlock Block, long SegmentId, byte Tag)>();
        long hits = 0, misses = 0, segmentsCreated = 0, allocations = 0, peakAllocated = 0, peakReserved = 0;

        for (int step = 0; step < 2000; step++)
        {
            string where = $"seed {seed}, step {step}";
            double roll = rng.NextDouble();
            if (roll < 0.02)
            {
                var before = cache.Snapshot();
                long expected = before.Where(s => s.Blocks is [{ IsAllocated: false }]).Sum(s => s.SizeInBytes);
                Assert.True(expected == cache.EmptyCache(), where);
                Assert.True(cache.Snapshot().All(s => s.Blocks.Any(b => b.IsAllocated)), where);
            }
            else if (roll < 0.51 && live.Count > 0)
            {
                int i = rng.Next(live.Count);
                var (block, _, tag) = live[i];
                var bytes = new byte[block.SizeInBytes];
                device.CopyToHost(block.Segment, block.OffsetBytes, bytes);
                Assert.True(bytes.All(b => b == tag), $"{where}: another block overwrote this one's bytes");
                cache.Free(block);
                live.RemoveAt(i);
            }
            else
            {
                long size = rng.NextDouble() switch
                {
                    < 0.15 => EdgeSizes[rng.Next(EdgeSizes.Length)],
                    < 0.65 => rng.Next(0, 1100),
                    _ => rng.Next(1025, 12000),
                };
                var before = cache.Snapshot();
                long rounded = (Math.Max(size, 1) + 63) / 64 * 64;
                bool small = rounded <= 1024;
                var fit = before.Where(s => s.IsSmallPool == small)
                    .SelectMany(s => s.Blocks.Where(b => !b.IsAllocated && b.SizeInBytes >= rounded).Select(b => (s.SegmentId, Block: b)))
                    .OrderBy(c => c.Block.SizeInBytes).ThenBy(c => c.SegmentId).ThenBy(c => c.Block.OffsetBytes)
                    .Select(c => ((long SegmentId, BlockSnapshot Block)?)c).FirstOrDefault();
                long segmentId, offset, available;
                if (fit is { } f)
                {
                    hits++;
                    (segmentId, offset, available) = (f.SegmentId, f.Block.OffsetBytes, f.Block.SizeInBytes);
                }
                else
                {
                    misses++;
                    (segmentId, offset, available) = (segmentsCreated++, 0, small ? 4096 : (rounded + 4095) / 4096 * 4096);
                }
                long rest = available - rounded;
                long expectedBlockBytes = (small ? rest > 0 : rest > 1024) ? rounded : available;

                var block = cache.Allocate(size);
                allocations++;
                Assert.True(offset == block.OffsetBytes, $"{where}: offset {block.OffsetBytes}, expected {offset}");
                Assert.True(expectedBlockBytes == block.BlockBytes, $"{where}: block bytes {block.BlockBytes}, expected {expectedBlockBytes}");
                byte tag = (byte)(step % 251 + 1);
                device.CopyFromHost(Enumerable.Repeat(tag, (int)size).ToArray(), block.Segment, block.OffsetBytes);
                live.Add((block, segmentId, tag));
            }

            var snapshot = cache.Snapshot();
            CheckTiling(snapshot, where);
            var modelAllocated = live.Select(l => (l.SegmentId, l.Block.OffsetBytes, l.Block.BlockBytes)).Order().ToArray();
            var actualAllocated = snapshot.SelectMany(s => s.Blocks.Where(b => b.IsAllocated).Select(b => (s.SegmentId, b.OffsetBytes, b.SizeInBytes))).Order().ToArray();
            Assert.True(modelAllocated.SequenceEqual(actualAllocated), $"{where}: allocated blocks differ from the live handles");

            long allocated = live.Sum(l => l.Block.BlockBytes);
            long reserved = snapshot.Sum(s => s.SizeInBytes);
            peakAllocated = Math.Max(peakAllocated, allocated);
            peakReserved = Math.Max(peakReserved, reserved);
            var expectedStats = new CachingAllocatorStats(allocated, live.Sum(l => l.Block.SizeInBytes), reserved, peakAllocated, peakReserved,
                allocations, hits, misses, snapshot.Count, live.Count, null);
            Assert.True(expectedStats == cache.Stats, $"{where}: stats {cache.Stats}, expected {expectedStats}");
            Assert.True(reserved == device.Allocator.Stats.BytesReserved - deviceBefore, $"{where}: device reserved bytes");
        }

        foreach (var (block, _, _) in live)
        {
            block.Dispose();
        }
        Assert.Equal(0, cache.Stats.AllocatedBytes);
        Assert.True(cache.Snapshot().All(s => s.Blocks.Count == 1), $"seed {seed}: every segment coalesced into one free block");
        cache.EmptyCache();
        Assert.Equal(deviceBefore, device.Allocator.Stats.BytesReserved);
    }

    /// <summary>Blocks tile each segment in order, sizes are multiples of the rounding, and no two free blocks are neighbours.</summary>
    private static void CheckTiling(IReadOnlyList<SegmentSnapshot> snapshot, string where)
    {
        foreach (var s in snapshot)
        {
            long next = 0;
            bool previousFree = false;
            foreach (var b in s.Blocks)
            {
                Assert.True(b.OffsetBytes == next, $"{where}: segment {s.SegmentId} has a gap or overlap at {b.OffsetBytes}");
                Assert.True(b.SizeInBytes > 0 && b.SizeInBytes % 64 == 0, $"{where}: segment {s.SegmentId} block size {b.SizeInBytes}");
                Assert.False(previousFree && !b.IsAllocated, $"{where}: segment {s.SegmentId} has neighbouring free blocks at {b.OffsetBytes}");
                previousFree = !b.IsAllocated;
                next += b.SizeInBytes;
            }
            Assert.True(next == s.SizeInBytes, $"{where}: segment {s.SegmentId} blocks cover {next} of {s.SizeInBytes} bytes");
        }
    }

    [Fact]
    public void ConcurrentAllocateAndFreeKeepBlocksDisjointAndStatsExact()
    {
        const int Threads = 4, StepsPerThread = 1500, Seed = 4242;
        using var device = new CpuBackend().Open(0);
        using var cache = new CachingAllocator(device, options: TinyPools);
        var failures = new System.Collections.Concurrent.ConcurrentQueue<string>();

        var workers = Enumerable.Range(0, Threads).Select(t => new Thread(() =>
        {
            var rng = new Random(Seed + t);
            var live = new List<(CachedBlock Block, byte Tag)>();
            for (int step = 0; step < StepsPerThread; step++)
            {
                if (live.Count > 0 && (live.Count > 24 || rng.Next(2) == 0))
                {
                    int i = rng.Next(live.Count);
                    var (block, tag) = live[i];
                    var bytes = new byte[block.SizeInBytes];
                    device.CopyToHost(block.Segment, block.OffsetBytes, bytes);
                    if (bytes.Any(b => b != tag))
                    {
                        failures.Enqueue($"seed {Seed + t}, step {step}: a block's bytes were overwritten");
                    }
                    cache.Free(block);
                    live.RemoveAt(i);
                }
                else
                {
                    long size = rng.Next(0, 6000);
                    var block = cache.Allocate(size);
                    byte tag = (byte)((t * 64) + (step % 63) + 1);
                    device.CopyFromHost(Enumerable.Repeat(tag, (int)size).ToArray(), block.Segment, block.OffsetBytes);
                    live.Add((block, tag));
                }
            }
            foreach (var (block, _) in live)
            {
                cache.Free(block);
            }
        })).ToList();
        workers.ForEach(w => w.Start());
        workers.ForEach(w => w.Join());

        Assert.Empty(failures);
        var s = cache.Stats;
        Assert.Equal(0, s.AllocatedBytes);
        Assert.Equal(0, s.ActiveBlockCount);
        Assert.Equal(s.AllocationCount, s.CacheHits + s.CacheMisses);
        Assert.Equal(s.SegmentCount, s.CacheMisses);  // no budget and no EmptyCache: every miss made a segment that is still held
        Assert.Equal(s.ReservedBytes, cache.EmptyCache());
        Assert.Equal(0, cache.Stats.SegmentCount);
    }
}
