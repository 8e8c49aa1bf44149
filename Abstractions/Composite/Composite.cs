namespace Hal;

/// <summary>
/// The composite fallbacks of the tier-2 ops: each is written only with tier-1 <see cref="Ops"/> calls and device
/// temporaries, and never reads tensor data back to the host, so it runs on any backend, asynchronous ones included.
/// Inputs are trusted: call these through <see cref="Ops"/>, which validates (see <see cref="IFusedKernels"/> for
/// the semantics and shapes). 16-bit inputs are cast to F32 temporaries, computed, and cast back; F64 computes in F64.
/// Legend: N rows, C channels (last axis), V vocabulary, B batch, H/Hkv heads, Tq/Tk lengths, D head size.
/// </summary>
public static partial class Composite
{
    /// <summary>The dtype a composite computes in for inputs of <paramref name="dtype"/>: F64 for F64, F32 otherwise.</summary>
    public static DType ComputeDType(DType dtype) => dtype == DType.F64 ? DType.F64 : DType.F32;

    /// <summary>Rows (product of the leading dims) and columns (last dim) of a tensor of rank ≥ 1.</summary>
    internal static (int Rows, int Cols) RowsOf(Tensor x) =>
        (checked((int)x.Shape.Product(0, x.Rank - 1)), x.Shape[-1]);

    /// <summary>A rank-1 view of all of <paramref name="t"/>'s elements (so that [1]-shaped scalars broadcast).</summary>
    internal static Tensor Flat(Tensor t) => t.Reshape(checked((int)t.ElementCount));

    /// <summary>
    /// Two factors whose product lifts the smallest positive denormal of <paramref name="dtype"/> above 1 while each
    /// stays finite: multiplying a non-negative x by it twice and clamping at 1 gives 1 for x &gt; 0 and 0 for x = 0.
    /// </summary>
    private static double LiftFactor(DType dtype) => dtype == DType.F64 ? Math.Pow(2, 600) : Math.Pow(2, 100);

    /// <summary>The most negative finite value of a compute dtype (a stand-in for −Inf that keeps x − m finite).</summary>
    internal static double Lowest(DType dtype) => dtype == DType.F64 ? -double.MaxValue : -float.MaxValue;

    /// <summary>
    /// For a ≥ 0: a new tensor holding 1 where a &gt; 0 and 0 where a = 0 (NaN stays NaN), with tier-1 ops only:
    /// min(a · 2^k · 2^k, 1), where 2^2k lifts every denormal above 1.
    /// </summary>
    internal static Tensor PositiveIndicator(Scratch s, Tensor a)
    {
        var lift = s.Scalar(LiftFactor(a.DType), a.DType);
        var r = s.Binary(BinaryOp.Mul, a, lift);
        s.Ops.Binary(BinaryOp.Mul, r, lift, r);
        s.Ops.Binary(BinaryOp.Min, r, s.Scalar(1, a.DType), r);
        return r;
    }

    /// <summary>A new tensor holding 1 − t.</summary>
    internal static Tensor OneMinus(Scratch s, Tensor t) => s.Binary(BinaryOp.Sub, s.Scalar(1, t.DType), t);
}

/// <summary>
/// The temporaries of one composite call, disposed together, with small helpers that allocate their result.
/// Scalars are [1]-shaped tensors made on the device with <see cref="Ops.Full"/>, so they broadcast against any rank ≥ 1.
/// </summary>
internal sealed class Scratch(Ops ops) : IDisposable
{
    private readonly List<Tensor> _owned = [];

    public Ops Ops { get; } = ops;

    public Tensor Empty(Shape shape, DType dtype) => Own(Ops.Empty(shape, dtype));

    public Tensor Full(Shape shape, double value, DType dtype) => Own(Ops.Full(shape, value, dtype));

    public Tensor Scalar(double value, DType dtype) => Full(new Shape(1), value, dtype);

    /// <summary>A host constant uploaded to the device (host → device only).</summary>
    public Tensor Constant(double[] values, Shape shape, DType dtype) => Own(Ops.FromArray(values, shape, dtype));

    /// <summary>An I64 host constant uploaded to the device.</summary>
    public Tensor Constant(long[] values, Shape shape) => Own(Ops.FromArray(values, shape, DType.I64));

    /// <summary><paramref name="t"/> itself when it has <paramref name="dtype"/>, else a converted copy.</summary>
    public Tensor As(Tensor t, DType dtype)
    {
        if (t.DType == dtype)
        {
            return t;
        }
        var c = Empty(t.Shape, dtype);
        Ops.Cast(t, c);
        return c;
    }

    /// <summary>Where to compute an output: <paramref name="dst"/> itself when it has <paramref name="dtype"/>, else a temporary; <see cref="Store"/> writes it back.</summary>
    public Tensor Target(Tensor dst, DType dtype) => dst.DType == dtype ? dst : Empty(dst.Shape, dtype);

    /// <summary>Writes <paramref name="computed"/> into <paramref name="dst"/> (same element count) unless it already is that memory.</summary>
    public void Store(Tensor computed, Tensor dst)
    {
        bool same = ReferenceEquals(computed.Buffer, dst.Buffer) && computed.OffsetBytes == dst.OffsetBytes && computed.DType == dst.DType;
        if (same)
        {
            return;
        }
        if (computed.DType == dst.DType)
        {
            Ops.Copy(computed, dst);
        }
        else
        {
            Ops.Cast(computed, dst);
        }
    }

    public Tensor Unary(UnaryOp op, Tensor x)
    {
        var y = Empty(x.Shape, x.DType);
        Ops.Unary(op, x, y);
        return y;
    }

    public Tensor Binary(BinaryOp op, Tensor a, Tensor b)
    {
        var shape = Shape.Broadcast(a.Shape, b.Shape)
            ?? throw new ShapeMismatchException(op.ToString(), a.Shape, b.Shape, "shapes do not broadcast");
        var y = Empty(shape, a.DType);
        Ops.Binary(op, a, b, y);
        return y;
    }

    /// <summary>x op scalar, as a new tensor.</summary>
    public Tensor Binary(BinaryOp op, Tensor a, double scalar) => Binary(op, a, Scalar(scalar, a.DType));

    /// <summary>x = x op scalar, in place.</summary>
    public void InPlace(BinaryOp op, Tensor x, double scalar) => Ops.Binary(op, x, Scalar(scalar, x.DType), x);

    /// <summary>Reduction along <paramref name="axis"/> with the axis kept (size 1).</summary>
    public Tensor Reduce(ReduceOp op, Tensor x, int axis)
    {
        var y = Empty(x.Shape.With(axis, 1), x.DType);
        Ops.Reduce(op, x, axis, y);
        return y;
    }

    public void Dispose()
    {
        for (int i = _owned.Count - 1; i >= 0; i--)
        {
            _owned[i].Dispose();
        }
        _owned.Clear();
    }

    private Tensor Own(Tensor t)
    {
        _owned.Add(t);
        return t;
    }
}
