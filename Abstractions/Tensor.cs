namespace Hal;

/// <summary>
/// A view: a buffer, a byte offset into it, a shape and a dtype; contiguous row-major.
/// A tensor made by <see cref="IDevice"/> allocation owns its buffer and disposing it frees the buffer;
/// views made by <see cref="Reshape"/> or <see cref="View"/> never own.
/// </summary>
public sealed class Tensor : IDisposable
{
    /// <summary>Creates a view over <paramref name="buffer"/>.</summary>
    /// <exception cref="ArgumentException">the view does not fit in the buffer or the offset is misaligned.</exception>
    public Tensor(DeviceBuffer buffer, long offsetBytes, Shape shape, DType dtype, bool ownsBuffer = false)
    {
        ArgumentNullException.ThrowIfNull(buffer);
        ArgumentNullException.ThrowIfNull(shape);
        long bytes = shape.ElementCount * dtype.SizeInBytes();
        if (offsetBytes < 0 || offsetBytes + bytes > buffer.SizeInBytes)
        {
            throw new ArgumentException(
                $"a {dtype.Name()} tensor of shape {shape} ({bytes} bytes) at offset {offsetBytes} does not fit in a {buffer.SizeInBytes}-byte buffer");
        }
        if (offsetBytes % dtype.SizeInBytes() != 0)
        {
            throw new ArgumentException($"offset {offsetBytes} is not a multiple of the {dtype.Name()} element size {dtype.SizeInBytes()}");
        }
        Buffer = buffer;
        OffsetBytes = offsetBytes;
        Shape = shape;
        DType = dtype;
        OwnsBuffer = ownsBuffer;
    }

    public DeviceBuffer Buffer { get; }

    public long OffsetBytes { get; }

    public Shape Shape { get; }

    public DType DType { get; }

    /// <summary>True when disposing this tensor frees its buffer.</summary>
    public bool OwnsBuffer { get; }

    public IDevice Device => Buffer.Device;

    public long ElementCount => Shape.ElementCount;

    public long SizeInBytes => Shape.ElementCount * DType.SizeInBytes();

    public int Rank => Shape.Rank;

    /// <summary>Offset in elements of this view's first element inside its buffer.</summary>
    public long OffsetElements => OffsetBytes / DType.SizeInBytes();

    /// <summary>A view of the same elements with another shape of equal element count.</summary>
    /// <exception cref="ShapeMismatchException">the element counts differ.</exception>
    public Tensor Reshape(params int[] dims)
    {
        var s = new Shape(dims);
        if (s.ElementCount != ElementCount)
        {
            throw new ShapeMismatchException("reshape", Shape, s, "element counts differ");
        }
        return new Tensor(Buffer, OffsetBytes, s, DType);
    }

    /// <summary>A view of <paramref name="shape"/> starting <paramref name="elementOffset"/> elements into this tensor.</summary>
    public Tensor View(long elementOffset, Shape shape)
    {
        if (elementOffset < 0 || elementOffset + shape.ElementCount > ElementCount)
        {
            throw new ArgumentOutOfRangeException(nameof(elementOffset),
                $"view of {shape} at element {elementOffset} does not fit in tensor {Shape}");
        }
        return new Tensor(Buffer, OffsetBytes + (elementOffset * DType.SizeInBytes()), shape, DType);
    }

    /// <summary>Rows [start, start+count) along the first axis, as a view.</summary>
    public Tensor Slice(int start, int count)
    {
        if (Rank == 0 || start < 0 || count < 0 || start + count > Shape[0])
        {
            throw new ArgumentOutOfRangeException(nameof(start), $"slice [{start}, {start + count}) is outside the first axis of {Shape}");
        }
        long row = Shape.Product(1, Rank);
        return View(start * row, Shape.With(0, count));
    }

    /// <summary>Frees the buffer when this tensor owns it.</summary>
    public void Dispose()
    {
        if (OwnsBuffer)
        {
            Buffer.Dispose();
        }
    }

    public override string ToString() => $"Tensor({DType.Name()}{Shape} on {Device.Id})";
}
