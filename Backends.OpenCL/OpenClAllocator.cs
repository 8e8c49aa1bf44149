using Silk.NET.OpenCL;

namespace Hal.Backends.OpenCL;

/// <summary>
/// Device memory through clCreateBuffer with a size-bucketed cache: a freed block goes back to its bucket and the
/// next allocation of that bucket reuses it (all work is ordered on the device's one in-order queue, so a reused
/// block is never touched by earlier work after later work). When clCreateBuffer fails, the cache is emptied and
/// the allocation tried once more; a second failure becomes <see cref="OutOfDeviceMemoryException"/>.
/// </summary>
internal sealed unsafe class OpenClAllocator(OpenClDevice device, long capacityBytes, long? limitBytes, long cacheBytes)
    : AllocatorBase(device, capacityBytes, limitBytes)
{
    /// <summary>Smallest block: also what a zero-byte allocation takes (OpenCL has no empty buffers).</summary>
    internal const long MinBlockBytes = 256;

    private readonly Lock _cacheLock = new();
    private readonly Dictionary<long, Stack<nint>> _cache = [];
    private long _cachedBytes;
    private int _cachedBlocks;

    internal (int Blocks, long Bytes) Cached
    {
        get
        {
            lock (_cacheLock)
            {
                return (_cachedBlocks, _cachedBytes);
            }
        }
    }

    /// <summary>
    /// The bucket of a request: powers of two up to 1 MiB, then multiples of a quarter of the enclosing power of
    /// two, so at most 25% of a large block is slack.
    /// </summary>
    internal static long BucketBytes(long size)
    {
        if (size <= MinBlockBytes)
        {
            return MinBlockBytes;
        }
        long pow = 1L << (int)(64 - long.LeadingZeroCount(size - 1));
        if (pow <= 1L << 20)
        {
            return pow;
        }
        long quarter = pow / 8;
        return (size + quarter - 1) / quarter * quarter;
    }

    protected override DeviceBuffer AllocateCore(long sizeInBytes)
    {
        long bucket = BucketBytes(sizeInBytes);
        lock (_cacheLock)
        {
            if (_cache.TryGetValue(bucket, out var stack) && stack.Count > 0)
            {
                _cachedBytes -= bucket;
                _cachedBlocks--;
                return new OpenClBuffer(this, stack.Pop(), sizeInBytes, bucket);
            }
        }
        int status;
        nint mem = device.Api.CreateBuffer(device.Context, MemFlags.ReadWrite, (nuint)bucket, null, &status);
        if (status != 0 && OpenClException.IsOutOfMemory(status))
        {
            Trim();
            mem = device.Api.CreateBuffer(device.Context, MemFlags.ReadWrite, (nuint)bucket, null, &status);
        }
        if (status != 0)
        {
            var error = new OpenClException(status, $"allocating {bucket} bytes on {device.Id}");
            if (OpenClException.IsOutOfMemory(status))
            {
                throw new OutOfMemoryException(error.Message, error);
            }
            throw error;
        }
        return new OpenClBuffer(this, mem, sizeInBytes, bucket);
    }

    protected override void FreeCore(DeviceBuffer buffer)
    {
        var b = (OpenClBuffer)buffer;
        lock (_cacheLock)
        {
            if (_cachedBytes + b.BlockBytes <= cacheBytes && !device.IsDisposed)
            {
                if (!_cache.TryGetValue(b.BlockBytes, out var stack))
                {
                    _cache[b.BlockBytes] = stack = new Stack<nint>();
                }
                stack.Push(b.Memory);
                _cachedBytes += b.BlockBytes;
                _cachedBlocks++;
                return;
            }
        }
        // clReleaseMemObject defers the free until queued commands that use the buffer have finished.
        device.Api.ReleaseMemObject(b.Memory);
    }

    /// <summary>Releases every cached block.</summary>
    internal void Trim()
    {
        lock (_cacheLock)
        {
            foreach (var stack in _cache.Values)
            {
                while (stack.Count > 0)
                {
                    device.Api.ReleaseMemObject(stack.Pop());
                }
            }
            _cache.Clear();
            _cachedBytes = 0;
            _cachedBlocks = 0;
        }
    }
}

/// <summary>An OpenCL memory object (a cached block at least as large as the request).</summary>
public sealed class OpenClBuffer : DeviceBuffer
{
    private readonly OpenClAllocator _allocator;

    internal OpenClBuffer(OpenClAllocator allocator, nint memory, long sizeInBytes, long blockBytes)
        : base(allocator.Device, sizeInBytes)
    {
        _allocator = allocator;
        Memory = memory;
        BlockBytes = blockBytes;
    }

    /// <summary>The cl_mem handle.</summary>
    internal nint Memory { get; }

    /// <summary>The size of the block behind this buffer (its bucket).</summary>
    internal long BlockBytes { get; }

    protected override void Release() => _allocator.Return(this);
}
