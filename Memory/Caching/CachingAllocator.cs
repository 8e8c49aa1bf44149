namespace Hal.Memory;

/// <summary>
/// A caching allocator over any device's <see cref="IAllocator"/>, in the manner of PyTorch's CUDA caching allocator:
/// freed blocks stay reserved and serve later requests without a device allocation.
/// <para>
/// Pools: every request is rounded up to <see cref="CachingAllocatorOptions.BlockRoundingBytes"/> (0 bytes included,
/// so every block has an address of its own). Small requests (at most <see cref="CachingAllocatorOptions.SmallRequestMaxBytes"/>)
/// are carved from shared small segments; large ones from segments rounded up to
/// <see cref="CachingAllocatorOptions.LargeSegmentRoundingBytes"/>. The two pools never lend to each other, so small
/// short-lived blocks do not pin large segments. A request takes the smallest cached block of its pool that fits
/// (best fit, lower segment and offset on ties) and splits off the rest when the rest is worth keeping (any rest
/// in the small pool; more than the small-request size in the large pool). Freeing a block merges it with free
/// neighbours in its segment, so a segment whose blocks are all free is one free block again.
/// </para>
/// <para>
/// Budget: <see cref="LimitBytes"/> caps the bytes reserved from the device. When a new segment would exceed it
/// (or the device allocator raises <see cref="OutOfDeviceMemoryException"/>), the allocator first gives every unused
/// segment back (<see cref="EmptyCache"/>) and retries, then tries a segment of exactly the rounded request, and
/// only then throws. Thread-safe: one lock guards all state.
/// </para>
/// <para>
/// Reuse on asynchronous devices: a freed block may be handed out again at once, before queued kernels that read it
/// have run. That is safe while all work on the block is queued on the device's default stream (later work is
/// ordered after it); work on another stream must be synchronized before the block is freed.
/// </para>
/// </summary>
public sealed class CachingAllocator : IDisposable
{
    private readonly Lock _lock = new();
    private readonly IAllocator _inner;
    private readonly CachingAllocatorOptions _options;
    private readonly SortedSet<Block> _smallFree = new(BlockOrder.Instance);
    private readonly SortedSet<Block> _largeFree = new(BlockOrder.Instance);
    private readonly List<Segment> _segments = [];
    private readonly Dictionary<CachedBlock, Block> _active = new(ReferenceEqualityComparer.Instance);
    private long? _limitBytes;
    private long _allocated;
    private long _requested;
    private long _reserved;
    private long _peakAllocated;
    private long _peakReserved;
    private long _allocationCount;
    private long _hits;
    private long _misses;
    private long _nextSegmentId;
    private bool _disposed;

    /// <summary>A caching allocator over <paramref name="device"/>'s allocator.</summary>
    /// <param name="device">the device whose allocator provides the segments.</param>
    /// <param name="limitBytes">an optional budget on the bytes reserved from the device.</param>
    /// <param name="options">pool sizes; <see cref="CachingAllocatorOptions.Default"/> when null.</param>
    public CachingAllocator(IDevice device, long? limitBytes = null, CachingAllocatorOptions? options = null)
        : this(ValidDevice(device).Allocator, device.Id, limitBytes, options)
    {
    }

    /// <summary>A caching allocator over <paramref name="inner"/>.</summary>
    /// <param name="inner">the allocator that provides the segments.</param>
    /// <param name="deviceId">the device named in errors.</param>
    /// <param name="limitBytes">an optional budget on the bytes reserved from <paramref name="inner"/>.</param>
    /// <param name="options">pool sizes; <see cref="CachingAllocatorOptions.Default"/> when null.</param>
    public CachingAllocator(IAllocator inner, DeviceId deviceId, long? limitBytes = null, CachingAllocatorOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(inner);
        _inner = inner;
        DeviceId = deviceId;
        _options = options ?? CachingAllocatorOptions.Default;
        _options.Validate();
        LimitBytes = limitBytes;
    }

    /// <summary>The device the segments live on.</summary>
    public DeviceId DeviceId { get; }

    /// <summary>The pool sizes in use.</summary>
    public CachingAllocatorOptions Options => _options;

