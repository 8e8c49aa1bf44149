using Hal.Conformance.Oracle;

namespace Hal.Conformance.Kernels.Catalogue;

// Reductions and argmax along every axis. Shape legend: x[d0,d1,…] reduced along one axis to y with that axis = 1.
public static partial class Tier1Cases
{
    /// <summary>Shapes of rank 1 to 3: lengths 0, 1, vector widths ± 1, large reductions (4099, 16384), empty axes.</summary>
    private static readonly int[][] ReduceShapes =
    [
        [0], [1], [7], [8], [9], [15], [16], [17], [31], [33], [63], [64], [65], [4099], [16384],
        [5, 17], [17, 5], [1, 33], [0, 7], [7, 0], [3, 4099], [4099, 3],
        [3, 5, 7], [4, 9, 16], [2, 0, 3], [2, 65, 3],
    ];

    private static bool IsLarge(int[] dims) => dims.Aggregate(1L, (p, d) => p * d) > 4096;

    private static IEnumerable<KernelCase> Reductions()
    {
        foreach (var op in Enum.GetValues<ReduceOp>())
        {
            string name = KernelNames.Of(op);
            var dtypes = op == ReduceOp.Mean ? FloatDTypes : [.. FloatDTypes, DType.I32, DType.I64, DType.I8];
            foreach (var dtype in dtypes)
            {
                foreach (int[] dims in ReduceShapes)
                {
                    for (int axis = 0; axis < dims.Length; axis++)
                    {
                        // Integer Max/Min of an empty axis would be ±Inf, which no integer holds: the contract leaves it open.
                        if (!dtype.IsFloatingPoint() && (dims[axis] == 0 || IsLarge(dims) && dtype == DType.I8))
                        {
                            continue;
                        }
                        // The large reductions run at F32 and F64 only (16-bit and integers are covered by the smaller shapes).
                        if (IsLarge(dims) && dtype is not (DType.F32 or DType.F64 or DType.I32))
                        {
                            continue;
                        }
                        // Long float reductions also run on positive values: with no cancellation the sum bound γ(n)·Σ|x| is tight
                        // enough there that a few dropped terms (a vector tail skipped) exceed it.
                        var kinds = !dtype.IsFloatingPoint() ? [ValueKind.Normal]
                            : IsLarge(dims) ? new[] { ValueKind.Normal, ValueKind.Positive }
                            : [ValueKind.Normal, ValueKind.Edge];
                        foreach (var kind in kinds)
                        {
                            int a = axis;
                            string shape = Dims(dims);
                            yield return new KernelCase
                            {
                                Id = $"{name}/{dtype.Name()}/{shape}/axis{a}-{(dtype.IsFloatingPoint() ? Lower(kind) : "integers")}",
                                Op = name,
                                DType = dtype,
                                Shape = shape,
                                Seed = Seeds.For(name, dtype, shape, a, (int)kind),
                                Quick = shape == "[5,17]" && (a == 1 || kind == ValueKind.Edge),
                                Description = $"y = {name[7..]} of x along axis {a}, {(dtype.IsFloatingPoint() ? kind.ToString() : "integer")} inputs",
                                Run = ctx => RunReduce(ctx, op, dtype, dims, a, kind),
                            };
                        }
                    }
                }
            }
        }
    }

    /// <summary>Reduction inputs: normal values; Edge puts NaN, ±Inf, −0 and subnormals in some rows (not the largest finite values, whose partial sums may overflow in any order).</summary>
    private static double[] ReduceInputs(CaseContext ctx, DType dtype, long count, ValueKind kind)
    {
        if (!dtype.IsFloatingPoint())
        {
            // Sums of up to 4099 terms stay far inside I32; I8 uses −1..1 so that a 65-term sum stays within ±127.
            return dtype == DType.I8 ? ctx.Values.Integers(count, -1, 1) : ctx.Values.Integers(count, -100000, 100000);
        }
        double[] x = ctx.Values.Floats(count, kind == ValueKind.Positive ? ValueKind.Positive : ValueKind.Normal, dtype);
        if (kind == ValueKind.Edge && count > 0)
        {
            double sub = FloatFormat.MinSubnormal(dtype);
            double[] specials = [double.NaN, double.PositiveInfinity, double.NegativeInfinity, -0.0, sub, -3 * sub, 0.0];
            for (int s = 0; s < specials.Length; s++)
            {
                x[ctx.Values.NextInt(count)] = specials[s];
            }
        }
        return x;
    }

