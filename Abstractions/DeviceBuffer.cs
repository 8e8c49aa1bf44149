namespace Hal;

/// <summary>
/// Bytes on one device. Created by an <see cref="IAllocator"/>; disposing returns the bytes to it.
/// A disposed buffer raises <see cref="ObjectDisposedException"/> when used.
/// </summary>
public abstract class DeviceBuffer : IDisposable
{
    private int _disposed;

    protected DeviceBuffer(IDevice device, long sizeInBytes)
    {
        Device = device;
        SizeInBytes = sizeInBytes;
    }

    /// <summary>The device that owns the bytes.</summary>
    public IDevice Device { get; }

    /// <summary>Size in bytes.</summary>
    public long SizeInBytes { get; }

    /// <summary>True after <see cref="Dispose()"/>.</summary>
    public bool IsDisposed => Volatile.Read(ref _disposed) != 0;

    /// <summary>Raises <see cref="ObjectDisposedException"/> if disposed.</summary>
    public void ThrowIfDisposed()
    {
        if (IsDisposed)
        {
            throw new ObjectDisposedException(GetType().Name, $"a {SizeInBytes}-byte buffer on {Device.Id} was used after it was disposed");
        }
    }

    /// <summary>
    /// When the bytes live in host memory that the host may read and write directly (a CPU device, unified memory),
    /// their address, so that transports such as MPI can skip staging copies. The default is no.
    /// </summary>
    public virtual bool TryGetHostPointer(out IntPtr pointer)
    {
        pointer = IntPtr.Zero;
        return false;
    }

    /// <summary>Frees the bytes (idempotent).</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            Release();
        }
        GC.SuppressFinalize(this);
    }

    /// <summary>Backend hook: return the bytes to the allocator. Called once.</summary>
    protected abstract void Release();
}
