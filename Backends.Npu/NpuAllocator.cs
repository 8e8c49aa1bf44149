using System.Runtime.InteropServices;

namespace Hal.Backends.Npu;

/// <summary>Host memory, 64-byte aligned (what ONNX Runtime's CPU kernels prefer), through <see cref="NativeMemory"/>.</summary>
internal sealed class NpuAllocator(NpuDevice device, long capacityBytes, long? limitBytes) : AllocatorBase(device, capacityBytes, limitBytes)
{
    internal const int Alignment = 64;

    protected override unsafe DeviceBuffer AllocateCore(long sizeInBytes)
    {
        void* p = NativeMemory.AlignedAlloc((nuint)Math.Max(sizeInBytes, 1), Alignment);
        if (p == null)
        {
            throw new OutOfMemoryException($"NativeMemory.AlignedAlloc({sizeInBytes}) returned null");
        }
        return new NpuBuffer(this, (IntPtr)p, sizeInBytes);
    }

    protected override unsafe void FreeCore(DeviceBuffer buffer) => NativeMemory.AlignedFree((void*)((NpuBuffer)buffer).Pointer);
}

/// <summary>A block of the device's memory, wrapped as ONNX Runtime tensors by the kernels.</summary>
public sealed class NpuBuffer : DeviceBuffer
{
    private readonly NpuAllocator _allocator;

    internal NpuBuffer(NpuAllocator allocator, IntPtr pointer, long sizeInBytes)
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
