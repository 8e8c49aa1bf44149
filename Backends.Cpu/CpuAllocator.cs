using System.Runtime.InteropServices;

namespace Hal.Backends.Cpu;

/// <summary>Host memory, 64-byte aligned, through <see cref="NativeMemory"/>.</summary>
internal sealed class CpuAllocator(CpuDevice device, long capacityBytes, long? limitBytes) : AllocatorBase(device, capacityBytes, limitBytes)
{
    internal const int Alignment = 64;

    protected override unsafe DeviceBuffer AllocateCore(long sizeInBytes)
    {
        void* p = NativeMemory.AlignedAlloc((nuint)Math.Max(sizeInBytes, 1), Alignment);
        if (p == null)
        {
            throw new OutOfMemoryException($"NativeMemory.AlignedAlloc({sizeInBytes}) returned null");
        }
        return new CpuBuffer(this, (IntPtr)p, sizeInBytes);
    }

    protected override unsafe void FreeCore(DeviceBuffer buffer) => NativeMemory.AlignedFree((void*)((CpuBuffer)buffer).Pointer);
}

/// <summary>A block of host memory.</summary>
public sealed class CpuBuffer : DeviceBuffer
{
    private readonly CpuAllocator _allocator;

    internal CpuBuffer(CpuAllocator allocator, IntPtr pointer, long sizeInBytes)
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

    protected override void Release() => _allocator.Return(this);
}
