namespace Hal.Memory;

/// <summary>
/// Bytes handed out by a <see cref="CachingAllocator"/>: a range of one segment (a device buffer the allocator owns).
/// The caller reads and writes <see cref="SizeInBytes"/> bytes at <see cref="OffsetBytes"/> of <see cref="Segment"/>;
/// the rest of the segment belongs to other blocks. Freeing it (<see cref="CachingAllocator.Free"/> or
/// <see cref="Dispose"/>) gives the range back to the cache, not to the device.
/// </summary>
public sealed class CachedBlock : IDisposable
{
    private readonly CachingAllocator _owner;

    internal CachedBlock(CachingAllocator owner, DeviceBuffer segment, long offsetBytes, long sizeInBytes, long blockBytes)
    {
        _owner = owner;
        Segment = segment;
        OffsetBytes = offsetBytes;
        SizeInBytes = sizeInBytes;
        BlockBytes = blockBytes;
    }

    /// <summary>The device buffer the block lies in (shared with other blocks).</summary>
    public DeviceBuffer Segment { get; }

    /// <summary>Start of the block inside <see cref="Segment"/>, a multiple of the allocator's block rounding (at least 64).</summary>
    public long OffsetBytes { get; }

    /// <summary>The bytes asked for.</summary>
    public long SizeInBytes { get; }

    /// <summary>The bytes reserved for the block (the request rounded up, or a whole cached block that was not split).</summary>
    public long BlockBytes { get; }

    /// <summary>True after the block was freed.</summary>
    public bool IsFreed { get; internal set; }

    /// <summary>The allocator that handed the block out.</summary>
    public CachingAllocator Owner => _owner;

    /// <summary>A tensor view over the start of the block; it does not own the block.</summary>
    /// <exception cref="ObjectDisposedException">the block was freed.</exception>
    /// <exception cref="ArgumentException">the tensor's bytes exceed <see cref="SizeInBytes"/>.</exception>
    public Tensor AsTensor(Shape shape, DType dtype)
    {
        ArgumentNullException.ThrowIfNull(shape);
        ObjectDisposedException.ThrowIf(IsFreed, this);
        long bytes = shape.ElementCount * dtype.SizeInBytes();
        if (bytes > SizeInBytes)
        {
            throw new ArgumentException($"a {dtype.Name()} tensor of shape {shape} ({bytes} bytes) does not fit in a {SizeInBytes}-byte cached block");
        }
        return new Tensor(Segment, OffsetBytes, shape, dtype);
    }

    /// <summary>Frees the block if it is not freed yet (idempotent, unlike <see cref="CachingAllocator.Free"/>).</summary>
    public void Dispose() => _owner.FreeIfLive(this);

    /// <inheritdoc />
    public override string ToString() => $"CachedBlock({SizeInBytes} bytes at {OffsetBytes} of a {Segment.SizeInBytes}-byte segment on {Segment.Device.Id})";
}
