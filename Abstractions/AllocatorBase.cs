namespace Hal;

/// <summary>
/// Validate-then-hook base for allocators: checks sizes and the byte limit, keeps statistics and the set of live
/// buffers (so disposing the device frees them), and calls <see cref="AllocateCore"/> / <see cref="FreeCore"/>.
/// A backend's <see cref="DeviceBuffer"/> calls <see cref="Return"/> from its <c>Release</c>.
/// </summary>
public abstract class AllocatorBase : IAllocator, IDisposable
{
    private readonly Lock _lock = new();
    private readonly HashSet<DeviceBuffer> _live = [];
    private long _inUse;
    private long _reserved;
    private long _peak;
    private long _count;
    private bool _disposed;

    /// <param name="device">the owning device (its id is used in errors).</param>
    /// <param name="capacityBytes">the device's own memory size: allocations beyond it fail even without a limit.</param>
    /// <param name="limitBytes">an optional lower byte limit.</param>
    protected AllocatorBase(IDevice device, long capacityBytes, long? limitBytes)
    {
        Device = device;
        CapacityBytes = capacityBytes;
        LimitBytes = limitBytes;
    }

    /// <summary>The owning device.</summary>
    public IDevice Device { get; }

    /// <summary>The device's own memory size in bytes.</summary>
    public long CapacityBytes { get; }

    /// <inheritdoc />
    public long? LimitBytes { get; set; }

    /// <inheritdoc />
    public AllocatorStats Stats
    {
        get
        {
            lock (_lock)
            {
                return new AllocatorStats(_inUse, _reserved, _peak, _count, LimitBytes);
            }
        }
    }

    /// <inheritdoc />
    public DeviceBuffer Allocate(long sizeInBytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(sizeInBytes);
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            long limit = Math.Min(CapacityBytes, LimitBytes ?? long.MaxValue);
            if (sizeInBytes > limit - _inUse)
            {
                throw new OutOfDeviceMemoryException(Device.Id, sizeInBytes, _inUse, limit);
            }
            DeviceBuffer buffer;
            try
            {
                buffer = AllocateCore(sizeInBytes);
            }
            catch (OutOfMemoryException e)
            {
                throw new OutOfDeviceMemoryException(Device.Id, sizeInBytes, _inUse, limit, e);
            }
            _live.Add(buffer);
            _inUse += sizeInBytes;
            _reserved += sizeInBytes;
            _peak = Math.Max(_peak, _inUse);
            _count++;
            return buffer;
        }
    }

    /// <summary>Called by a buffer's release: frees it and updates the statistics. Unknown or already returned buffers are ignored.</summary>
    public void Return(DeviceBuffer buffer)
    {
        ArgumentNullException.ThrowIfNull(buffer);
        lock (_lock)
        {
            if (!_live.Remove(buffer))
            {
                return;
            }
            _inUse -= buffer.SizeInBytes;
            _reserved -= buffer.SizeInBytes;
            FreeCore(buffer);
        }
    }

    /// <inheritdoc />
    public void ResetPeak()
    {
        lock (_lock)
        {
            _peak = _inUse;
        }
    }

    /// <summary>Frees every live buffer; later allocations raise <see cref="ObjectDisposedException"/>.</summary>
    public void Dispose()
    {
        DeviceBuffer[] live;
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }
            live = [.. _live];
        }
        foreach (var b in live)
        {
            b.Dispose();
        }
        lock (_lock)
        {
            _disposed = true;
        }
        GC.SuppressFinalize(this);
    }

    /// <summary>Backend hook: take <paramref name="sizeInBytes"/> bytes from the device (64-byte aligned). May throw <see cref="OutOfMemoryException"/>.</summary>
    protected abstract DeviceBuffer AllocateCore(long sizeInBytes);

    /// <summary>Backend hook: give the bytes of <paramref name="buffer"/> back to the device. Called once per buffer.</summary>
    protected abstract void FreeCore(DeviceBuffer buffer);
}
