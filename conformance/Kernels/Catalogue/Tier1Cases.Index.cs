using Hal.Conformance.Oracle;

namespace Hal.Conformance.Kernels.Catalogue;

// index_select, index_add, gather, scatter_add with I32 and I64 indices, repeated indices, every axis, and the
// out-of-range error that must leave dst unchanged. Shape legend: src/dst [d0,d1,…]; index 1-D (select/add) or
// index-like (gather/scatter: src's rank, equal dims except along the axis).
public static partial class Tier1Cases
{
    private static readonly DType[] IndexDataDTypes = [DType.F32, DType.F64, DType.F16, DType.BF16, DType.I32, DType.I64];
    private static readonly DType[] IndexDTypes = [DType.I32, DType.I64];
    private static readonly int[][] IndexDataShapes = [[7, 5], [3, 4, 6], [17]];

    private static double[] DataValues(CaseContext ctx, DType dtype, long count) =>
        dtype.IsFloatingPoint() ? ctx.Values.Floats(count, ValueKind.Normal, dtype) : ctx.Values.Integers(count, -1000, 1000);

    private static IEnumerable<KernelCase> IndexCases()
    {
        foreach (var dtype in IndexDataDTypes)
        {
            foreach (var indexType in IndexDTypes)
            {
                foreach (int[] dims in IndexDataShapes)
                {
                    for (int axis = 0; axis < dims.Length; axis++)
                    {
                        foreach (int k in new[] { 0, 1, 9 })
                        {
                            yield return IndexCase(KernelNames.IndexSelect, dtype, indexType, dims, axis, k, RunIndexSelect);
                            yield return IndexCase(KernelNames.IndexAdd, dtype, indexType, dims, axis, k, RunIndexAdd);
                        }
                        foreach (int k in new[] { 1, 9 })
                        {
                            yield return IndexCase(KernelNames.Gather, dtype, indexType, dims, axis, k, RunGather);
                            yield return IndexCase(KernelNames.ScatterAdd, dtype, indexType, dims, axis, k, RunScatterAdd);
                        }
                    }
                }
                if (dtype == DType.F32)
                {
                    foreach (string op in new[] { KernelNames.IndexSelect, KernelNames.IndexAdd, KernelNames.Gather, KernelNames.ScatterAdd })
                    {
                        foreach (long bad in new long[] { -1, 5 })
                        {
                            yield return IndexOutOfRangeCase(op, indexType, bad);
                        }
                    }
                }
            }
        }
    }

    private delegate IReadOnlyList<CaseOutput> IndexRunner(CaseContext ctx, DType dtype, DType indexType, int[] dims, int axis, int k);

    private static KernelCase IndexCase(string op, DType dtype, DType indexType, int[] dims, int axis, int k, IndexRunner run)
    {
        string shape = Dims(dims);
        return new KernelCase
        {
            Id = $"{op}/{dtype.Name()}/{shape}/axis{axis}-k{k}-{indexType.Name()}-index",
            Op = op,
            DType = dtype,
            AlsoNeeds = [indexType],
            Shape = $"data{shape} k={k}",
            Seed = Seeds.For(op, dtype, indexType, shape, axis, k),
            Quick = shape == "[7,5]" && axis == 1 && k == 9,
            Description = $"{op} along axis {axis} with {k} {indexType.Name()} indices per slice (repeats included)",
            Run = ctx => run(ctx, dtype, indexType, dims, axis, k),
        };
    }

    /// <summary>k indices in [0, range), with a repeat forced when k ≥ 3.</summary>
    private static long[] Indices(CaseContext ctx, long k, int range)
    {
        var index = new long[k];
        for (long i = 0; i < k; i++)
        {
            index[i] = ctx.Values.NextInt(range);
        }
        if (k >= 3)
        {
            index[k - 1] = index[0];
        }
        return index;
    }

    private static Tensor UploadIndex(CaseContext ctx, long[] index, Shape shape, DType indexType) =>
        ctx.Upload(Array.ConvertAll(index, v => (double)v), shape, indexType);

    private static IReadOnlyList<CaseOutput> RunIndexSelect(CaseContext ctx, DType dtype, DType indexType, int[] dims, int axis, int k)
    {
        var shape = new Shape(dims);
        double[] src = DataValues(ctx, dtype, shape.ElementCount);
        long[] index = Indices(ctx, k, dims[axis]);
        var tsrc = ctx.Upload(src, shape, dtype);
        var tindex = UploadIndex(ctx, index, new Shape(k), indexType);
        var tdst = ctx.Output(shape.With(axis, k), dtype);
        ctx.Ops.IndexSelect(tsrc, axis, tindex, tdst);
        double[] expected = RefTier1.IndexSelect(src, shape, axis, index);
        return [new CaseOutput("dst", dtype, ctx.Download(tdst), expected, ToleranceTable.For(KernelNames.IndexSelect))];
    }

    private static IReadOnlyList<CaseOutput> RunIndexAdd(CaseContext ctx, DType dtype, DType indexType, int[] dims, int axis, int k)
    {
        var dstShape = new Shape(dims);
        var srcShape = dstShape.With(axis, k);
        double[] dst = DataValues(ctx, dtype, dstShape.ElementCount);
        double[] src = DataValues(ctx, dtype, srcShape.ElementCount);
        long[] index = Indices(ctx, k, dims[axis]);
        var tdst = ctx.Upload(dst, dstShape, dtype);
        var tsrc = ctx.Upload(src, srcShape, dtype);
        var tindex = UploadIndex(ctx, index, new Shape(k), indexType);
        ctx.Ops.IndexAdd(tsrc, axis, tindex, tdst);
        double[] expected = RefTier1.IndexAdd(dst, dstShape, axis, index, src, out double[] scale, out int terms);
        return [new CaseOutput("dst", dtype, ctx.Download(tdst), expected, ToleranceTable.For(KernelNames.IndexAdd), terms, scale)];
    }