    /// <summary>
    /// The budget on reserved bytes, or null for none. Lowering it below the reserved bytes frees nothing by itself;
    /// the next allocation that needs a segment empties the cache first.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">the value is negative.</exception>
    public long? LimitBytes
    {
        get
        {
            lock (_lock)
            {
                return _limitBytes;
            }
        }
        set
        {
            if (value is long v)
            {
                ArgumentOutOfRangeException.ThrowIfNegative(v);
            }
            lock (_lock)
            {
                _limitBytes = value;
            }
        }
    }

    /// <summary>Current statistics.</summary>
    public CachingAllocatorStats Stats
    {
        get
        {
            lock (_lock)
            {
                return new CachingAllocatorStats(_allocated, _requested, _reserved, _peakAllocated, _peakReserved,
                    _allocationCount, _hits, _misses, _segments.Count, _active.Count, _limitBytes);
            }
        }
    }

    /// <summary>The size a request of <paramref name="sizeInBytes"/> bytes is rounded up to (0 becomes one rounding unit).</summary>
    public long RoundSize(long sizeInBytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(sizeInBytes);
        return RoundUp(Math.Max(sizeInBytes, 1), _options.BlockRoundingBytes);
    }

    /// <summary>Hands out <paramref name="sizeInBytes"/> bytes (0 allowed) from the cache, or from a new segment on a miss. Contents are unspecified.</summary>
    /// <exception cref="ArgumentOutOfRangeException">the size is negative.</exception>
    /// <exception cref="OutOfDeviceMemoryException">
    /// no segment fits the budget or the device even after the cache was emptied; <see cref="OutOfDeviceMemoryException.BytesInUse"/>
    /// is then the bytes still reserved (all held by live blocks) and <see cref="OutOfDeviceMemoryException.LimitBytes"/> the budget,
    /// or the device allocator's numbers when the device itself ran out.
    /// </exception>
    /// <exception cref="ObjectDisposedException">the allocator was disposed.</exception>
    public CachedBlock Allocate(long sizeInBytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(sizeInBytes);
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            // Sizes near long.MaxValue cannot be rounded without overflow and cannot exist on any device.
            if (sizeInBytes > long.MaxValue / 4)
            {
                throw new OutOfDeviceMemoryException(DeviceId, sizeInBytes, _reserved, _limitBytes ?? long.MaxValue);
            }
            long rounded = RoundSize(sizeInBytes);
            bool small = rounded <= _options.SmallRequestMaxBytes;
            SortedSet<Block> pool = small ? _smallFree : _largeFree;
            Block? block = BestFit(pool, rounded);
            if (block is not null)
            {
                pool.Remove(block);
                _hits++;
            }
            else
            {
                block = NewSegment(sizeInBytes, rounded, small).First;
                _misses++;
            }
            SplitIfWorthIt(block, rounded, pool);
            block.IsAllocated = true;
            var handle = new CachedBlock(this, block.Segment.Buffer, block.OffsetBytes, sizeInBytes, block.SizeInBytes);
            _active.Add(handle, block);
            _allocated += block.SizeInBytes;
            _requested += sizeInBytes;
            _peakAllocated = Math.Max(_peakAllocated, _allocated);
            _allocationCount++;
            return handle;
        }
    }

    /// <summary>
    /// Gives <paramref name="block"/> back to the cache and merges it with free neighbours. After the allocator was
    /// disposed this does nothing (its segments are gone already), so teardown order does not matter.
    /// </summary>
    /// <exception cref="DoubleFreeException">the block was already freed.</exception>
    /// <exception cref="ArgumentException">the block came from another allocator.</exception>
    public void Free(CachedBlock block)
    {
        ArgumentNullException.ThrowIfNull(block);
        if (!ReferenceEquals(block.Owner, this))
        {
            throw new ArgumentException($"{block} was handed out by another caching allocator", nameof(block));
        }
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }
            if (block.IsFreed)
            {
                throw new DoubleFreeException(DeviceId, block.OffsetBytes, block.SizeInBytes);
            }
            FreeLocked(block);
        }
    }

    /// <summary>Gives every segment with no live block back to the device allocator.</summary>
    /// <returns>the bytes given back.</returns>
    public long EmptyCache()
    {
        lock (_lock)
        {
            return _disposed ? 0 : EmptyCacheLocked();
        }
    }

    /// <summary>Sets both peaks to the current values.</summary>
    public void ResetPeak()
    {
        lock (_lock)
        {
            _peakAllocated = _allocated;
            _peakReserved = _reserved;
        }
    }

    /// <summary>Every segment and its blocks, in segment-id and address order (for inspection and tests).</summary>
    public IReadOnlyList<SegmentSnapshot> Snapshot()
    {
        lock (_lock)
        {
            var result = new List<SegmentSnapshot>(_segments.Count);
            foreach (var s in _segments)
            {
                var blocks = new List<BlockSnapshot>();
                for (Block? b = s.First; b is not null; b = b.Next)
                {
                    blocks.Add(new BlockSnapshot(b.OffsetBytes, b.SizeInBytes, b.IsAllocated));
                }
                result.Add(new SegmentSnapshot(s.Id, s.Buffer.SizeInBytes, s.IsSmall, blocks));
            }
            return result;
        }
    }

    /// <summary>Gives every segment back to the device, live blocks included; later allocations raise <see cref="ObjectDisposedException"/>.</summary>
    public void Dispose()
    {
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }
            _disposed = true;
            foreach (var handle in _active.Keys)
            {
                handle.IsFreed = true;
            }
            _active.Clear();
            _smallFree.Clear();
            _largeFree.Clear();
            foreach (var s in _segments)
            {
                s.Buffer.Dispose();
            }
            _segments.Clear();
            _allocated = 0;
            _requested = 0;
            _reserved = 0;
        }
    }

    internal void FreeIfLive(CachedBlock block)
    {
        lock (_lock)
        {
            if (!block.IsFreed)
            {
                FreeLocked(block);
            }
        }
    }

    private static IDevice ValidDevice(IDevice device)
    {
        ArgumentNullException.ThrowIfNull(device);
        return device;
    }

    private static long RoundUp(long value, long multiple) => (value + multiple - 1) / multiple * multiple;

    private void FreeLocked(CachedBlock handle)
    {
        handle.IsFreed = true;
        if (!_active.Remove(handle, out var block))
        {
            // Only a disposed allocator forgets live blocks; their segments are gone already.
            return;
        }
        _allocated -= block.SizeInBytes;
        _requested -= handle.SizeInBytes;
        block.IsAllocated = false;
        SortedSet<Block> pool = block.Segment.IsSmall ? _smallFree : _largeFree;
        if (block.Prev is { IsAllocated: false } prev)
        {
            pool.Remove(prev);
            prev.SizeInBytes += block.SizeInBytes;
            Unlink(block);
            block = prev;
        }
        if (block.Next is { IsAllocated: false } next)
        {
            pool.Remove(next);
            block.SizeInBytes += next.SizeInBytes;
            Unlink(next);
        }
        pool.Add(block);
    }

    private static void Unlink(Block b)
    {
        if (b.Prev is not null)
        {
            b.Prev.Next = b.Next;
        }
        if (b.Next is not null)
        {
            b.Next.Prev = b.Prev;
        }
    }

    private static Block? BestFit(SortedSet<Block> pool, long rounded)
    {
        if (pool.Count == 0 || pool.Max!.SizeInBytes < rounded)
        {
            return null;
        }
        // Common case, and cheaper than a range view: the smallest cached block already fits.
        if (pool.Min!.SizeInBytes >= rounded)
        {
            return pool.Min;
        }
        return pool.GetViewBetween(Block.Probe(rounded, low: true), Block.Probe(long.MaxValue, low: false)).Min;
    }

    private void SplitIfWorthIt(Block block, long rounded, SortedSet<Block> pool)
    {
        long rest = block.SizeInBytes - rounded;
        // A large block keeps a rest of up to a small request: splitting it would leave slivers no large request can use.
        bool worthIt = block.Segment.IsSmall ? rest > 0 : rest > _options.SmallRequestMaxBytes;
        if (!worthIt)
        {
            return;
        }
        var tail = new Block(block.Segment, block.OffsetBytes + rounded, rest) { Prev = block, Next = block.Next };
        if (block.Next is not null)
        {
            block.Next.Prev = tail;
        }
        block.Next = tail;
        block.SizeInBytes = rounded;
        pool.Add(tail);
    }

    private Segment NewSegment(long requested, long rounded, bool small)
    {
        long preferred = small ? _options.SmallSegmentBytes : RoundUp(rounded, _options.LargeSegmentRoundingBytes);
        long[] sizes = preferred == rounded ? [preferred] : [preferred, rounded];
        bool emptied = false;
        OutOfDeviceMemoryException? deviceError = null;
        foreach (long size in sizes)
        {
            for (int attempt = 0; attempt < 2; attempt++)
            {
                if (attempt == 1)
                {
                    if (emptied)
                    {
                        break;
                    }
                    EmptyCacheLocked();
                    emptied = true;
                }
                if (_limitBytes is long limit && size > limit - _reserved)
                {
                    continue;
                }
                try
                {
                    return AddSegment(_inner.Allocate(size), small);
                }
                catch (OutOfDeviceMemoryException e)
                {
                    deviceError = e;
                }
            }
        }
        if (_limitBytes is long budget && rounded > budget - _reserved)
        {
            throw new OutOfDeviceMemoryException(DeviceId, requested, _reserved, budget, deviceError);
        }
        if (deviceError is not null)
        {
            throw new OutOfDeviceMemoryException(DeviceId, requested, deviceError.BytesInUse, deviceError.LimitBytes, deviceError);
        }
        throw new InvalidOperationException("unreachable: a segment fit the budget but was neither allocated nor refused");
    }

    private Segment AddSegment(DeviceBuffer buffer, bool small)
    {
        var segment = new Segment(_nextSegmentId++, buffer, small);
        _segments.Add(segment);
        _reserved += buffer.SizeInBytes;
        _peakReserved = Math.Max(_peakReserved, _reserved);
        return segment;
    }

    private long EmptyCacheLocked()
    {
        long released = 0;
        _segments.RemoveAll(s =>
        {
            Block b = s.First;
            if (b.IsAllocated || b.Next is not null)
            {
                return false;
            }
            (s.IsSmall ? _smallFree : _largeFree).Remove(b);
            released += s.Buffer.SizeInBytes;
            s.Buffer.Dispose();
            return true;
        });
        _reserved -= released;
        return released;
    }

    /// <summary>One device allocation; its blocks form a doubly linked list in address order starting at <see cref="First"/>.</summary>
    private sealed class Segment
    {
        public Segment(long id, DeviceBuffer buffer, bool isSmall)
        {
            Id = id;
            Buffer = buffer;
            IsSmall = isSmall;
            First = new Block(this, 0, buffer.SizeInBytes);
        }

        public long Id { get; }

        public DeviceBuffer Buffer { get; }

        public bool IsSmall { get; }

        // The block at offset 0 never merges into a predecessor, so it stays the list head for the segment's life.
        public Block First { get; }
    }

    private sealed class Block
    {
        public Block(Segment segment, long offsetBytes, long sizeInBytes)
            : this(segment, segment.Id, offsetBytes, sizeInBytes)
        {
        }

        private Block(Segment? segment, long segmentId, long offsetBytes, long sizeInBytes)
        {
            _segment = segment;
            SegmentId = segmentId;
            OffsetBytes = offsetBytes;
            SizeInBytes = sizeInBytes;
        }

        private readonly Segment? _segment;

        public Segment Segment => _segment ?? throw new InvalidOperationException("a search key has no segment");

        public long SegmentId { get; }

        public long OffsetBytes { get; }

        // Changes only while the block is outside the free sets (the sets order by size).
        public long SizeInBytes { get; set; }

        public bool IsAllocated { get; set; }

        public Block? Prev { get; set; }

        public Block? Next { get; set; }

        /// <summary>A search key that sorts before (<paramref name="low"/>) or after every real block of <paramref name="size"/> bytes.</summary>
        public static Block Probe(long size, bool low) =>
            low ? new Block(null, long.MinValue, long.MinValue, size) : new Block(null, long.MaxValue, long.MaxValue, size);
    }

    /// <summary>Orders free blocks by size, then segment id, then offset: the first block of a size range is the best fit.</summary>
    private sealed class BlockOrder : IComparer<Block>
    {
        public static readonly BlockOrder Instance = new();

        public int Compare(Block? x, Block? y)
        {
            if (ReferenceEquals(x, y))
            {
                return 0;
            }
            int c = x!.SizeInBytes.CompareTo(y!.SizeInBytes);
            if (c != 0)
            {
                return c;
            }
            c = x.SegmentId.CompareTo(y.SegmentId);
            return c != 0 ? c : x.OffsetBytes.CompareTo(y.OffsetBytes);
        }
    }
}
