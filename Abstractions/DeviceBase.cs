namespace Hal;

/// <summary>
/// Validate-then-hook base for devices: checks disposal, buffer ownership and bounds once, then calls the
/// <c>…Core</c> hooks. Disposing the device disposes its kernels, streams and allocator (and so every live buffer).
/// </summary>
public abstract class DeviceBase : IDevice
{
    private int _disposed;

    protected DeviceBase(DeviceId id, DeviceCapabilities capabilities)
    {
        Id = id;
        Capabilities = capabilities;
    }

    /// <inheritdoc />
    public DeviceId Id { get; }

    /// <inheritdoc />
    public DeviceCapabilities Capabilities { get; }

    /// <inheritdoc />
    public abstract IAllocator Allocator { get; }

    /// <inheritdoc />
    public abstract IStream DefaultStream { get; }

    /// <inheritdoc />
    public abstract IKernels Kernels { get; }

    /// <inheritdoc />
    public bool IsDisposed => Volatile.Read(ref _disposed) != 0;

    /// <inheritdoc />
    public void CopyFromHost(ReadOnlySpan<byte> src, DeviceBuffer dst, long dstOffsetBytes)
    {
        CheckBuffer(dst, dstOffsetBytes, src.Length, "copy from host");
        if (src.Length > 0)
        {
            CopyFromHostCore(src, dst, dstOffsetBytes);
        }
    }

    /// <inheritdoc />
    public void CopyToHost(DeviceBuffer src, long srcOffsetBytes, Span<byte> dst)
    {
        CheckBuffer(src, srcOffsetBytes, dst.Length, "copy to host");
        if (dst.Length > 0)
        {
            CopyToHostCore(src, srcOffsetBytes, dst);
        }
    }

    /// <inheritdoc />
    public void CopyDeviceToDevice(DeviceBuffer src, long srcOffsetBytes, DeviceBuffer dst, long dstOffsetBytes, long sizeInBytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(sizeInBytes);
        CheckBuffer(src, srcOffsetBytes, sizeInBytes, "device copy (source)");
        CheckBuffer(dst, dstOffsetBytes, sizeInBytes, "device copy (destination)");
        if (sizeInBytes > 0)
        {
            CopyDeviceToDeviceCore(src, srcOffsetBytes, dst, dstOffsetBytes, sizeInBytes);
        }
    }

    /// <inheritdoc />
    public void Synchronize()
    {
        ThrowIfDisposed();
        SynchronizeCore();
    }

    /// <summary>Raises <see cref="ObjectDisposedException"/> when the device was disposed.</summary>
    protected void ThrowIfDisposed()
    {
        if (IsDisposed)
        {
            throw new ObjectDisposedException(Id.ToString(), $"device {Id} was used after it was disposed");
        }
    }

    /// <summary>Frees everything the device created (idempotent).</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            DisposeCore();
        }
        GC.SuppressFinalize(this);
    }

    protected abstract void CopyFromHostCore(ReadOnlySpan<byte> src, DeviceBuffer dst, long dstOffsetBytes);

    protected abstract void CopyToHostCore(DeviceBuffer src, long srcOffsetBytes, Span<byte> dst);

    protected abstract void CopyDeviceToDeviceCore(DeviceBuffer src, long srcOffsetBytes, DeviceBuffer dst, long dstOffsetBytes, long sizeInBytes);

    protected abstract void SynchronizeCore();

    /// <summary>Backend hook: free kernels, streams and the allocator (which frees live buffers).</summary>
    protected abstract void DisposeCore();

    private void CheckBuffer(DeviceBuffer buffer, long offset, long length, string what)
    {
        ThrowIfDisposed();
        ArgumentNullException.ThrowIfNull(buffer);
        buffer.ThrowIfDisposed();
        if (!ReferenceEquals(buffer.Device, this))
        {
            throw new DeviceMismatchException(what, Id, buffer.Device.Id);
        }
        if (offset < 0 || length < 0 || offset > buffer.SizeInBytes - length)
        {
            throw new ArgumentOutOfRangeException(nameof(offset),
                $"{what}: range [{offset}, {offset + length}) is outside the {buffer.SizeInBytes}-byte buffer on {Id}");
        }
    }
}

/// <summary>The stream and event of a synchronous device: work is complete when the call that queued it returns.</summary>
public sealed class SynchronousStream : IStream
{
    /// <inheritdoc />
    public void Synchronize()
    {
    }

    /// <inheritdoc />
    public IEvent RecordEvent() => CompletedEvent.Instance;

    /// <inheritdoc />
    public void Wait(IEvent evt) => ArgumentNullException.ThrowIfNull(evt);

    private sealed class CompletedEvent : IEvent
    {
        public static readonly CompletedEvent Instance = new();

        public bool IsCompleted => true;

        public void Synchronize()
        {
        }

        public void Dispose()
        {
        }
    }
}
