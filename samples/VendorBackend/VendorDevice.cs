using Hal;

namespace Hal.Samples.VendorBackend;

/// <summary>
/// The device: synchronous (work is done when a call returns), memory in managed byte arrays. <see cref="DeviceBase"/>
/// checks disposal, ownership and bounds before the hooks run, so the hooks only move bytes.
/// </summary>
public sealed class VendorDevice : DeviceBase
{
    /// <summary>The name the probe and the capabilities report.</summary>
    public const string DeviceName = "Hal sample vendor device (host memory, scalar loops)";

    private readonly VendorAllocator _allocator;

    internal VendorDevice(DeviceId id)
        : base(id, new DeviceCapabilities(DeviceName, VendorBackend.MemoryBytes, Array.MaxLength, VendorBackend.DTypes, IsAsync: false))
    {
        _allocator = new VendorAllocator(this, VendorBackend.MemoryBytes);
        Kernels = new VendorKernels();
    }

    /// <inheritdoc />
    public override IAllocator Allocator => _allocator;

    /// <inheritdoc />
    public override IStream DefaultStream { get; } = new SynchronousStream();

    /// <inheritdoc />
    public override IKernels Kernels { get; }

    protected override void CopyFromHostCore(ReadOnlySpan<byte> src, DeviceBuffer dst, long dstOffsetBytes) =>
        src.CopyTo(((VendorBuffer)dst).Bytes.AsSpan((int)dstOffsetBytes));

    protected override void CopyToHostCore(DeviceBuffer src, long srcOffsetBytes, Span<byte> dst) =>
        ((VendorBuffer)src).Bytes.AsSpan((int)srcOffsetBytes, dst.Length).CopyTo(dst);

    protected override void CopyDeviceToDeviceCore(DeviceBuffer src, long srcOffsetBytes, DeviceBuffer dst, long dstOffsetBytes, long sizeInBytes) =>
        // Span copies handle overlap (a copy within one buffer) like memmove.
        ((VendorBuffer)src).Bytes.AsSpan((int)srcOffsetBytes, (int)sizeInBytes).CopyTo(((VendorBuffer)dst).Bytes.AsSpan((int)dstOffsetBytes));

    protected override void SynchronizeCore()
    {
    }

    protected override void DisposeCore() => _allocator.Dispose();
}

/// <summary>
/// The allocator: <see cref="AllocatorBase"/> keeps the statistics, the byte limit and the live set (and raises the
/// typed out-of-memory error); the hooks make and drop arrays. One array holds at most <see cref="Array.MaxLength"/>
/// bytes, so a larger request is out of memory too.
/// </summary>
internal sealed class VendorAllocator(VendorDevice device, long capacityBytes) : AllocatorBase(device, capacityBytes, null)
{
    protected override DeviceBuffer AllocateCore(long sizeInBytes)
    {
        if (sizeInBytes > Array.MaxLength)
        {
            throw new OutOfMemoryException($"one vendor buffer holds at most {Array.MaxLength} bytes");
        }
        // Contents are unspecified by the contract; a fresh array happens to be zeroed.
        return new VendorBuffer(this, new byte[sizeInBytes]);
    }

    protected override void FreeCore(DeviceBuffer buffer)
    {
        // The array goes with the buffer object; nothing native to free.
    }
}

/// <summary>A buffer: a byte array on the vendor device.</summary>
internal sealed class VendorBuffer(VendorAllocator allocator, byte[] bytes) : DeviceBuffer(allocator.Device, bytes.LongLength)
{
    /// <summary>The bytes.</summary>
    public byte[] Bytes { get; } = bytes;

    protected override void Release() => allocator.Return(this);
}
