namespace Hal.Conformance.Kernels.Catalogue;

// Bad calls per op family that must raise the exception Ops documents: shape mismatch, dtype mismatch, a dtype
// the op does not take, an operand on another device, an axis out of range. Shape legend: as in each family.
public static partial class Tier1Cases
{
    private static KernelCase ErrorCase(string op, DType dtype, string variant, string shape, Type expects, string description, Action<CaseContext> call, IReadOnlyList<DType>? alsoNeeds = null) => new()
    {
        Id = $"{op}/{dtype.Name()}/{shape}/error-{variant}",
        Op = op,
        DType = dtype,
        AlsoNeeds = alsoNeeds ?? [],
        Shape = shape,
        Quick = true,
        Expects = expects,
        Description = description,
        Run = ctx =>
        {
            call(ctx);
            return [];
        },
    };

    private static Tensor F32(CaseContext ctx, params int[] dims) => ctx.Upload(new double[new Shape(dims).ElementCount], new Shape(dims), DType.F32);

    private static Tensor Of(CaseContext ctx, DType dtype, params int[] dims) => ctx.Upload(new double[new Shape(dims).ElementCount], new Shape(dims), dtype);

    /// <summary>A zero tensor on a second device that is not the one under test.</summary>
    private static Tensor Foreign(CaseContext ctx, DType dtype, params int[] dims)
    {
        var device = ctx.Own(new ForeignDevice());
        return ctx.Own(device.Zeros(new Shape(dims), dtype));
    }