    private static IReadOnlyList<CaseOutput> RunGather(CaseContext ctx, DType dtype, DType indexType, int[] dims, int axis, int k)
    {
        var srcShape = new Shape(dims);
        var indexShape = srcShape.With(axis, k);
        double[] src = DataValues(ctx, dtype, srcShape.ElementCount);
        long[] index = Indices(ctx, indexShape.ElementCount, dims[axis]);
        var tsrc = ctx.Upload(src, srcShape, dtype);
        var tindex = UploadIndex(ctx, index, indexShape, indexType);
        var tdst = ctx.Output(indexShape, dtype);
        ctx.Ops.Gather(tsrc, axis, tindex, tdst);
        double[] expected = RefTier1.Gather(src, srcShape, axis, index, indexShape);
        return [new CaseOutput("dst", dtype, ctx.Download(tdst), expected, ToleranceTable.For(KernelNames.Gather))];
    }

    private static IReadOnlyList<CaseOutput> RunScatterAdd(CaseContext ctx, DType dtype, DType indexType, int[] dims, int axis, int k)
    {
        var dstShape = new Shape(dims);
        var indexShape = dstShape.With(axis, k);
        double[] dst = DataValues(ctx, dtype, dstShape.ElementCount);
        double[] src = DataValues(ctx, dtype, indexShape.ElementCount);
        long[] index = Indices(ctx, indexShape.ElementCount, dims[axis]);
        var tdst = ctx.Upload(dst, dstShape, dtype);
        var tsrc = ctx.Upload(src, indexShape, dtype);
        var tindex = UploadIndex(ctx, index, indexShape, indexType);
        ctx.Ops.ScatterAdd(tsrc, axis, tindex, tdst);
        double[] expected = RefTier1.ScatterAdd(dst, dstShape, axis, index, indexShape, src, out double[] scale, out int terms);
        return [new CaseOutput("dst", dtype, ctx.Download(tdst), expected, ToleranceTable.For(KernelNames.ScatterAdd), terms, scale)];
    }

    /// <summary>
    /// An index of <paramref name="bad"/> into an axis of 5 must raise ArgumentOutOfRangeException before anything
    /// is written: the case checks dst afterwards and raises InvalidOperationException (a wrong exception for the
    /// runner) when dst changed.
    /// </summary>
    private static KernelCase IndexOutOfRangeCase(string op, DType indexType, long bad) => new()
    {
        Id = $"{op}/f32/[4,5]/error-index-{bad}-{indexType.Name()}",
        Op = op,
        DType = DType.F32,
        AlsoNeeds = [indexType],
        Shape = "data[4,5] axis 1",
        Seed = Seeds.For(op, indexType, bad, "out-of-range"),
        Quick = bad == 5,
        Expects = typeof(ArgumentOutOfRangeException),
        Description = $"index {bad} outside [0, 5) raises ArgumentOutOfRangeException and leaves dst unchanged",
        Run = ctx =>
        {
            var dataShape = new Shape(4, 5);
            var src = ctx.Upload(ctx.Values.Floats(20, ValueKind.Normal), dataShape, DType.F32);
            bool vector = op is KernelNames.IndexSelect or KernelNames.IndexAdd;
            // The bad index is the last of several good ones, so a kernel that writes as it goes has written already.
            var indexShape = vector ? new Shape(5) : dataShape;
            long[] index = Indices(ctx, indexShape.ElementCount, 5);
            index[^1] = bad;
            var tindex = UploadIndex(ctx, index, indexShape, indexType);
            var dst = op switch
            {
                KernelNames.IndexSelect => ctx.Output(new Shape(4, 5), DType.F32),
                KernelNames.Gather => ctx.Output(dataShape, DType.F32),
                _ => ctx.Upload(ctx.Values.Floats(20, ValueKind.Normal), dataShape, DType.F32),
            };
            double[] before = ctx.Download(dst);
            try
            {
                switch (op)
                {
                    case KernelNames.IndexSelect: ctx.Ops.IndexSelect(src, 1, tindex, dst); break;
                    case KernelNames.IndexAdd: ctx.Ops.IndexAdd(src, 1, tindex, dst); break;
                    case KernelNames.Gather: ctx.Ops.Gather(src, 1, tindex, dst); break;
                    default: ctx.Ops.ScatterAdd(src, 1, tindex, dst); break;
                }
            }
            catch (ArgumentOutOfRangeException)
            {
                double[] after = ctx.Download(dst);
                for (int i = 0; i < before.Length; i++)
                {
                    if (BitConverter.DoubleToInt64Bits(before[i]) != BitConverter.DoubleToInt64Bits(after[i]))
                    {
                        throw new InvalidOperationException(
                            $"{op} raised ArgumentOutOfRangeException for index {bad} but had already written dst[{i}] ({before[i]:R} → {after[i]:R}); the contract says nothing is written");
                    }
                }
                throw;
            }
            return [];
        },
    };
}
