using Hal.Backends.Cpu;

namespace Hal.Backends.Npu;

/// <summary>
/// One ONNX Runtime execution provider as a Hal device. Synchronous: a kernel's session run has finished when the
/// call returns. Buffers are 64-byte aligned host memory that kernels wrap as ONNX Runtime tensors without copies;
/// providers with their own memory (CUDA) receive them as host inputs and outputs, which the runtime copies.
/// </summary>
public sealed class NpuDevice : DeviceBase
{
    private readonly HostAllocator _allocator;
    private readonly NpuKernels _kernels;

    internal NpuDevice(DeviceId id, ProviderStatus provider, NpuBackendOptions options)
        : base(id, new DeviceCapabilities(Describe(provider), MemoryBytes(), MemoryBytes(), SupportedDTypes(provider.Name), IsAsync: false))
    {
        Provider = provider.Name;
        _allocator = new HostAllocator(this, MemoryBytes(), options.DeviceMemoryBytes);
        _kernels = new NpuKernels(this, provider.Name);
    }

    /// <summary>The execution provider's short name (<c>cpu</c>, <c>cuda</c>, …).</summary>
    public string Provider { get; }

    /// <summary>Session-cache statistics of this device's kernels.</summary>
    public NpuSessionCacheStats SessionCacheStats => _kernels.Cache.Stats;

    /// <inheritdoc />
    public override IAllocator Allocator => _allocator;

    /// <inheritdoc />
    public override IStream DefaultStream { get; } = new SynchronousStream();

    /// <inheritdoc />
    public override IKernels Kernels => _kernels;

    /// <summary>Every dtype: kernels that a provider has no ONNX kernel for run through the host fallback.</summary>
    internal static IReadOnlyList<DType> SupportedDTypes(string provider) => [.. DTypeInfo.All];

    internal static string Describe(ProviderStatus provider) =>
        $"({provider.Name}) ONNX Runtime {provider.OrtName}" + (provider.Name == "cpu" ? $" on {CpuDevice.DescribeProcessor()}" : "");

    internal static long MemoryBytes() => CpuDevice.MachineMemoryBytes();

    protected override unsafe void CopyFromHostCore(ReadOnlySpan<byte> src, DeviceBuffer dst, long dstOffsetBytes) =>
        src.CopyTo(new Span<byte>((byte*)((HostBuffer)dst).Pointer + dstOffsetBytes, src.Length));

    protected override unsafe void CopyToHostCore(DeviceBuffer src, long srcOffsetBytes, Span<byte> dst) =>
        new ReadOnlySpan<byte>((byte*)((HostBuffer)src).Pointer + srcOffsetBytes, dst.Length).CopyTo(dst);

    protected override unsafe void CopyDeviceToDeviceCore(DeviceBuffer src, long srcOffsetBytes, DeviceBuffer dst, long dstOffsetBytes, long sizeInBytes) =>
        System.Buffer.MemoryCopy((byte*)((HostBuffer)src).Pointer + srcOffsetBytes, (byte*)((HostBuffer)dst).Pointer + dstOffsetBytes, sizeInBytes, sizeInBytes);

    protected override void SynchronizeCore()
    {
    }

    protected override void DisposeCore()
    {
        _kernels.Dispose();
        _allocator.Dispose();
    }
}
