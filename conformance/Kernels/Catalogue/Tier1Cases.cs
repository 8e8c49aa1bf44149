using Hal.Conformance.Oracle;

namespace Hal.Conformance.Kernels.Catalogue;

/// <summary>Tier-1 kernels: element-wise, casts, reductions, GEMM-free index ops. Shape legend: n elements, [r,c] rows × columns.</summary>
public static partial class Tier1Cases
{
    /// <summary>Float dtypes, in report order.</summary>
    public static readonly DType[] FloatDTypes = [DType.F32, DType.F64, DType.F16, DType.BF16];

    /// <summary>Signed integer dtypes that Neg/Abs/Relu take.</summary>
    public static readonly DType[] SignedIntDTypes = [DType.I32, DType.I64, DType.I8];

    /// <summary>All tier-1 cases.</summary>
    public static IEnumerable<KernelCase> All() =>
        Fills().Concat(Copies()).Concat(Casts())
            .Concat(Unary()).Concat(UnaryInts()).Concat(UnaryInPlace())
            .Concat(Binary()).Concat(BinaryInts()).Concat(BinaryAliased())
            .Concat(Reductions()).Concat(ArgMaxes())
            .Concat(IndexCases())
            .Concat(Errors());

    /// <summary>Element counts around vector widths and tiles: 0, 1, primes, 2^k ± 1.</summary>
    public static readonly int[] Lengths = [0, 1, 7, 8, 9, 15, 16, 17, 31, 33, 63, 64, 65, 127, 257, 1031];

    /// <summary>The value kinds each unary op is checked with: Normal and Edge, + Positive for ops defined on x &gt; 0, + Large for exp-based ops.</summary>
    public static ValueKind[] KindsFor(UnaryOp op) => op switch
    {
        UnaryOp.Log or UnaryOp.Sqrt or UnaryOp.Rsqrt or UnaryOp.Reciprocal => [ValueKind.Normal, ValueKind.Edge, ValueKind.Positive],
        UnaryOp.Exp or UnaryOp.Tanh or UnaryOp.Sigmoid or UnaryOp.Silu or UnaryOp.GeluErf or UnaryOp.GeluTanh => [ValueKind.Normal, ValueKind.Edge, ValueKind.Large],
        _ => [ValueKind.Normal, ValueKind.Edge],
    };

    private static string Lower(ValueKind kind) => kind.ToString().ToLowerInvariant();

    private static IEnumerable<KernelCase> Unary()
    {
        foreach (var op in Enum.GetValues<UnaryOp>())
        {
            string name = KernelNames.Of(op);
            foreach (var dtype in FloatDTypes)
            {
                foreach (int n in Lengths)
                {
                    foreach (var kind in KindsFor(op))
                    {
                        ulong seed = Seeds.For(name, dtype, n, (int)kind);
                        yield return new KernelCase
                        {
                            Id = $"{name}/{dtype.Name()}/[{n}]/{Lower(kind)}",
                            Op = name,
                            DType = dtype,
                            Shape = $"[{n}]",
                            Seed = seed,
                            Quick = n == 17 && kind != ValueKind.Normal,
                            Description = $"y = {name}(x), {kind} inputs",
                            Run = ctx => RunUnary(ctx, op, dtype, n, kind, inPlace: false),
                        };
                    }
                }
            }
        }
    }

    private static IEnumerable<KernelCase> UnaryInPlace()
    {
        foreach (var op in Enum.GetValues<UnaryOp>())
        {
            string name = KernelNames.Of(op);
            foreach (var dtype in FloatDTypes)
            {
                const int n = 33;
                yield return new KernelCase
                {
                    Id = $"{name}/{dtype.Name()}/[{n}]/edge-in-place",
                    Op = name,
                    DType = dtype,
                    Shape = $"[{n}]",
                    Seed = Seeds.For(name, dtype, n, "in-place"),
                    Description = $"x = {name}(x): y is the same view as x",
                    Run = ctx => RunUnary(ctx, op, dtype, n, ValueKind.Edge, inPlace: true),
                };
            }
        }
    }

    private static IReadOnlyList<CaseOutput> RunUnary(CaseContext ctx, UnaryOp op, DType dtype, int n, ValueKind kind, bool inPlace)
    {
        double[] x = ctx.Values.Floats(n, kind, dtype);
        var tx = ctx.Upload(x, new Shape(n), dtype);
        var ty = inPlace ? tx : ctx.Output(new Shape(n), dtype);
        ctx.Ops.Unary(op, tx, ty);
        double[] expected = Array.ConvertAll(x, v => RefScalar.Unary(op, v));
        var rule = ToleranceTable.For(KernelNames.Of(op));
        double[]? scale = rule.HasGamma ? Array.ConvertAll(x, Math.Abs) : null;
        return [new CaseOutput("y", dtype, ctx.Download(ty), expected, rule, 0, scale)];
    }

    /// <summary>
    /// Neg, Abs, Relu and Square on signed integers (values clear of the type's minimum, whose negation overflows;
    /// for Square, within ±√max, since integer overflow is not specified).
    /// </summary>
    private static IEnumerable<KernelCase> UnaryInts()
    {
        foreach (var op in new[] { UnaryOp.Neg, UnaryOp.Abs, UnaryOp.Relu, UnaryOp.Square })
        {
            string name = KernelNames.Of(op);
            foreach (var dtype in SignedIntDTypes)
            {
                foreach (int n in new[] { 0, 1, 15, 16, 17, 63, 64, 65, 257 })
                {
                    yield return new KernelCase
                    {
                        Id = $"{name}/{dtype.Name()}/[{n}]/integers",
                        Op = name,
                        DType = dtype,
                        Shape = $"[{n}]",
                        Seed = Seeds.For(name, dtype, n),
                        Quick = n == 17,
                        Description = $"y = {name}(x) on {dtype.Name()} values from min + 1 to max",
                        Run = ctx =>
                        {
                            var (min, max) = FloatFormat.IntegerRange(dtype);
                            // I64: stay within doubles' exact integers (the host values are doubles).
                            long lo = dtype == DType.I64 ? -(1L << 53) : (long)min + 1;
                            long hi = dtype == DType.I64 ? 1L << 53 : (long)max;
                            if (op == UnaryOp.Square)
                            {
                                // Squares stay representable (and, for I64, exact in a double).
                                hi = dtype == DType.I64 ? 1L << 26 : (long)Math.Floor(Math.Sqrt(max));
                                lo = -hi;
                            }
                            double[] x = ctx.Values.Integers(n, lo, hi);
                            if (n > 2)
                            {
                                x[0] = hi;
                                x[1] = lo;
                                x[2] = 0;
                            }
                            var tx = ctx.Upload(x, new Shape(n), dtype);
                            var ty = ctx.Output(new Shape(n), dtype);
                            ctx.Ops.Unary(op, tx, ty);
                            double[] expected = Array.ConvertAll(x, v => op switch { UnaryOp.Neg => -v, UnaryOp.Abs => Math.Abs(v), UnaryOp.Square => v * v, _ => Math.Max(v, 0) });
                            return [new CaseOutput("y", dtype, ctx.Download(ty), expected, ToleranceTable.For(name))];
                        },
                    };
                }
            }
        }
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
