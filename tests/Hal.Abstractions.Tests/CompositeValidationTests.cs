namespace Hal.Abstractions.Tests;

// Every tier-2 entry point raises the documented exception, naming the op, for a wrong shape and a wrong dtype
// (validation runs before any kernel, so only allocation is needed); and PathFor/PathsTaken report the path.
public sealed class CompositeValidationTests : CompositeTestBase
{
    private Tensor E(DType dtype, params int[] shape) => Ops.Empty(new Shape(shape), dtype);

    private static void Shape(string op, Action call) => Assert.Equal(op, Assert.Throws<ShapeMismatchException>(call).Op);

    private static void DTypeMismatch(string op, Action call) => Assert.Equal(op, Assert.Throws<DTypeMismatchException>(call).Op);

    private static void DTypeNotSupported(string op, Action call) => Assert.Equal(op, Assert.Throws<DTypeNotSupportedException>(call).Op);

    [Fact]
    public void SoftmaxFamilyRejectsBadShapesAndDTypes()
    {
        using var x = E(DType.F32, 3, 4);
        using var y = E(DType.F32, 3, 4);
        using var bad = E(DType.F32, 4, 3);
        using var f64 = E(DType.F64, 3, 4);
        using var ints = E(DType.I32, 3, 4);
        Shape("softmax", () => Ops.Softmax(x, bad));
        DTypeMismatch("softmax", () => Ops.Softmax(x, f64));
        DTypeNotSupported("softmax", () => Ops.Softmax(ints, ints));
        Shape("softmax-backward", () => Ops.SoftmaxBackward(x, y, bad));
        DTypeMismatch("softmax-backward", () => Ops.SoftmaxBackward(x, f64, y));
        Shape("log-softmax", () => Ops.LogSoftmax(x, bad));
        DTypeMismatch("log-softmax", () => Ops.LogSoftmax(f64, y));
        Shape("log-softmax-backward", () => Ops.LogSoftmaxBackward(x, bad, y));
        DTypeMismatch("log-softmax-backward", () => Ops.LogSoftmaxBackward(x, y, f64));
    }

    [Fact]
    public void NormsRejectBadShapesAndDTypes()
    {
        using var x = E(DType.F32, 3, 4);
        using var y = E(DType.F32, 3, 4);
        using var w = E(DType.F32, 4);
        using var w5 = E(DType.F32, 5);
        using var w64 = E(DType.F64, 4);
        using var stat = E(DType.F32, 3);
        using var stat2 = E(DType.F32, 2);
        using var stat64 = E(DType.F64, 3);
        Shape("layer-norm", () => Ops.LayerNorm(x, w5, null, 1e-5, y, stat, stat));
        Shape("layer-norm", () => Ops.LayerNorm(x, w, w5, 1e-5, y, stat, stat));
        Shape("layer-norm", () => Ops.LayerNorm(x, w, null, 1e-5, y, stat2, stat));
        DTypeMismatch("layer-norm", () => Ops.LayerNorm(x, w64, null, 1e-5, y, stat, stat));
        DTypeNotSupported("layer-norm", () => Ops.LayerNorm(x, w, null, 1e-5, y, stat, stat64));
        Shape("layer-norm-backward", () => Ops.LayerNormBackward(y, x, w, stat, stat, y, w5, null));
        DTypeMismatch("layer-norm-backward", () => Ops.LayerNormBackward(y, x, w, stat, stat, y, w64, null));
        Shape("rms-norm", () => Ops.RmsNorm(x, w, 1e-5, y, stat2));
        DTypeNotSupported("rms-norm", () => Ops.RmsNorm(x, w, 1e-5, y, stat64));
        Shape("rms-norm-backward", () => Ops.RmsNormBackward(y, x, w5, stat, y, w));
        DTypeMismatch("rms-norm-backward", () => Ops.RmsNormBackward(y, x, w, stat, y, w64));
    }

