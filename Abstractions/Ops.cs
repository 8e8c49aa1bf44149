namespace Hal;

/// <summary>
/// The validating entry to a device's kernels: every public method checks devices, disposal, dtypes and shapes
/// once, raises the documented exception, then calls the backend hook (<see cref="IKernels"/>), or for tier-2 ops
/// the backend's fused kernel when it has one and the composite fallback otherwise.
/// </summary>
public sealed partial class Ops
{
    private readonly HashSet<DType> _dtypes;

    /// <summary>Creates the entry for <paramref name="device"/>.</summary>
    public Ops(IDevice device)
        : this(device, null)
    {
    }

    /// <summary>
    /// Creates the entry for <paramref name="device"/> whose hooks are <paramref name="kernels"/> instead of the
    /// device's own: a decorator over <c>device.Kernels</c> that records or alters calls (the conformance suite
    /// records which kernels a case used, and its own tests plant faults this way). Tier-2 dispatch asks the
    /// decorator, so it decides which fused kernels exist.
    /// </summary>
    public Ops(IDevice device, IKernels? kernels)
    {
        ArgumentNullException.ThrowIfNull(device);
        Device = device;
        _kernels = kernels;
        _dtypes = [.. device.Capabilities.DTypes];
    }

    private readonly IKernels? _kernels;

    /// <summary>The device whose kernels run.</summary>
    public IDevice Device { get; }

    /// <summary>The backend's tier-1 hooks (or the decorator given at construction).</summary>
    public IKernels Kernels => _kernels ?? Device.Kernels;

    private string BackendName => Device.Id.Backend;

    // ---- allocation -------------------------------------------------------------------------------------------

    /// <summary>A new tensor that owns its buffer; contents unspecified.</summary>
    public Tensor Empty(Shape shape, DType dtype = DType.F32)
    {
        ArgumentNullException.ThrowIfNull(shape);
        CheckDeviceAlive();
        var buffer = Device.Allocator.Allocate(shape.ElementCount * dtype.SizeInBytes());
        return new Tensor(buffer, 0, shape, dtype, ownsBuffer: true);
    }

    /// <summary>A new tensor filled with <paramref name="value"/>.</summary>
    public Tensor Full(Shape shape, double value, DType dtype = DType.F32)
    {
        var t = Empty(shape, dtype);
        Fill(t, value);
        return t;
    }

    /// <summary>A new tensor of zeros.</summary>
    public Tensor Zeros(Shape shape, DType dtype = DType.F32) => Full(shape, 0, dtype);

    // ---- tier 1 -----------------------------------------------------------------------------------------------

    /// <summary>dst[i] = value.</summary>
    public void Fill(Tensor dst, double value)
    {
        Check("fill", dst);
        Kernels.Fill(dst, value);
    }

    /// <summary>dst = src (same dtype and element count).</summary>
    public void Copy(Tensor src, Tensor dst)
    {
        Check("copy", src, dst);
        SameDType("copy", src, dst);
        SameCount("copy", src, dst);
        Kernels.Copy(src, dst);
    }

    /// <summary>dst = src converted to dst's dtype (same element count).</summary>
    public void Cast(Tensor src, Tensor dst)
    {
        Check("cast", src, dst);
        SameCount("cast", src, dst);
        Kernels.Cast(src, dst);
    }

    /// <summary>y = op(x), same shape and dtype; y may be x.</summary>
    public void Unary(UnaryOp op, Tensor x, Tensor y)
    {
        string name = op.ToString();
        Check(name, x, y);
        SameDType(name, x, y);
        SameShape(name, x, y);
        bool intOk = op is UnaryOp.Neg or UnaryOp.Abs or UnaryOp.Relu or UnaryOp.Square;
        if (!x.DType.IsFloatingPoint() && !(intOk && x.DType is DType.I32 or DType.I64 or DType.I8))
        {
            throw new DTypeNotSupportedException(name, x.DType, BackendName, "this op needs a floating-point dtype");
        }
        Kernels.Unary(op, x, y);
    }

    /// <summary>y = a op b with NumPy broadcasting.</summary>
    public void Binary(BinaryOp op, Tensor a, Tensor b, Tensor y)
    {
        string name = op.ToString();
        Check(name, a, b, y);
        SameDType(name, a, b);
        SameDType(name, a, y);
        if (a.DType == DType.Bool || (op == BinaryOp.Pow && !a.DType.IsFloatingPoint()))
        {
            throw new DTypeNotSupportedException(name, a.DType, BackendName);
        }
        var shape = Shape.Broadcast(a.Shape, b.Shape)
            ?? throw new ShapeMismatchException(name, a.Shape, b.Shape, "shapes do not broadcast");
        if (shape != y.Shape)
        {
            throw new ShapeMismatchException(name, shape, y.Shape, "output must have the broadcast shape");
        }
        Kernels.Binary(op, a, b, y);
    }

