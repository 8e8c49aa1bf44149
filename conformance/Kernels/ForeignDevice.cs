namespace Hal.Conformance.Kernels;

/// <summary>
/// A minimal device over host memory whose only use is to own tensors that live on ANOTHER device than the one
/// under test, so that error cases can check that <see cref="Ops"/> raises <see cref="DeviceMismatchException"/>.
/// It declares every dtype and copies bytes; its kernels refuse to run (nothing in the suite calls them).
/// </summary>
public sealed class ForeignDevice : DeviceBase
{
    private readonly ForeignAllocator _allocator;

    /// <summary>Creates the device <c>conformance-foreign:0</c> with 1 GiB of nominal memory.</summary>
    public ForeignDevice()
        : base(new DeviceId("conformance-foreign", 0), new DeviceCapabilities("foreign host memory (conformance suite)", 1L << 30, 1L << 30, DTypeInfo.All, IsAsync: false))
    {
        _allocator = new ForeignAllocator(this);
    }

    /// <inheritdoc />
    public override IAllocator Allocator => _allocator;

    /// <inheritdoc />
    public override IStream DefaultStream { get; } = new SynchronousStream();

    /// <inheritdoc />
    public override IKernels Kernels { get; } = new RefusingKernels();

    /// <summary>A zero-filled tensor of <paramref name="shape"/> and <paramref name="dtype"/> on this device (the caller disposes it).</summary>
    public Tensor Zeros(Shape shape, DType dtype)
    {
        ArgumentNullException.ThrowIfNull(shape);
        var buffer = _allocator.Allocate(shape.ElementCount * dtype.SizeInBytes());
        return new Tensor(buffer, 0, shape, dtype, ownsBuffer: true);
    }

    /// <inheritdoc />
    protected override void CopyFromHostCore(ReadOnlySpan<byte> src, DeviceBuffer dst, long dstOffsetBytes) =>
        src.CopyTo(((HostBuffer)dst).Bytes.AsSpan((int)dstOffsetBytes));

    /// <inheritdoc />
    protected override void CopyToHostCore(DeviceBuffer src, long srcOffsetBytes, Span<byte> dst) =>
        ((HostBuffer)src).Bytes.AsSpan((int)srcOffsetBytes, dst.Length).CopyTo(dst);

    /// <inheritdoc />
    protected override void CopyDeviceToDeviceCore(DeviceBuffer src, long srcOffsetBytes, DeviceBuffer dst, long dstOffsetBytes, long sizeInBytes) =>
        ((HostBuffer)src).Bytes.AsSpan((int)srcOffsetBytes, (int)sizeInBytes).CopyTo(((HostBuffer)dst).Bytes.AsSpan((int)dstOffsetBytes));

    /// <inheritdoc />
    protected override void SynchronizeCore()
    {
    }

    /// <inheritdoc />
    protected override void DisposeCore() => _allocator.Dispose();

    /// <summary>Managed byte arrays (zeroed), limited to 1 GiB.</summary>
    private sealed class ForeignAllocator(ForeignDevice device) : AllocatorBase(device, 1L << 30, null)
    {
        protected override DeviceBuffer AllocateCore(long sizeInBytes) => new HostBuffer(this, sizeInBytes);

        protected override void FreeCore(DeviceBuffer buffer)
        {
        }
    }

    private sealed class HostBuffer(ForeignAllocator allocator, long sizeInBytes) : DeviceBuffer(allocator.Device, sizeInBytes)
    {
        public byte[] Bytes { get; } = new byte[sizeInBytes];

        protected override void Release() => allocator.Return(this);
    }

    /// <summary>Kernels that say this device is not for computing (the suite only needs its tensors to exist).</summary>
    private sealed class RefusingKernels : IKernels
    {
        private static NotSupportedException Refuse() =>
            new("the conformance suite's foreign device only holds tensors for device-mismatch error cases; it runs no kernels");

        public void Fill(Tensor dst, double value) => throw Refuse();

        public void Copy(Tensor src, Tensor dst) => throw Refuse();

        public void Cast(Tensor src, Tensor dst) => throw Refuse();

        public void Unary(UnaryOp op, Tensor x, Tensor y) => throw Refuse();

        public void Binary(BinaryOp op, Tensor a, Tensor b, Tensor y) => throw Refuse();

        public void Reduce(ReduceOp op, Tensor x, int axis, Tensor y) => throw Refuse();

        public void ArgMax(Tensor x, int axis, Tensor indices) => throw Refuse();

        public void Gemm(Tensor a, Tensor b, Tensor c, bool transA, bool transB, double alpha, double beta, Tensor? bias) => throw Refuse();

        public void IndexSelect(Tensor src, int axis, Tensor index, Tensor dst) => throw Refuse();

        public void IndexAdd(Tensor src, int axis, Tensor index, Tensor dst) => throw Refuse();

        public void Gather(Tensor src, int axis, Tensor index, Tensor dst) => throw Refuse();

        public void ScatterAdd(Tensor src, int axis, Tensor index, Tensor dst) => throw Refuse();

        public void Random(RandomDistribution distribution, Tensor dst, ulong seed, ulong offset, double a, double b) => throw Refuse();
    }
}
