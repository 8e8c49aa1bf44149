using Hal.Conformance.Oracle;

namespace Hal.Conformance.Kernels.Catalogue;

// Binary ops with NumPy broadcasting. Shape legend: a ⊕ b → y, [r,c] rows × columns.
public static partial class Tier1Cases
{
    /// <summary>Broadcasting patterns: (a dims, b dims, label).</summary>
    private static readonly (int[] A, int[] B, string Label)[] BroadcastPatterns =
    [
        ([7, 33], [7, 33], "equal"),
        ([65], [65], "equal-1d"),
        ([5, 17], [17], "row-vector"),
        ([9, 1], [1, 16], "outer"),
        ([1], [31], "scalar-left"),
        ([31], [1], "scalar-right"),
        ([2, 1, 3, 1], [1, 4, 1, 5], "rank4-ones"),
        ([3, 1, 5], [4, 1], "rank3-rank2"),
        ([0, 5], [5], "empty-rows"),
        ([4, 0], [4, 1], "empty-columns"),
    ];

    private static string Dims(int[] d) => "[" + string.Join(",", d) + "]";

    private static IEnumerable<KernelCase> Binary()
    {
        foreach (var op in Enum.GetValues<BinaryOp>())
        {
            string name = KernelNames.Of(op);
            foreach (var dtype in FloatDTypes)
            {
                foreach (var (a, b, label) in BroadcastPatterns)
                {
                    foreach (var kind in new[] { ValueKind.Normal, ValueKind.Edge })
                    {
                        string shape = $"a{Dims(a)} b{Dims(b)}";
                        yield return new KernelCase
                        {
                            Id = $"{name}/{dtype.Name()}/{shape}/{label}-{Lower(kind)}",
                            Op = name,
                            DType = dtype,
                            Shape = shape,
                            Seed = Seeds.For(name, dtype, label, (int)kind),
                            Quick = label == "outer" && kind == ValueKind.Edge,
                            Description = $"y = a {name[7..]} b broadcast ({label}), {kind} inputs",
                            Run = ctx => RunBinary(ctx, op, dtype, a, b, kind, alias: null),
                        };
                    }
                }
            }
        }
    }

    /// <summary>Integer inputs for <paramref name="op"/> on <paramref name="dtype"/> whose exact results stay in range (the contract leaves overflow unspecified).</summary>
    private static double[] IntegerOperands(CaseContext ctx, BinaryOp op, DType dtype, long count, bool left)
    {
        var (min, max) = FloatFormat.IntegerRange(dtype);
        long limit = (long)Math.Min(max, 1L << 40);
        long lo, hi;
        switch (op)
        {
            case BinaryOp.Mul:
                hi = (long)Math.Floor(Math.Sqrt(limit));
                lo = dtype == DType.U8 ? 0 : -hi;
                break;
            case BinaryOp.Add:
            case BinaryOp.Sub when dtype != DType.U8:
                hi = limit / 2;
                lo = dtype == DType.U8 ? 0 : -hi;
                break;
            case BinaryOp.Sub:
                // U8: a in the upper half, b in the lower, so a − b ≥ 0.
                (lo, hi) = left ? (128L, 255L) : (0L, 127L);
                break;
            default:
                // Signed minimum excluded: min / −1 overflows.
                (lo, hi) = ((long)Math.Max(min + (dtype == DType.U8 ? 0 : 1), -limit), limit);
                break;
        }
        double[] v = ctx.Values.Integers(count, lo, hi);
        if (op == BinaryOp.Div && !left)
        {
            // Small divisors (zeros among them: x / 0 = 0) so that quotients are not all 0 or ±1.
            for (long i = 0; i < count; i++)
            {
                v[i] = ctx.Values.NextInt(3) == 0 ? ctx.Values.NextInt(2 * 9 + 1) - (dtype == DType.U8 ? 0 : 9) : v[i];
            }
        }
        return v;
    }