    private static IReadOnlyList<CaseOutput> RunReduce(CaseContext ctx, ReduceOp op, DType dtype, int[] dims, int axis, ValueKind kind)
    {
        var shape = new Shape(dims);
        double[] x = ReduceInputs(ctx, dtype, shape.ElementCount, kind);
        var tx = ctx.Upload(x, shape, dtype);
        var ty = ctx.Output(shape.With(axis, 1), dtype);
        ctx.Ops.Reduce(op, tx, axis, ty);
        double[] expected = RefTier1.Reduce(op, x, shape, axis, out double[] sumAbs);
        var rule = ToleranceTable.For(KernelNames.Of(op));
        return [new CaseOutput("y", dtype, ctx.Download(ty), expected, rule, dims[axis], rule.HasGamma ? sumAbs : null)];
    }

    private static IEnumerable<KernelCase> ArgMaxes()
    {
        int[][] shapes = [[1], [7], [16], [17], [65], [4099], [5, 17], [17, 5], [3, 5, 7], [2, 65, 3]];
        foreach (var dtype in new[] { DType.F32, DType.F64, DType.F16, DType.BF16, DType.I32, DType.I64, DType.I8, DType.U8 })
        {
            foreach (int[] dims in shapes)
            {
                if (IsLarge(dims) && dtype is not (DType.F32 or DType.I32))
                {
                    continue;
                }
                for (int axis = 0; axis < dims.Length; axis++)
                {
                    foreach (string variant in dtype.IsFloatingPoint() ? new[] { "normal", "ties", "nan" } : ["ties"])
                    {
                        int a = axis;
                        string shape = Dims(dims);
                        yield return new KernelCase
                        {
                            Id = $"{KernelNames.ArgMax}/{dtype.Name()}/{shape}/axis{a}-{variant}",
                            Op = KernelNames.ArgMax,
                            DType = dtype,
                            AlsoNeeds = [DType.I64],
                            Shape = shape,
                            Seed = Seeds.For("argmax", dtype, shape, a, variant),
                            Quick = shape == "[5,17]" && a == 1,
                            Description = $"first index of the maximum along axis {a} ({variant}); a NaN counts as the maximum",
                            Run = ctx => RunArgMax(ctx, dtype, dims, a, variant),
                        };
                    }
                }
            }
        }
    }

    private static IReadOnlyList<CaseOutput> RunArgMax(CaseContext ctx, DType dtype, int[] dims, int axis, string variant)
    {
        var shape = new Shape(dims);
        long count = shape.ElementCount;
        // "ties": few distinct values, so the maximum repeats and the first one must win.
        double[] x = variant == "normal" ? ctx.Values.Floats(count, ValueKind.Normal, dtype) : ctx.Values.Integers(count, dtype == DType.U8 ? 0 : -3, 3);
        if (variant == "nan")
        {
            for (long i = 0; i < Math.Max(1, count / 9); i++)
            {
                x[ctx.Values.NextInt(count)] = ctx.Values.NextInt(2) == 0 ? double.NaN : double.PositiveInfinity;
            }
        }
        var tx = ctx.Upload(x, shape, dtype);
        var ti = ctx.Output(shape.With(axis, 1), DType.I64);
        ctx.Ops.ArgMax(tx, axis, ti);
        return [new CaseOutput("indices", DType.I64, ctx.Download(ti), RefTier1.ArgMax(x, shape, axis), ToleranceTable.For(KernelNames.ArgMax))];
    }
}