    private static IEnumerable<KernelCase> Errors()
    {
        var shape = typeof(ShapeMismatchException);
        var dtypeMismatch = typeof(DTypeMismatchException);
        var unsupported = typeof(DTypeNotSupportedException);
        var device = typeof(DeviceMismatchException);

        // fill / copy / cast
        yield return ErrorCase(KernelNames.Fill, DType.F32, "foreign-device", "[4]", device, "fill of a tensor on another device", ctx => ctx.Ops.Fill(Foreign(ctx, DType.F32, 4), 1));
        yield return ErrorCase(KernelNames.Copy, DType.F32, "shape", "src[4] dst[5]", shape, "copy between different element counts", ctx => ctx.Ops.Copy(F32(ctx, 4), F32(ctx, 5)));
        yield return ErrorCase(KernelNames.Copy, DType.F32, "dtype", "src f32[4] dst f64[4]", dtypeMismatch, "copy between dtypes (that is a cast)", ctx => ctx.Ops.Copy(F32(ctx, 4), Of(ctx, DType.F64, 4)), [DType.F64]);
        yield return ErrorCase(KernelNames.Copy, DType.F32, "foreign-device", "[4]", device, "copy from a tensor on another device", ctx => ctx.Ops.Copy(Foreign(ctx, DType.F32, 4), F32(ctx, 4)));
        yield return ErrorCase(KernelNames.Cast, DType.F32, "shape", "src[4] dst[6]", shape, "cast between different element counts", ctx => ctx.Ops.Cast(F32(ctx, 4), Of(ctx, DType.F16, 6)), [DType.F16]);
        yield return ErrorCase(KernelNames.Cast, DType.F32, "foreign-device", "[4]", device, "cast into a tensor on another device", ctx => ctx.Ops.Cast(F32(ctx, 4), Foreign(ctx, DType.I32, 4)));

        // unary
        string exp = KernelNames.Of(UnaryOp.Exp);
        yield return ErrorCase(exp, DType.F32, "shape", "x[4] y[5]", shape, "y's shape differs from x's", ctx => ctx.Ops.Unary(UnaryOp.Exp, F32(ctx, 4), F32(ctx, 5)));
        yield return ErrorCase(exp, DType.F32, "dtype", "x f32[4] y f64[4]", dtypeMismatch, "y's dtype differs from x's", ctx => ctx.Ops.Unary(UnaryOp.Exp, F32(ctx, 4), Of(ctx, DType.F64, 4)), [DType.F64]);
        yield return ErrorCase(exp, DType.I32, "unsupported-dtype", "[4]", unsupported, "exp on integers (only Neg/Abs/Relu take signed integers)", ctx => ctx.Ops.Unary(UnaryOp.Exp, Of(ctx, DType.I32, 4), Of(ctx, DType.I32, 4)));
        yield return ErrorCase(KernelNames.Of(UnaryOp.Neg), DType.U8, "unsupported-dtype", "[4]", unsupported, "neg on u8 (unsigned)", ctx => ctx.Ops.Unary(UnaryOp.Neg, Of(ctx, DType.U8, 4), Of(ctx, DType.U8, 4)));
        yield return ErrorCase(KernelNames.Of(UnaryOp.Abs), DType.Bool, "unsupported-dtype", "[4]", unsupported, "abs on bool", ctx => ctx.Ops.Unary(UnaryOp.Abs, Of(ctx, DType.Bool, 4), Of(ctx, DType.Bool, 4)));
        yield return ErrorCase(exp, DType.F32, "foreign-device", "[4]", device, "x on another device", ctx => ctx.Ops.Unary(UnaryOp.Exp, Foreign(ctx, DType.F32, 4), F32(ctx, 4)));

        // binary
        string add = KernelNames.Of(BinaryOp.Add);
        yield return ErrorCase(add, DType.F32, "no-broadcast", "a[3,4] b[5]", shape, "shapes that do not broadcast", ctx => ctx.Ops.Binary(BinaryOp.Add, F32(ctx, 3, 4), F32(ctx, 5), F32(ctx, 3, 4)));
        yield return ErrorCase(add, DType.F32, "output-shape", "a[3,4] b[4] y[4]", shape, "y is not the broadcast shape", ctx => ctx.Ops.Binary(BinaryOp.Add, F32(ctx, 3, 4), F32(ctx, 4), F32(ctx, 4)));
        yield return ErrorCase(add, DType.F32, "dtype", "a f32[4] b f64[4]", dtypeMismatch, "a and b of different dtypes", ctx => ctx.Ops.Binary(BinaryOp.Add, F32(ctx, 4), Of(ctx, DType.F64, 4), F32(ctx, 4)), [DType.F64]);
        yield return ErrorCase(add, DType.Bool, "unsupported-dtype", "[4]", unsupported, "add on bool", ctx => ctx.Ops.Binary(BinaryOp.Add, Of(ctx, DType.Bool, 4), Of(ctx, DType.Bool, 4), Of(ctx, DType.Bool, 4)));
        yield return ErrorCase(KernelNames.Of(BinaryOp.Pow), DType.I32, "unsupported-dtype", "[4]", unsupported, "pow on integers", ctx => ctx.Ops.Binary(BinaryOp.Pow, Of(ctx, DType.I32, 4), Of(ctx, DType.I32, 4), Of(ctx, DType.I32, 4)));
        yield return ErrorCase(add, DType.F32, "foreign-device", "[4]", device, "b on another device", ctx => ctx.Ops.Binary(BinaryOp.Add, F32(ctx, 4), Foreign(ctx, DType.F32, 4), F32(ctx, 4)));

        // reduce and argmax (Ops raises ShapeMismatchException for an axis out of range: see its NormalizeAxis)
        string sum = KernelNames.Of(ReduceOp.Sum);
        yield return ErrorCase(sum, DType.F32, "shape", "x[3,4] y[3,4] axis 1", shape, "y keeps the reduced axis", ctx => ctx.Ops.Reduce(ReduceOp.Sum, F32(ctx, 3, 4), 1, F32(ctx, 3, 4)));
        yield return ErrorCase(sum, DType.F32, "axis-2-of-rank-2", "x[3,4]", shape, "axis 2 of a rank-2 tensor", ctx => ctx.Ops.Reduce(ReduceOp.Sum, F32(ctx, 3, 4), 2, F32(ctx, 3, 1)));
        yield return ErrorCase(sum, DType.F32, "axis-minus-3-of-rank-2", "x[3,4]", shape, "axis −3 of a rank-2 tensor", ctx => ctx.Ops.Reduce(ReduceOp.Sum, F32(ctx, 3, 4), -3, F32(ctx, 1, 4)));
        yield return ErrorCase(sum, DType.F32, "dtype", "x f32 y f64", dtypeMismatch, "y of another dtype", ctx => ctx.Ops.Reduce(ReduceOp.Sum, F32(ctx, 3, 4), 1, Of(ctx, DType.F64, 3, 1)), [DType.F64]);
        yield return ErrorCase(KernelNames.Of(ReduceOp.Mean), DType.I32, "unsupported-dtype", "[3,4]", unsupported, "mean of integers", ctx => ctx.Ops.Reduce(ReduceOp.Mean, Of(ctx, DType.I32, 3, 4), 1, Of(ctx, DType.I32, 3, 1)));
        yield return ErrorCase(sum, DType.Bool, "unsupported-dtype", "[3,4]", unsupported, "sum of bools", ctx => ctx.Ops.Reduce(ReduceOp.Sum, Of(ctx, DType.Bool, 3, 4), 1, Of(ctx, DType.Bool, 3, 1)));
        yield return ErrorCase(sum, DType.F32, "foreign-device", "[3,4]", device, "y on another device", ctx => ctx.Ops.Reduce(ReduceOp.Sum, F32(ctx, 3, 4), 1, Foreign(ctx, DType.F32, 3, 1)));
        yield return ErrorCase(KernelNames.ArgMax, DType.F32, "indices-f32", "x[3,4]", unsupported, "indices must be i64", ctx => ctx.Ops.ArgMax(F32(ctx, 3, 4), 1, F32(ctx, 3, 1)), [DType.I64]);
        yield return ErrorCase(KernelNames.ArgMax, DType.F32, "empty-axis", "x[3,0]", shape, "argmax over an empty axis", ctx => ctx.Ops.ArgMax(F32(ctx, 3, 0), 1, Of(ctx, DType.I64, 3, 1)), [DType.I64]);
        yield return ErrorCase(KernelNames.ArgMax, DType.F32, "axis-2-of-rank-2", "x[3,4]", shape, "axis out of range", ctx => ctx.Ops.ArgMax(F32(ctx, 3, 4), 2, Of(ctx, DType.I64, 3, 1)), [DType.I64]);
        yield return ErrorCase(KernelNames.ArgMax, DType.F32, "shape", "x[3,4] indices[3]", shape, "indices keep the reduced axis", ctx => ctx.Ops.ArgMax(F32(ctx, 3, 4), 1, Of(ctx, DType.I64, 3)), [DType.I64]);
        yield return ErrorCase(KernelNames.ArgMax, DType.F32, "foreign-device", "x[3,4]", device, "x on another device", ctx => ctx.Ops.ArgMax(Foreign(ctx, DType.F32, 3, 4), 1, Of(ctx, DType.I64, 3, 1)), [DType.I64]);

        // index ops
        Tensor Idx(CaseContext ctx, DType t, params int[] dims) => Of(ctx, t, dims);
        yield return ErrorCase(KernelNames.IndexSelect, DType.F32, "shape", "src[4,5] index[3] dst[4,4]", shape, "dst's axis is not the index length", ctx => ctx.Ops.IndexSelect(F32(ctx, 4, 5), 1, Idx(ctx, DType.I64, 3), F32(ctx, 4, 4)), [DType.I64]);
        yield return ErrorCase(KernelNames.IndexSelect, DType.F32, "index-f32", "src[4,5] index[3]", unsupported, "indices must be i32 or i64", ctx => ctx.Ops.IndexSelect(F32(ctx, 4, 5), 1, F32(ctx, 3), F32(ctx, 4, 3)));
        yield return ErrorCase(KernelNames.IndexSelect, DType.F32, "index-rank-2", "src[4,5] index[3,1]", shape, "index must be 1-D", ctx => ctx.Ops.IndexSelect(F32(ctx, 4, 5), 1, Idx(ctx, DType.I64, 3, 1), F32(ctx, 4, 3)), [DType.I64]);
        yield return ErrorCase(KernelNames.IndexSelect, DType.F32, "dtype", "src f32 dst f64", dtypeMismatch, "dst of another dtype", ctx => ctx.Ops.IndexSelect(F32(ctx, 4, 5), 1, Idx(ctx, DType.I64, 3), Of(ctx, DType.F64, 4, 3)), [DType.I64, DType.F64]);
        yield return ErrorCase(KernelNames.IndexSelect, DType.F32, "axis-2-of-rank-2", "src[4,5]", shape, "axis out of range", ctx => ctx.Ops.IndexSelect(F32(ctx, 4, 5), 2, Idx(ctx, DType.I64, 3), F32(ctx, 4, 3)), [DType.I64]);
        yield return ErrorCase(KernelNames.IndexSelect, DType.F32, "foreign-device", "src[4,5] index[3]", device, "index on another device", ctx => ctx.Ops.IndexSelect(F32(ctx, 4, 5), 1, Foreign(ctx, DType.I64, 3), F32(ctx, 4, 3)), [DType.I64]);
        yield return ErrorCase(KernelNames.IndexAdd, DType.F32, "shape", "src[4,2] index[3] dst[4,5]", shape, "src's axis is not the index length", ctx => ctx.Ops.IndexAdd(F32(ctx, 4, 2), 1, Idx(ctx, DType.I32, 3), F32(ctx, 4, 5)), [DType.I32]);
        yield return ErrorCase(KernelNames.IndexAdd, DType.F32, "dtype", "src f64 dst f32", dtypeMismatch, "src of another dtype", ctx => ctx.Ops.IndexAdd(Of(ctx, DType.F64, 4, 3), 1, Idx(ctx, DType.I32, 3), F32(ctx, 4, 5)), [DType.I32, DType.F64]);
        yield return ErrorCase(KernelNames.IndexAdd, DType.F32, "axis-minus-3-of-rank-2", "dst[4,5]", shape, "axis out of range", ctx => ctx.Ops.IndexAdd(F32(ctx, 4, 3), -3, Idx(ctx, DType.I32, 3), F32(ctx, 4, 5)), [DType.I32]);
        yield return ErrorCase(KernelNames.IndexAdd, DType.F32, "foreign-device", "dst[4,5]", device, "dst on another device", ctx => ctx.Ops.IndexAdd(F32(ctx, 4, 3), 1, Idx(ctx, DType.I32, 3), Foreign(ctx, DType.F32, 4, 5)), [DType.I32]);
        yield return ErrorCase(KernelNames.Gather, DType.F32, "index-shape", "src[4,5] index[3,2]", shape, "index differs from src off the axis", ctx => ctx.Ops.Gather(F32(ctx, 4, 5), 1, Idx(ctx, DType.I64, 3, 2), F32(ctx, 3, 2)), [DType.I64]);
        yield return ErrorCase(KernelNames.Gather, DType.F32, "dst-shape", "index[4,2] dst[4,3]", shape, "dst is not index's shape", ctx => ctx.Ops.Gather(F32(ctx, 4, 5), 1, Idx(ctx, DType.I64, 4, 2), F32(ctx, 4, 3)), [DType.I64]);
        yield return ErrorCase(KernelNames.Gather, DType.F32, "index-u8", "src[4,5] index u8[4,2]", unsupported, "indices must be i32 or i64", ctx => ctx.Ops.Gather(F32(ctx, 4, 5), 1, Idx(ctx, DType.U8, 4, 2), F32(ctx, 4, 2)), [DType.U8]);
        yield return ErrorCase(KernelNames.Gather, DType.F32, "axis-2-of-rank-2", "src[4,5]", shape, "axis out of range", ctx => ctx.Ops.Gather(F32(ctx, 4, 5), 2, Idx(ctx, DType.I64, 4, 2), F32(ctx, 4, 2)), [DType.I64]);
        yield return ErrorCase(KernelNames.Gather, DType.F32, "foreign-device", "src[4,5]", device, "src on another device", ctx => ctx.Ops.Gather(Foreign(ctx, DType.F32, 4, 5), 1, Idx(ctx, DType.I64, 4, 2), F32(ctx, 4, 2)), [DType.I64]);
        yield return ErrorCase(KernelNames.ScatterAdd, DType.F32, "src-shape", "index[4,2] src[4,3]", shape, "src is not index's shape", ctx => ctx.Ops.ScatterAdd(F32(ctx, 4, 3), 1, Idx(ctx, DType.I32, 4, 2), F32(ctx, 4, 5)), [DType.I32]);
        yield return ErrorCase(KernelNames.ScatterAdd, DType.F32, "dtype", "src f64 dst f32", dtypeMismatch, "src of another dtype", ctx => ctx.Ops.ScatterAdd(Of(ctx, DType.F64, 4, 2), 1, Idx(ctx, DType.I32, 4, 2), F32(ctx, 4, 5)), [DType.I32, DType.F64]);
        yield return ErrorCase(KernelNames.ScatterAdd, DType.F32, "foreign-device", "dst[4,5]", device, "dst on another device", ctx => ctx.Ops.ScatterAdd(F32(ctx, 4, 2), 1, Idx(ctx, DType.I32, 4, 2), Foreign(ctx, DType.F32, 4, 5)), [DType.I32]);
    }
}
