using ILGPU;
using ILGPU.Runtime;

namespace Hal.Backends.Cuda;

/// <summary>Caching-allocator counters of one CUDA device.</summary>
/// <param name="BytesCached">bytes held in free blocks, ready for reuse.</param>
/// <param name="BlocksCached">number of free blocks held.</param>
/// <param name="CacheHits">allocations served from a cached block.</param>
/// <param name="DeviceAllocations">allocations that went to the device.</param>
/// <param name="EmptyCacheCount">times the cache was emptied (explicitly or to retry after a device out-of-memory).</param>
public readonly record struct CudaCacheStats(long BytesCached, long BlocksCached, long CacheHits, long DeviceAllocations, long EmptyCacheCount);

/// <summary>
/// Device memory with a size-bucketed cache: a freed block goes back to its bucket instead of to the driver, and the
/// next request of that bucket reuses it. Reuse needs no synchronisation because every kernel and copy of a device
/// runs in order on its one stream. When the device runs out, the cache is emptied and the allocation retried once
/// before the typed <see cref="OutOfDeviceMemoryException"/>.
/// </summary>
public sealed class CudaAllocator : AllocatorBase
{
    /// <summary>Smallest block, in bytes; also the alignment of every block.</summary>
    public const long MinBlockBytes = 512;

    /// <summary>Blocks up to this size round up to a power of two; larger ones to a multiple of <see cref="LargeRoundingBytes"/>.</summary>
    public const long SmallLimitBytes = 1L << 20;

    /// <summary>Rounding of large blocks (2 MiB).</summary>
    public const long LargeRoundingBytes = 2L << 20;

    private readonly Accelerator _accelerator;
    private readonly Lock _cacheLock = new();
    private readonly Dictionary<long, Stack<MemoryBuffer1D<byte, Stride1D.Dense>>> _free = [];
    private long _bytesCached;
    private long _blocksCached;
    private long _hits;
    private long _deviceAllocations;
    private long _emptyCount;

    internal CudaAllocator(CudaDevice device, Accelerator accelerator, long capacityBytes, long? limitBytes)
        : base(device, capacityBytes, limitBytes)
    {
        _accelerator = accelerator;
    }

    /// <summary>Counters of the cache.</summary>
    public CudaCacheStats CacheStats
    {
        get
        {
            lock (_cacheLock)
            {
                return new CudaCacheStats(_bytesCached, _blocksCached, _hits, _deviceAllocations, _emptyCount);
            }
        }
    }

    /// <summary>The block size a request of <paramref name="sizeInBytes"/> is served from.</summary>
    public static long BucketBytes(long sizeInBytes)
    {
        if (sizeInBytes <= MinBlockBytes)
        {
            return MinBlockBytes;
        }
        if (sizeInBytes <= SmallLimitBytes)
        {
            return (long)System.Numerics.BitOperations.RoundUpToPowerOf2((ulong)sizeInBytes);
        }
        return (sizeInBytes + LargeRoundingBytes - 1) / LargeRoundingBytes * LargeRoundingBytes;
    }

    /// <summary>Gives every cached block back to the device.</summary>
    public void EmptyCache()
    {
        List<MemoryBuffer1D<byte, Stride1D.Dense>> blocks = [];
        lock (_cacheLock)
        {
            foreach (var stack in _free.Values)
            {
                blocks.AddRange(stack);
            }
            _free.Clear();
            _bytesCached = 0;
            _blocksCached = 0;
            _emptyCount++;
        }
        if (blocks.Count > 0)
        {
            _accelerator.Synchronize();
        }
        foreach (var b in blocks)
        {
            b.Dispose();
        }
    }

    protected override DeviceBuffer AllocateCore(long sizeInBytes)
    {
        long bucket = BucketBytes(sizeInBytes);
        lock (_cacheLock)
        {
            if (_free.TryGetValue(bucket, out var stack) && stack.Count > 0)
            {
                _hits++;
                _bytesCached -= bucket;
                _blocksCached--;
                return new CudaBuffer(this, stack.Pop(), sizeInBytes);
            }
        }
        MemoryBuffer1D<byte, Stride1D.Dense> block;
        try
        {
            block = _accelerator.Allocate1D<byte>(bucket);
        }
        catch (Exception e) when (IsDeviceOutOfMemory(e))
        {
            EmptyCache();
            try
            {
                block = _accelerator.Allocate1D<byte>(bucket);
            }
            catch (Exception again) when (IsDeviceOutOfMemory(again))
            {
                throw new OutOfMemoryException($"the device has no free block of {bucket} bytes after emptying the cache", again);
            }
        }
        lock (_cacheLock)
        {
            _deviceAllocations++;
        }
        return new CudaBuffer(this, block, sizeInBytes);
    }

    protected override void FreeCore(DeviceBuffer buffer)
    {
        var block = ((CudaBuffer)buffer).Block;
        lock (_cacheLock)
        {
            if (!_free.TryGetValue(block.Length, out var stack))
            {
                stack = new Stack<MemoryBuffer1D<byte, Stride1D.Dense>>();
                _free[block.Length] = stack;
            }
            stack.Push(block);
            _bytesCached += block.Length;
            _blocksCached++;
        }
    }

    private static bool IsDeviceOutOfMemory(Exception e) =>
        e is OutOfMemoryException
        || (e is ILGPU.Runtime.Cuda.CudaException ce && ce.Error == nameof(ILGPU.Runtime.Cuda.CudaError.CUDA_ERROR_OUT_OF_MEMORY))
        || e.InnerException is { } inner && IsDeviceOutOfMemory(inner);
}

/// <summary>A block of device memory (the request's bytes at the front of a cached block).</summary>
public sealed class CudaBuffer : DeviceBuffer
{
    private readonly CudaAllocator _allocator;

    internal CudaBuffer(CudaAllocator allocator, MemoryBuffer1D<byte, Stride1D.Dense> block, long sizeInBytes)
        : base(allocator.Device, sizeInBytes)
    {
        _allocator = allocator;
        Block = block;
    }

    /// <summary>The ILGPU block behind this buffer (at least <see cref="DeviceBuffer.SizeInBytes"/> long).</summary>
    internal MemoryBuffer1D<byte, Stride1D.Dense> Block { get; }

    /// <summary>The whole block as a byte view, for kernels.</summary>
    internal ArrayView<byte> Bytes => Block.View.AsContiguous();

    /// <summary>The device address of the first byte (a CUdeviceptr on CUDA).</summary>
    public IntPtr DevicePointer => Block.NativePtr;

    protected override void Release() => _allocator.Return(this);
}
