using Silk.NET.OpenCL;

namespace Hal.Backends.OpenCL;

/// <summary>
/// One OpenCL device: one context and one in-order command queue. Kernels and device-to-device copies are queued
/// and run after the call returns; host-to-device copies return once the host bytes were read; reads wait for
/// the queued work they depend on.
/// </summary>
public sealed unsafe class OpenClDevice : DeviceBase
{
    private readonly OpenClAllocator _allocator;
    private readonly OpenClKernels _kernels;
    private readonly OpenClStream _stream;

    internal OpenClDevice(CL api, DeviceId id, OpenClDeviceInfo info, OpenClBackendOptions options)
        : base(id, new DeviceCapabilities($"{info.Name} ({info.PlatformName})", info.GlobalMemoryBytes, info.MaxAllocationBytes, OpenClBackend.SupportedDTypes(info), IsAsync: true))
    {
        Api = api;
        Info = info;
        int status;
        nint device = info.Device;
        Context = api.CreateContext(null, 1, &device, null, null, &status);
        OpenClException.Check(status, $"creating a context on {id} ({info.Name})");
        Queue = api.CreateCommandQueue(Context, device, CommandQueueProperties.None, &status);
        if (status != 0)
        {
            api.ReleaseContext(Context);
            throw new OpenClException(status, $"creating the command queue of {id}");
        }
        _stream = new OpenClStream(this);
        _allocator = new OpenClAllocator(this, info.GlobalMemoryBytes, options.DeviceMemoryBytes, options.CacheBytes);
        Programs = new OpenClProgramCache(this);
        _kernels = new OpenClKernels(this, options.GemmTiling);
    }

    internal CL Api { get; }

    internal OpenClDeviceInfo Info { get; }

    internal nint Context { get; }

    internal nint Queue { get; }

    internal OpenClProgramCache Programs { get; }

    /// <inheritdoc />
    public override IAllocator Allocator => _allocator;

    /// <inheritdoc />
    public override IStream DefaultStream => _stream;

    /// <inheritdoc />
    public override IKernels Kernels => _kernels;

    /// <summary>The allocator's cache of freed blocks: blocks held, and bytes held.</summary>
    internal (int Blocks, long Bytes) CachedBlocks => _allocator.Cached;

    protected override void CopyFromHostCore(ReadOnlySpan<byte> src, DeviceBuffer dst, long dstOffsetBytes)
    {
        fixed (byte* p = src)
        {
            // Blocking: the span is only valid during this call, so the bytes must be read before returning.
            OpenClException.Check(
                Api.EnqueueWriteBuffer(Queue, ((OpenClBuffer)dst).Memory, true, (nuint)dstOffsetBytes, (nuint)src.Length, p, 0, null, null),
                $"copying {src.Length} bytes from the host to {Id}");
        }
    }

    protected override void CopyToHostCore(DeviceBuffer src, long srcOffsetBytes, Span<byte> dst)
    {
        fixed (byte* p = dst)
        {
            OpenClException.Check(
                Api.EnqueueReadBuffer(Queue, ((OpenClBuffer)src).Memory, true, (nuint)srcOffsetBytes, (nuint)dst.Length, p, 0, null, null),
                $"copying {dst.Length} bytes from {Id} to the host");
        }
    }

    protected override void CopyDeviceToDeviceCore(DeviceBuffer src, long srcOffsetBytes, DeviceBuffer dst, long dstOffsetBytes, long sizeInBytes) =>
        CopyBytes(((OpenClBuffer)src).Memory, srcOffsetBytes, ((OpenClBuffer)dst).Memory, dstOffsetBytes, sizeInBytes);

    /// <summary>Queues a copy between two memory objects (overlapping ranges of one object go through a temporary).</summary>
    internal void CopyBytes(nint src, long srcOffset, nint dst, long dstOffset, long size)
    {
        if (src == dst && srcOffset == dstOffset)
        {
            return;
        }
        if (src == dst && srcOffset < dstOffset + size && dstOffset < srcOffset + size)
        {
            // clEnqueueCopyBuffer rejects overlapping ranges of one buffer (CL_MEM_COPY_OVERLAP).
            using var tmp = _allocator.Allocate(size);
            var t = ((OpenClBuffer)tmp).Memory;
            CopyBytes(src, srcOffset, t, 0, size);
            CopyBytes(t, 0, dst, dstOffset, size);
            return;
        }
        OpenClException.Check(
            Api.EnqueueCopyBuffer(Queue, src, dst, (nuint)srcOffset, (nuint)dstOffset, (nuint)size, 0, null, null),
            $"copying {size} bytes on {Id}");
    }

    protected override void SynchronizeCore() => _stream.Synchronize();

    protected override void DisposeCore()
    {
        try
        {
            Api.Finish(Queue);
        }
        finally
        {
            _allocator.Dispose();
            _allocator.Trim();
            Programs.Dispose();
            Api.ReleaseCommandQueue(Queue);
            Api.ReleaseContext(Context);
        }
    }
}

/// <summary>The device's in-order queue as a Hal stream; events are OpenCL marker events.</summary>
internal sealed unsafe class OpenClStream(OpenClDevice device) : IStream
{
    /// <inheritdoc />
    public void Synchronize() => OpenClException.Check(device.Api.Finish(device.Queue), $"waiting for the queue of {device.Id}");

    /// <inheritdoc />
    public IEvent RecordEvent()
    {
        nint evt;
        OpenClException.Check(device.Api.EnqueueMarkerWithWaitList(device.Queue, 0, null, &evt), $"recording an event on {device.Id}");
        // Flush so that the marker (and the work before it) reaches the device and the event can complete.
        OpenClException.Check(device.Api.Flush(device.Queue), $"flushing the queue of {device.Id}");
        return new OpenClEvent(device, evt);
    }

    /// <inheritdoc />
    public void Wait(IEvent evt)
    {
        ArgumentNullException.ThrowIfNull(evt);
        if (evt is not OpenClEvent e)
        {
            // Events of synchronous streams are complete when they exist.
            evt.Synchronize();
            return;
        }
        nint handle = e.Handle;
        OpenClException.Check(device.Api.EnqueueBarrierWithWaitList(device.Queue, 1, &handle, null), $"making the queue of {device.Id} wait for an event");
    }
}

/// <summary>An OpenCL event after a marker.</summary>
internal sealed unsafe class OpenClEvent(OpenClDevice device, nint handle) : IEvent
{
    private int _disposed;

    internal nint Handle { get; } = handle;

    /// <inheritdoc />
    public bool IsCompleted
    {
        get
        {
            ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
            int status;
            OpenClException.Check(device.Api.GetEventInfo(Handle, EventInfo.CommandExecutionStatus, sizeof(int), &status, null), "reading an event's status");
            if (status < 0)
            {
                throw new OpenClException(status, $"running the work before an event on {device.Id}");
            }
            return status == 0; // CL_COMPLETE
        }
    }

    /// <inheritdoc />
    public void Synchronize()
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        nint h = Handle;
        OpenClException.Check(device.Api.WaitForEvents(1, &h), $"waiting for an event on {device.Id}");
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            device.Api.ReleaseEvent(Handle);
        }
    }
}