    /// <summary>y = reduce of x along axis (negative counts from the end); y has x's shape with that axis set to 1.</summary>
    public void Reduce(ReduceOp op, Tensor x, int axis, Tensor y)
    {
        string name = "reduce-" + op.ToString().ToLowerInvariant();
        Check(name, x, y);
        SameDType(name, x, y);
        if (x.DType == DType.Bool || (op == ReduceOp.Mean && !x.DType.IsFloatingPoint()))
        {
            throw new DTypeNotSupportedException(name, x.DType, BackendName);
        }
        int a = NormalizeAxis(name, x, axis);
        var expected = x.Shape.With(a, 1);
        if (expected != y.Shape)
        {
            throw new ShapeMismatchException(name, expected, y.Shape, $"output must be the input's shape with axis {a} set to 1");
        }
        Kernels.Reduce(op, x, a, y);
    }

    /// <summary>indices (I64) = argmax of x along axis.</summary>
    public void ArgMax(Tensor x, int axis, Tensor indices)
    {
        Check("argmax", x, indices);
        int a = NormalizeAxis("argmax", x, axis);
        if (indices.DType != DType.I64)
        {
            throw new DTypeNotSupportedException("argmax", indices.DType, BackendName, "indices must be i64");
        }
        if (x.DType == DType.Bool)
        {
            throw new DTypeNotSupportedException("argmax", x.DType, BackendName);
        }
        if (x.Shape[a] == 0)
        {
            throw new ShapeMismatchException("argmax", x.Shape, indices.Shape, $"axis {a} is empty");
        }
        var expected = x.Shape.With(a, 1);
        if (expected != indices.Shape)
        {
            throw new ShapeMismatchException("argmax", expected, indices.Shape, $"indices must be the input's shape with axis {a} set to 1");
        }
        Kernels.ArgMax(x, a, indices);
    }

    /// <summary>Batched c = alpha·op(a)·op(b) + beta·c (+ bias). See <see cref="IKernels.Gemm"/> for shapes.</summary>
    public void Gemm(Tensor a, Tensor b, Tensor c, bool transA = false, bool transB = false, double alpha = 1, double beta = 0, Tensor? bias = null)
    {
        const string name = "gemm";
        Check(name, a, b, c);
        SameDType(name, a, b);
        SameDType(name, a, c);
        if (!a.DType.IsFloatingPoint())
        {
            throw new DTypeNotSupportedException(name, a.DType, BackendName, "GEMM needs a floating-point dtype");
        }
        if (a.Rank < 2 || b.Rank < 2 || c.Rank < 2)
        {
            throw new ShapeMismatchException(name, a.Shape, b.Shape, "operands need rank ≥ 2");
        }
        int m = transA ? a.Shape[-1] : a.Shape[-2];
        int ka = transA ? a.Shape[-2] : a.Shape[-1];
        int kb = transB ? b.Shape[-1] : b.Shape[-2];
        int n = transB ? b.Shape[-2] : b.Shape[-1];
        if (ka != kb)
        {
            throw new ShapeMismatchException(name, a.Shape, b.Shape, $"inner dimensions differ: K={ka} vs K={kb} (transA={transA}, transB={transB})");
        }
        if (c.Shape[-2] != m || c.Shape[-1] != n)
        {
            throw new ShapeMismatchException(name, new Shape(m, n), c.Shape, "output must be [..., M, N]");
        }
        long batch = c.Shape.Product(0, c.Rank - 2);
        long batchA = a.Shape.Product(0, a.Rank - 2);
        long batchB = b.Shape.Product(0, b.Rank - 2);
        if ((batchA != batch && batchA != 1) || (batchB != batch && batchB != 1))
        {
            throw new ShapeMismatchException(name, a.Shape, b.Shape, $"batch sizes {batchA} and {batchB} must each be 1 or the output's {batch}");
        }
        if (bias is not null)
        {
            Check(name, bias);
            SameDType(name, a, bias);
            if (bias.ElementCount != n || bias.Rank != 1)
            {
                throw new ShapeMismatchException(name, new Shape(n), bias.Shape, "bias must be [N]");
            }
        }
        Kernels.Gemm(a, b, c, transA, transB, alpha, beta, bias);
    }

    /// <summary>dst = src.index_select(axis, index).</summary>
    public void IndexSelect(Tensor src, int axis, Tensor index, Tensor dst)
    {
        const string name = "index-select";
        Check(name, src, index, dst);
        SameDType(name, src, dst);
        int a = CheckIndexVector(name, src, axis, index);
        var expected = src.Shape.With(a, index.Shape[0]);
        if (expected != dst.Shape)
        {
            throw new ShapeMismatchException(name, expected, dst.Shape);
        }
        Kernels.IndexSelect(src, a, index, dst);
    }

    /// <summary>dst.index_add_(axis, index, src).</summary>
    public void IndexAdd(Tensor src, int axis, Tensor index, Tensor dst)
    {
        const string name = "index-add";
        Check(name, src, index, dst);
        SameDType(name, src, dst);
        int a = CheckIndexVector(name, dst, axis, index);
        var expected = dst.Shape.With(a, index.Shape[0]);
        if (expected != src.Shape)
        {
            throw new ShapeMismatchException(name, expected, src.Shape);
        }
        Kernels.IndexAdd(src, a, index, dst);
    }