    [Fact]
    public void CrossEntropyAndEmbeddingRejectBadShapesAndDTypes()
    {
        using var logits = E(DType.F32, 3, 5);
        using var targets = E(DType.I64, 3);
        using var targets2 = E(DType.I64, 2);
        using var floatTargets = E(DType.F32, 3);
        using var stat = E(DType.F32, 3);
        using var stat64 = E(DType.F64, 3);
        using var dlogits64 = E(DType.F64, 3, 5);
        using var dlogitsBad = E(DType.F32, 3, 4);
        Shape("cross-entropy", () => Ops.CrossEntropy(logits, targets2, stat, stat));
        DTypeNotSupported("cross-entropy", () => Ops.CrossEntropy(logits, floatTargets, stat, stat));
        DTypeNotSupported("cross-entropy", () => Ops.CrossEntropy(logits, targets, stat64, stat));
        Shape("cross-entropy-backward", () => Ops.CrossEntropyBackward(logits, targets, stat, stat, dlogitsBad));
        DTypeMismatch("cross-entropy-backward", () => Ops.CrossEntropyBackward(logits, targets, stat, stat, dlogits64));

        using var weight = E(DType.F32, 10, 4);
        using var ids = E(DType.I32, 6);
        using var rows = E(DType.F32, 6, 4);
        using var rowsBad = E(DType.F32, 6, 5);
        using var rows64 = E(DType.F64, 6, 4);
        using var floatIds = E(DType.F32, 6);
        Shape("embedding", () => Ops.Embedding(weight, ids, rowsBad));
        DTypeMismatch("embedding", () => Ops.Embedding(weight, ids, rows64));
        DTypeNotSupported("embedding", () => Ops.Embedding(weight, floatIds, rows));
        Shape("embedding-backward", () => Ops.EmbeddingBackward(rowsBad, ids, weight));
        DTypeMismatch("embedding-backward", () => Ops.EmbeddingBackward(rows64, ids, weight));
    }

    [Fact]
    public void RotaryAndAttentionRejectBadShapesAndDTypes()
    {
        using var x = E(DType.F32, 1, 3, 2, 4);
        using var y = E(DType.F32, 1, 3, 2, 4);
        using var odd = E(DType.F32, 1, 3, 2, 5);
        using var table = E(DType.F32, 5, 2);
        using var shortTable = E(DType.F32, 2, 2);
        using var table64 = E(DType.F64, 5, 2);
        Shape("rotary", () => Ops.Rotary(odd, table, table, 0, odd));
        Shape("rotary", () => Ops.Rotary(x, shortTable, shortTable, 0, y));
        Shape("rotary", () => Ops.Rotary(x, table, table, 3, y));
        DTypeNotSupported("rotary", () => Ops.Rotary(x, table64, table64, 0, y));
        Shape("rotary-backward", () => Ops.RotaryBackward(x, table, table, 0, odd));

        using var q = E(DType.F32, 2, 4, 3, 8);
        using var kv = E(DType.F32, 2, 2, 5, 8);
        using var kv3 = E(DType.F32, 2, 3, 5, 8);
        using var kv64 = E(DType.F64, 2, 2, 5, 8);
        using var o = E(DType.F32, 2, 4, 3, 8);
        using var lse = E(DType.F32, 2, 4, 3);
        using var lseBad = E(DType.F32, 2, 4, 5);
        using var lse64 = E(DType.F64, 2, 4, 3);
        Shape("attention", () => Ops.Attention(q, kv3, kv3, false, 1, o, lse));
        Shape("attention", () => Ops.Attention(q, kv, kv, false, 1, o, lseBad));
        DTypeMismatch("attention", () => Ops.Attention(q, kv64, kv64, false, 1, o, lse));
        DTypeNotSupported("attention", () => Ops.Attention(q, kv, kv, false, 1, o, lse64));
        Shape("attention-backward", () => Ops.AttentionBackward(q, kv, kv, o, lse, o, true, 1, o, q, kv));
        DTypeMismatch("attention-backward", () => Ops.AttentionBackward(q, kv, kv, o, lse, o, true, 1, o, kv64, kv));
    }