    private static IEnumerable<KernelCase> BinaryInts()
    {
        foreach (var op in Enum.GetValues<BinaryOp>().Where(o => o != BinaryOp.Pow))
        {
            string name = KernelNames.Of(op);
            foreach (var dtype in new[] { DType.I32, DType.I64, DType.I8, DType.U8 })
            {
                foreach (var (a, b, label) in BroadcastPatterns.Where(p => p.Label is "equal" or "row-vector" or "outer" or "rank4-ones" or "empty-rows" or "scalar-right"))
                {
                    string shape = $"a{Dims(a)} b{Dims(b)}";
                    yield return new KernelCase
                    {
                        Id = $"{name}/{dtype.Name()}/{shape}/{label}-integers",
                        Op = name,
                        DType = dtype,
                        Shape = shape,
                        Seed = Seeds.For(name, dtype, label, "integers"),
                        Quick = label == "outer",
                        Description = $"y = a {name[7..]} b on {dtype.Name()} ({label}); Div truncates toward zero and x / 0 = 0",
                        Run = ctx => RunBinary(ctx, op, dtype, a, b, ValueKind.Normal, alias: null),
                    };
                }
            }
        }
    }

    private static IEnumerable<KernelCase> BinaryAliased()
    {
        foreach (var op in Enum.GetValues<BinaryOp>())
        {
            string name = KernelNames.Of(op);
            foreach (var dtype in FloatDTypes)
            {
                yield return new KernelCase
                {
                    Id = $"{name}/{dtype.Name()}/a[5,17] b[17]/y-is-a",
                    Op = name,
                    DType = dtype,
                    Shape = "a[5,17] b[17]",
                    Seed = Seeds.For(name, dtype, "y-is-a"),
                    Description = "a = a op b in place (b broadcast)",
                    Run = ctx => RunBinary(ctx, op, dtype, [5, 17], [17], ValueKind.Edge, alias: 'a'),
                };
                yield return new KernelCase
                {
                    Id = $"{name}/{dtype.Name()}/a[17] b[5,17]/y-is-b",
                    Op = name,
                    DType = dtype,
                    Shape = "a[17] b[5,17]",
                    Seed = Seeds.For(name, dtype, "y-is-b"),
                    Description = "b = a op b in place (a broadcast)",
                    Run = ctx => RunBinary(ctx, op, dtype, [17], [5, 17], ValueKind.Edge, alias: 'b'),
                };
            }
        }
    }

    private static IReadOnlyList<CaseOutput> RunBinary(CaseContext ctx, BinaryOp op, DType dtype, int[] aDims, int[] bDims, ValueKind kind, char? alias)
    {
        var aShape = new Shape(aDims);
        var bShape = new Shape(bDims);
        double[] a, b;
        if (dtype.IsFloatingPoint())
        {
            a = ctx.Values.Floats(aShape.ElementCount, kind, dtype);
            b = ctx.Values.Floats(bShape.ElementCount, kind, dtype);
        }
        else
        {
            a = IntegerOperands(ctx, op, dtype, aShape.ElementCount, left: true);
            b = IntegerOperands(ctx, op, dtype, bShape.ElementCount, left: false);
        }
        var ta = ctx.Upload(a, aShape, dtype);
        var tb = ctx.Upload(b, bShape, dtype);
        var yShape = new Shape(RefTier1.BroadcastShape(aDims, bDims)!);
        var ty = alias switch { 'a' => ta, 'b' => tb, _ => ctx.Output(yShape, dtype) };
        ctx.Ops.Binary(op, ta, tb, ty);
        double[] expected = RefTier1.Broadcast(a, aDims, b, bDims, (x, z) => RefTier1.Binary(op, dtype, x, z));
        return [new CaseOutput("y", dtype, ctx.Download(ty), expected, ToleranceTable.For(KernelNames.Of(op)))];
    }
}