    /// <summary>dst = src.gather(axis, index).</summary>
    public void Gather(Tensor src, int axis, Tensor index, Tensor dst)
    {
        const string name = "gather";
        Check(name, src, index, dst);
        SameDType(name, src, dst);
        int a = CheckIndexLike(name, src, axis, index);
        SameShape(name, index, dst);
        Kernels.Gather(src, a, index, dst);
    }

    /// <summary>dst.scatter_add_(axis, index, src).</summary>
    public void ScatterAdd(Tensor src, int axis, Tensor index, Tensor dst)
    {
        const string name = "scatter-add";
        Check(name, src, index, dst);
        SameDType(name, src, dst);
        int a = CheckIndexLike(name, dst, axis, index);
        SameShape(name, index, src);
        Kernels.ScatterAdd(src, a, index, dst);
    }

    /// <summary>Philox uniform in [low, high).</summary>
    public void RandomUniform(Tensor dst, ulong seed, ulong offset = 0, double low = 0, double high = 1) =>
        RandomCore(RandomDistribution.Uniform, dst, seed, offset, low, high);

    /// <summary>Philox normal(mean, std).</summary>
    public void RandomNormal(Tensor dst, ulong seed, ulong offset = 0, double mean = 0, double std = 1) =>
        RandomCore(RandomDistribution.Normal, dst, seed, offset, mean, std);

    private void RandomCore(RandomDistribution dist, Tensor dst, ulong seed, ulong offset, double a, double b)
    {
        string name = "random-" + dist.ToString().ToLowerInvariant();
        Check(name, dst);
        if (!dst.DType.IsFloatingPoint())
        {
            throw new DTypeNotSupportedException(name, dst.DType, BackendName, "random numbers need a floating-point dtype");
        }
        Kernels.Random(dist, dst, seed, offset, a, b);
    }

    // ---- validation helpers -----------------------------------------------------------------------------------

    private void CheckDeviceAlive()
    {
        if (Device.IsDisposed)
        {
            throw new ObjectDisposedException(Device.Id.ToString(), $"device {Device.Id} was used after it was disposed");
        }
    }

    /// <summary>Each tensor is alive, on this device, and of a dtype the device supports.</summary>
    internal void Check(string op, params ReadOnlySpan<Tensor> tensors)
    {
        CheckDeviceAlive();
        foreach (var t in tensors)
        {
            ArgumentNullException.ThrowIfNull(t, op);
            t.Buffer.ThrowIfDisposed();
            if (!ReferenceEquals(t.Device, Device))
            {
                throw new DeviceMismatchException(op, Device.Id, t.Device.Id);
            }
            if (!_dtypes.Contains(t.DType))
            {
                throw new DTypeNotSupportedException(op, t.DType, BackendName);
            }
        }
    }

    internal static void SameDType(string op, Tensor a, Tensor b)
    {
        if (a.DType != b.DType)
        {
            throw new DTypeMismatchException(op, a.DType, b.DType);
        }
    }

    internal static void SameShape(string op, Tensor a, Tensor b)
    {
        if (a.Shape != b.Shape)
        {
            throw new ShapeMismatchException(op, a.Shape, b.Shape);
        }
    }

    internal static void SameCount(string op, Tensor a, Tensor b)
    {
        if (a.ElementCount != b.ElementCount)
        {
            throw new ShapeMismatchException(op, a.Shape, b.Shape, "element counts differ");
        }
    }

    /// <summary>A negative axis counts from the end; one outside the rank raises <see cref="ShapeMismatchException"/> (the axis is part of the shape contract), for every op that takes an axis.</summary>
    internal static int NormalizeAxis(string op, Tensor x, int axis)
    {
        int a = axis < 0 ? axis + x.Rank : axis;
        if (a < 0 || a >= x.Rank)
        {
            throw new ShapeMismatchException(op, x.Shape, x.Shape, $"axis {axis} is out of range for rank {x.Rank}");
        }
        return a;
    }

    internal void CheckIndexDType(string op, Tensor index)
    {
        if (!index.DType.IsIndex())
        {
            throw new DTypeNotSupportedException(op, index.DType, BackendName, "indices must be i32 or i64");
        }
    }

    private int CheckIndexVector(string op, Tensor data, int axis, Tensor index)
    {
        CheckIndexDType(op, index);
        if (index.Rank != 1)
        {
            throw new ShapeMismatchException(op, new Shape(index.Shape.ElementCount > int.MaxValue ? 0 : (int)index.ElementCount), index.Shape, "index must be 1-D");
        }
        return NormalizeAxis(op, data, axis);
    }

    private int CheckIndexLike(string op, Tensor data, int axis, Tensor index)
    {
        CheckIndexDType(op, index);
        int a = NormalizeAxis(op, data, axis);
        if (index.Rank != data.Rank)
        {
            throw new ShapeMismatchException(op, data.Shape, index.Shape, "index must have the data's rank");
        }
        for (int i = 0; i < data.Rank; i++)
        {
            if (i != a && index.Shape[i] != data.Shape[i])
            {
                throw new ShapeMismatchException(op, data.Shape, index.Shape, $"index must match the data except along axis {a}");
            }
        }
        return a;
    }
}
