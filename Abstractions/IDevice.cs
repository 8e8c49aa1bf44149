namespace Hal;

/// <summary>What a device can do.</summary>
/// <param name="Name">human-readable name, e.g. the CPU model or the OpenCL device name.</param>
/// <param name="MemoryBytes">memory the device can use, in bytes.</param>
/// <param name="MaxAllocationBytes">largest single allocation in bytes.</param>
/// <param name="DTypes">dtypes its kernels accept.</param>
/// <param name="IsAsync">true when work is queued and runs after the call returns.</param>
public sealed record DeviceCapabilities(string Name, long MemoryBytes, long MaxAllocationBytes, IReadOnlyList<DType> DTypes, bool IsAsync);

/// <summary>
/// One opened device. It owns what it created (buffers, streams, kernels); disposing it frees them all.
/// Copies between host memory and device buffers are the device's job; they are ordered on the default stream.
/// </summary>
public interface IDevice : IDisposable
{
    /// <summary>Identity, e.g. <c>cpu:0</c>.</summary>
    DeviceId Id { get; }

    /// <summary>Capabilities.</summary>
    DeviceCapabilities Capabilities { get; }

    /// <summary>The allocator for this device's memory.</summary>
    IAllocator Allocator { get; }

    /// <summary>The stream that kernels and copies are queued on.</summary>
    IStream DefaultStream { get; }

    /// <summary>The backend's kernels (tier 1, optionally tier 2 through <see cref="IFusedKernels"/>). Callers go through <see cref="Ops"/>, which validates.</summary>
    IKernels Kernels { get; }

    /// <summary>True after <see cref="IDisposable.Dispose"/>.</summary>
    bool IsDisposed { get; }

    /// <summary>Copies host bytes into <paramref name="dst"/> at <paramref name="dstOffsetBytes"/>.</summary>
    void CopyFromHost(ReadOnlySpan<byte> src, DeviceBuffer dst, long dstOffsetBytes);

    /// <summary>Copies bytes from <paramref name="src"/> at <paramref name="srcOffsetBytes"/> into host memory (waits for queued work).</summary>
    void CopyToHost(DeviceBuffer src, long srcOffsetBytes, Span<byte> dst);

    /// <summary>Copies <paramref name="sizeInBytes"/> bytes between two buffers of this device.</summary>
    void CopyDeviceToDevice(DeviceBuffer src, long srcOffsetBytes, DeviceBuffer dst, long dstOffsetBytes, long sizeInBytes);

    /// <summary>Blocks until all queued work on all of this device's streams has finished.</summary>
    void Synchronize();
}
