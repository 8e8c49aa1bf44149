using Hal.Numerics;

namespace Hal.Collectives.Tests;

/// <summary>
/// A device whose buffers are managed arrays that hand out no host pointer, like device memory on an accelerator:
/// the in-process communicator must stage them through the copy contract. Only the copies are implemented.
/// </summary>
internal sealed class InProcessStagedDevice(int index) : IDevice
{
    public DeviceId Id { get; } = new("staged", index);

    public DeviceCapabilities Capabilities => new("staged", 1L << 30, 1L << 30, [DType.F32, DType.F64, DType.F16, DType.BF16, DType.I32, DType.I64], false);

    public IAllocator Allocator => throw new NotSupportedException("the staged test device allocates through Upload/Zeros");

    public IStream DefaultStream => throw new NotSupportedException("the staged test device has no streams");

    public IKernels Kernels => throw new NotSupportedException("the staged test device has no kernels");

    public bool IsDisposed { get; private set; }

    /// <summary>A new tensor holding <paramref name="values"/> converted to <paramref name="dtype"/>.</summary>
    public Tensor Upload(double[] values, DType dtype)
    {
        var buffer = new ArrayBuffer(this, values.Length * dtype.SizeInBytes());
        HostConvert.FromDoubles(values, dtype, buffer.Bytes);
        return new Tensor(buffer, 0, new Shape(values.Length), dtype, ownsBuffer: true);
    }

    public Tensor Zeros(long count, DType dtype) => Upload(new double[count], dtype);

    public static double[] Download(Tensor t)
    {
        var values = new double[t.ElementCount];
        HostConvert.ToDoubles(((ArrayBuffer)t.Buffer).Bytes.AsSpan((int)t.OffsetBytes, (int)t.SizeInBytes), t.DType, values);
        return values;
    }

    public void CopyFromHost(ReadOnlySpan<byte> src, DeviceBuffer dst, long dstOffsetBytes) =>
        src.CopyTo(((ArrayBuffer)dst).Bytes.AsSpan((int)dstOffsetBytes));

    public void CopyToHost(DeviceBuffer src, long srcOffsetBytes, Span<byte> dst) =>
        ((ArrayBuffer)src).Bytes.AsSpan((int)srcOffsetBytes, dst.Length).CopyTo(dst);

    public void CopyDeviceToDevice(DeviceBuffer src, long srcOffsetBytes, DeviceBuffer dst, long dstOffsetBytes, long sizeInBytes) =>
        ((ArrayBuffer)src).Bytes.AsSpan((int)srcOffsetBytes, (int)sizeInBytes).CopyTo(((ArrayBuffer)dst).Bytes.AsSpan((int)dstOffsetBytes));

    public void Synchronize()
    {
    }

    public void Dispose() => IsDisposed = true;

    private sealed class ArrayBuffer(IDevice device, long sizeInBytes) : DeviceBuffer(device, sizeInBytes)
    {
        public byte[] Bytes { get; } = new byte[sizeInBytes];

        protected override void Release()
        {
        }
    }
}