    [Fact]
    public void ActivationOptimizersAndQuantizationRejectBadShapesAndDTypes()
    {
        using var x = E(DType.F32, 6);
        using var x7 = E(DType.F32, 7);
        using var x64 = E(DType.F64, 6);
        using var bf = E(DType.BF16, 6);
        Shape("activation-backward", () => Ops.ActivationBackward(UnaryOp.Silu, x, x7, x));
        DTypeMismatch("activation-backward", () => Ops.ActivationBackward(UnaryOp.Silu, x, x64, x));
        Assert.Throws<ArgumentOutOfRangeException>(() => Ops.ActivationBackward(UnaryOp.Exp, x, x, x));

        var cfg = new AdamWConfig(0.1);
        Shape("adamw", () => Ops.AdamW(x, x, x7, x, cfg, 1));
        DTypeMismatch("adamw", () => Ops.AdamW(x, x64, x, x, cfg, 1));
        DTypeNotSupported("adamw", () => Ops.AdamW(x, x, bf, x, cfg, 1));
        DTypeNotSupported("adamw", () => Ops.AdamW(x, x, x64, x, cfg, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => Ops.AdamW(x, x, x, x, cfg, 0));
        Shape("lamb", () => Ops.Lamb(x, x7, x, x, cfg, 1));
        DTypeNotSupported("lamb", () => Ops.Lamb(x, x, x, bf, cfg, 1));
        Shape("lars", () => Ops.Lars(x, x, x7, new LarsConfig(0.1)));
        DTypeMismatch("lars", () => Ops.Lars(x, bf, x, new LarsConfig(0.1)));

        using var m = E(DType.F32, 2, 3);
        using var q = E(DType.I8, 2, 3);
        using var qBad = E(DType.I8, 3, 2);
        using var qI32 = E(DType.I32, 2, 3);
        using var scale = E(DType.F32, 2);
        using var scale3 = E(DType.F32, 3);
        using var scale64 = E(DType.F64, 2);
        Shape("quantize-int8", () => Ops.QuantizeInt8(m, qBad, scale));
        Shape("quantize-int8", () => Ops.QuantizeInt8(m, q, scale3));
        DTypeNotSupported("quantize-int8", () => Ops.QuantizeInt8(m, qI32, scale));
        DTypeNotSupported("quantize-int8", () => Ops.QuantizeInt8(m, q, scale64));
        Shape("dequantize-int8", () => Ops.DequantizeInt8(q, scale3, m));
        DTypeNotSupported("dequantize-int8", () => Ops.DequantizeInt8(qI32, scale, m));
    }

    [Fact]
    public void DeviceMismatchIsRejected()
    {
        using var other = new Hal.Backends.Cpu.CpuBackend().Open(0);
        using var foreign = new Ops(other).Empty(new Shape(3, 4));
        using var x = E(DType.F32, 3, 4);
        Assert.Throws<DeviceMismatchException>(() => Ops.Softmax(x, foreign));
    }

    [Fact]
    public void PathForReportsCompositeForMissingOpsAndFusedForSupportedOnes()
    {
        using var device = new KernelOnlyDevice(new PartlyFusedKernels());
        var ops = new Ops(device);
        Assert.Equal(KernelPath.Fused, ops.PathFor(FusedOp.Softmax, DType.F32));
        Assert.Equal(KernelPath.Composite, ops.PathFor(FusedOp.Softmax, DType.F64));
        Assert.Equal(KernelPath.Composite, ops.PathFor(FusedOp.Attention, DType.F32));
        ops.ForceComposite = true;
        Assert.Equal(KernelPath.Composite, ops.PathFor(FusedOp.Softmax, DType.F32));

        using var tierOneOnly = new KernelOnlyDevice(new TierOneKernels());
        var plain = new Ops(tierOneOnly);
        Assert.All(Enum.GetValues<FusedOp>(), op => Assert.Equal(KernelPath.Composite, plain.PathFor(op, DType.F32)));
    }

    [Fact]
    public void PathsTakenRecordsTheLatestPathPerOpAndDType()
    {
        Assert.Empty(Ops.PathsTaken);
        using var x = Upload([1, 2, 3, 4], DType.F32, 2, 2);
        using var y = Ops.Empty(new Shape(2, 2), DType.F32);
        Ops.Softmax(x, y);
        var paths = Ops.PathsTaken;
        Assert.Single(paths);
        Assert.Equal(KernelPath.Composite, paths[(FusedOp.Softmax, DType.F32)]);
    }

    /// <summary>A tier-1 kernel object whose methods are never called (these tests only ask which path would run).</summary>
    private class TierOneKernels : IKernels
    {
        public void Fill(Tensor dst, double value) => throw new NotSupportedException();

        public void Copy(Tensor src, Tensor dst) => throw new NotSupportedException();

        public void Cast(Tensor src, Tensor dst) => throw new NotSupportedException();

        public void Unary(UnaryOp op, Tensor x, Tensor y) => throw new NotSupportedException();

        public void Binary(BinaryOp op, Tensor a, Tensor b, Tensor y) => throw new NotSupportedException();

        public void Reduce(ReduceOp op, Tensor x, int axis, Tensor y) => throw new NotSupportedException();

        public void ArgMax(Tensor x, int axis, Tensor indices) => throw new NotSupportedException();

        public void Gemm(Tensor a, Tensor b, Tensor c, bool transA, bool transB, double alpha, double beta, Tensor? bias) => throw new NotSupportedException();

        public void IndexSelect(Tensor src, int axis, Tensor index, Tensor dst) => throw new NotSupportedException();

        public void IndexAdd(Tensor src, int axis, Tensor index, Tensor dst) => throw new NotSupportedException();

        public void Gather(Tensor src, int axis, Tensor index, Tensor dst) => throw new NotSupportedException();

        public void ScatterAdd(Tensor src, int axis, Tensor index, Tensor dst) => throw new NotSupportedException();

        public void Random(RandomDistribution distribution, Tensor dst, ulong seed, ulong offset, double a, double b) => throw new NotSupportedException();
    }

    /// <summary>Claims a fused softmax at F32 only.</summary>
    private sealed class PartlyFusedKernels : TierOneKernels, IFusedKernels
    {
        public bool Supports(FusedOp op, DType dtype) => op == FusedOp.Softmax && dtype == DType.F32;
    }

    /// <summary>A device that exists only to carry a kernel object (no memory).</summary>
    private sealed class KernelOnlyDevice(IKernels kernels) : IDevice
    {
        public DeviceId Id { get; } = new("fake", 0);

        public DeviceCapabilities Capabilities { get; } = new("fake", 0, 0, [DType.F32, DType.F64], IsAsync: false);

        public IAllocator Allocator => throw new NotSupportedException();

        public IStream DefaultStream { get; } = new SynchronousStream();

        public IKernels Kernels { get; } = kernels;

        public bool IsDisposed { get; private set; }

        public void CopyFromHost(ReadOnlySpan<byte> src, DeviceBuffer dst, long dstOffsetBytes) => throw new NotSupportedException();

        public void CopyToHost(DeviceBuffer src, long srcOffsetBytes, Span<byte> dst) => throw new NotSupportedException();

        public void CopyDeviceToDevice(DeviceBuffer src, long srcOffsetBytes, DeviceBuffer dst, long dstOffsetBytes, long sizeInBytes) => throw new NotSupportedException();

        public void Synchronize()
        {
        }

        public void Dispose() => IsDisposed = true;
    }
}
