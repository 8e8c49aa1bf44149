using Hal.Conformance.Oracle;

namespace Hal.Conformance.Kernels.Catalogue;

/// <summary>Tier-1 kernels: element-wise, casts, reductions, GEMM-free index ops. Shape legend: n elements, [r,c] rows × columns.</summary>
public static partial class Tier1Cases
{
    /// <summary>Float dtypes, in report order.</summary>
    public static readonly DType[] FloatDTypes = [DType.F32, DType.F64, DType.F16, DType.BF16];

    /// <summary>All tier-1 cases.</summary>
    public static IEnumerable<KernelCase> All() => Unary().Concat(UnaryErrors());

    /// <summary>Element counts around vector widths and tiles: 0, 1, primes, 2^k ± 1.</summary>
    public static readonly int[] Lengths = [0, 1, 7, 8, 9, 15, 16, 17, 31, 33, 63, 64, 65, 127, 257, 1031];

    private static IEnumerable<KernelCase> Unary()
    {
        foreach (var op in new[] { UnaryOp.Exp })
        {
            string name = KernelNames.Of(op);
            foreach (var dtype in FloatDTypes)
            {
                foreach (int n in Lengths)
                {
                    foreach (var kind in new[] { ValueKind.Normal, ValueKind.Edge })
                    {
                        ulong seed = Seeds.For(name, dtype, n, (int)kind);
                        yield return new KernelCase
                        {
                            Id = $"{name}/{dtype.Name()}/[{n}]/{kind.ToString().ToLowerInvariant()}",
                            Op = name,
                            DType = dtype,
                            Shape = $"[{n}]",
                            Seed = seed,
                            Quick = n is 0 or 17 or 65,
                            Description = $"y = {name}(x), {kind} inputs",
                            Run = ctx => RunUnary(ctx, op, dtype, n, kind),
                        };
                    }
                }
            }
        }
    }

    private static IReadOnlyList<CaseOutput> RunUnary(CaseContext ctx, UnaryOp op, DType dtype, int n, ValueKind kind)
    {
        double[] x = ctx.Values.Floats(n, kind, dtype);
        var tx = ctx.Upload(x, new Shape(n), dtype);
        var ty = ctx.Output(new Shape(n), dtype);
        ctx.Ops.Unary(op, tx, ty);
        double[] expected = Array.ConvertAll(x, v => RefScalar.Unary(op, v));
        var rule = ToleranceTable.For(KernelNames.Of(op));
        double[]? scale = rule.HasGamma ? Array.ConvertAll(x, Math.Abs) : null;
        return [new CaseOutput("y", dtype, ctx.Download(ty), expected, rule, 0, scale)];
    }

    private static IEnumerable<KernelCase> UnaryErrors()
    {
        string name = KernelNames.Of(UnaryOp.Exp);
        yield return new KernelCase
        {
            Id = $"{name}/f32/x[4]-y[5]/error-shape",
            Op = name,
            DType = DType.F32,
            Shape = "x[4] y[5]",
            Quick = true,
            Expects = typeof(ShapeMismatchException),
            Description = "y's shape differs from x's: ShapeMismatchException",
            Run = ctx =>
            {
                var x = ctx.Upload(new double[4], new Shape(4), DType.F32);
                var y = ctx.Output(new Shape(5), DType.F32);
                ctx.Ops.Unary(UnaryOp.Exp, x, y);
                return [];
            },
        };
    }
}

/// <summary>Case seeds: a stable hash (FNV-1a, 64-bit) of the case's identity, so ids and seeds never drift apart.</summary>
public static class Seeds
{
    /// <summary>The seed of the case identified by these parts.</summary>
    public static ulong For(params object[] parts)
    {
        ulong h = 14695981039346656037UL;
        foreach (object p in parts)
        {
            foreach (char ch in Convert.ToString(p, System.Globalization.CultureInfo.InvariantCulture) + "|")
            {
                h = (h ^ ch) * 1099511628211UL;
            }
        }
        return h;
    }
}
