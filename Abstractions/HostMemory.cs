using System.Runtime.InteropServices;

namespace Hal;

/// <summary>
/// An allocator of host memory, 64-byte aligned, through <see cref="NativeMemory"/>: the device memory of every
/// backend whose device computes in the host's memory (the CPU backend, ONNX Runtime's CPU provider, a vendor
/// backend over host arrays). Statistics, the limit and the typed out-of-memory error come from <see cref="AllocatorBase"/>.
/// </summary>
public sealed class HostAllocator(IDevice device, long capacityBytes, long? limitBytes) : AllocatorBase(device, capacityBytes, limitBytes)
{
    /// <summary>Alignment of every block, in bytes (a cache line; what 512-bit vector loads and ONNX Runtime prefer).</summary>
    public const int Alignment = 64;

    /// <inheritdoc />
    protected override unsafe DeviceBuffer AllocateCore(long sizeInBytes)
    {
        void* p = NativeMemory.AlignedAlloc((nuint)Math.Max(sizeInBytes, 1), Alignment);
        if (p == null)
        {
            throw new OutOfMemoryException($"NativeMemory.AlignedAlloc({sizeInBytes}) returned null");
        }
        return new HostBuffer(this, (IntPtr)p, sizeInBytes);
    }

    /// <inheritdoc />
    protected override unsafe void FreeCore(DeviceBuffer buffer) => NativeMemory.AlignedFree((void*)((HostBuffer)buffer).Pointer);
}

/// <summary>A block of host memory from a <see cref="HostAllocator"/>.</summary>
public sealed class HostBuffer : DeviceBuffer
{
    private readonly HostAllocator _allocator;

    internal HostBuffer(HostAllocator allocator, IntPtr pointer, long sizeInBytes)
        : base(allocator.Device, sizeInBytes)
    {
        _allocator = allocator;
        Pointer = pointer;
    }

    /// <summary>Address of the first byte.</summary>
    public IntPtr Pointer { get; }

    /// <inheritdoc />
    public override bool TryGetHostPointer(out IntPtr pointer)
    {
        ThrowIfDisposed();
        pointer = Pointer;
        return true;
    }

    /// <inheritdoc />
    protected override void Release() => _allocator.Return(this);
}
