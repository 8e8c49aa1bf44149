using System.Runtime.Intrinsics.X86;

namespace Hal.Backends.Cpu;

/// <summary>The host processor as a Hal device. Synchronous: work is done when a call returns.</summary>
public sealed class CpuDevice : DeviceBase
{
    private readonly HostAllocator _allocator;
    private readonly CpuKernels _kernels;

    internal CpuDevice(DeviceId id, CpuBackendOptions options)
        : base(id, new DeviceCapabilities(DescribeProcessor(), MachineMemoryBytes(), MachineMemoryBytes(), CpuBackend.SupportedDTypes, IsAsync: false))
    {
        _allocator = new HostAllocator(this, MachineMemoryBytes(), options.DeviceMemoryBytes);
        _kernels = new CpuKernels(options.Threads ?? Environment.ProcessorCount, options.GemmMaxVectorBits);
    }

    /// <inheritdoc />
    public override IAllocator Allocator => _allocator;

    /// <inheritdoc />
    public override IStream DefaultStream { get; } = new SynchronousStream();

    /// <inheritdoc />
    public override IKernels Kernels => _kernels;

    /// <summary>A short description of the processor and its vector units.</summary>
    public static string DescribeProcessor()
    {
        string isa = Avx512F.IsSupported ? "AVX-512" : Fma.IsSupported && Avx2.IsSupported ? "AVX2+FMA" : System.Runtime.Intrinsics.Vector128.IsHardwareAccelerated ? "128-bit SIMD" : "scalar";
        return $"{Environment.ProcessorCount}-thread {System.Runtime.InteropServices.RuntimeInformation.ProcessArchitecture} CPU ({isa})";
    }

    /// <summary>Physical memory available to this process, in bytes.</summary>
    public static long MachineMemoryBytes() => GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;

    protected override unsafe void CopyFromHostCore(ReadOnlySpan<byte> src, DeviceBuffer dst, long dstOffsetBytes) =>
        src.CopyTo(new Span<byte>((byte*)((HostBuffer)dst).Pointer + dstOffsetBytes, src.Length));

    protected override unsafe void CopyToHostCore(DeviceBuffer src, long srcOffsetBytes, Span<byte> dst) =>
        new ReadOnlySpan<byte>((byte*)((HostBuffer)src).Pointer + srcOffsetBytes, dst.Length).CopyTo(dst);

    protected override unsafe void CopyDeviceToDeviceCore(DeviceBuffer src, long srcOffsetBytes, DeviceBuffer dst, long dstOffsetBytes, long sizeInBytes) =>
        System.Buffer.MemoryCopy((byte*)((HostBuffer)src).Pointer + srcOffsetBytes, (byte*)((HostBuffer)dst).Pointer + dstOffsetBytes, sizeInBytes, sizeInBytes);

    protected override void SynchronizeCore()
    {
    }

    protected override void DisposeCore() => _allocator.Dispose();
}
