using Hal.Conformance.Oracle;

namespace Hal.Conformance.Kernels.Catalogue;

// GEMM (tier 1, one path): c = α·op(a)·op(b) + β·c + bias. Shapes: a [..., M, K] ([..., K, M] when transA),
// b [..., K, N] ([..., N, K] when transB), c [..., M, N], bias [N].
public static partial class Tier2Cases
{
    /// <summary>(M, N, K) around the CPU's register and cache tiles: 0, 1, primes, 2^k ± 1, and long reductions.</summary>
    private static readonly (int M, int N, int K)[] GemmSizes =
    [
        (1, 1, 1), (1, 7, 12), (7, 12, 13), (12, 1, 7), (16, 16, 16), (17, 31, 33), (31, 17, 65), (33, 65, 17),
        (65, 33, 31), (13, 7, 2048), (2, 9, 1031),
        // Empty extents: no rows, no columns, and K = 0 (c = β·c + bias: the sum over no products is 0).
        (0, 5, 3), (4, 0, 3), (4, 5, 0),
    ];

    /// <summary>One GEMM configuration: batch dims of a, b and c, transposes, α, β and bias.</summary>
    private sealed record GemmConfig(int[] BatchA, int[] BatchB, int[] BatchC, bool TransA, bool TransB, double Alpha, double Beta, bool Bias, string Variant);

    private static IEnumerable<KernelCase> Gemm()
    {
        foreach (var dtype in FloatDTypes)
        {
            foreach (var (m, n, k) in GemmSizes)
            {
                foreach (bool ta in new[] { false, true })
                {
                    foreach (bool tb in new[] { false, true })
                    {
                        string t = (ta ? "t" : "n") + (tb ? "t" : "n");
                        // β = 0 on a NaN-filled c: the contract says its contents are ignored, NaN included.
                        yield return GemmCase(dtype, m, n, k, new GemmConfig([], [], [], ta, tb, 1, 0, false, t),
                            quick: ((m, n, k) == (17, 31, 33) || k is 0 or 2048) && t == "nn");
                    }
                }
                yield return GemmCase(dtype, m, n, k, new GemmConfig([], [], [], false, true, -1.5, 0.5, true, "nt-alpha-beta-bias"),
                    quick: (m, n, k) == (7, 12, 13));
                yield return GemmCase(dtype, m, n, k, new GemmConfig([], [], [], true, false, 0.25, 1, false, "tn-beta1"), quick: false);
            }
            // Batched, with a and b each either batched like c or broadcast (batch 1 or no batch dims).
            foreach (var (m, n, k) in new[] { (7, 9, 17), (16, 17, 33) })
            {
                yield return GemmCase(dtype, m, n, k, new GemmConfig([2, 3], [2, 3], [2, 3], false, false, 1, 0, false, "batched"), quick: m == 7);
                yield return GemmCase(dtype, m, n, k, new GemmConfig([2, 3], [], [2, 3], false, true, 1, 0, true, "broadcast-b-bias"), quick: false);
                yield return GemmCase(dtype, m, n, k, new GemmConfig([1], [4], [4], true, false, 2, -1, false, "broadcast-a-beta"), quick: false);
                yield return GemmCase(dtype, m, n, k, new GemmConfig([], [1, 1], [3], true, true, 1, 0, false, "broadcast-both"), quick: false);
            }
        }
    }

    private static KernelCase GemmCase(DType dtype, int m, int n, int k, GemmConfig g, bool quick)
    {
        int[] aShape = [.. g.BatchA, g.TransA ? k : m, g.TransA ? m : k];
        int[] bShape = [.. g.BatchB, g.TransB ? n : k, g.TransB ? k : n];
        int[] cShape = [.. g.BatchC, m, n];
        string shape = $"a{Dims(aShape)} b{Dims(bShape)} c{Dims(cShape)}";
        string variant = g.Variant;
        string name = KernelNames.Gemm;
        return new KernelCase
        {
            Id = $"{name}/{dtype.Name()}/{shape}/{variant}",
            Op = name,
            DType = dtype,
            Shape = shape,
            Seed = Seeds.For(name, dtype, shape, variant),
            Quick = quick,
            Description = $"c = {g.Alpha}·op(a)·op(b) + {g.Beta}·c{(g.Bias ? " + bias" : "")}, transA={g.TransA}, transB={g.TransB}" +
                (g.Beta == 0 ? "; c starts as NaN (β = 0 must ignore it)" : ""),
            Run = ctx => RunGemm(ctx, dtype, aShape, bShape, cShape, m, n, k, g),
        };
    }

    private static IReadOnlyList<CaseOutput> RunGemm(CaseContext ctx, DType dtype, int[] aShape, int[] bShape, int[] cShape, int m, int n, int k, GemmConfig g)
    {
        var sa = new Shape(aShape);
        var sb = new Shape(bShape);
        var sc = new Shape(cShape);
        double[] a = ctx.Values.Floats(sa.ElementCount, ValueKind.Normal, dtype);
        double[] b = ctx.Values.Floats(sb.ElementCount, ValueKind.Normal, dtype);
        var ta = ctx.Upload(a, sa, dtype);
        var tb = ctx.Upload(b, sb, dtype);
        double[]? c = null;
        Tensor tc;
        if (g.Beta != 0)
        {
            c = ctx.Values.Floats(sc.ElementCount, ValueKind.Normal, dtype);
            tc = ctx.Upload(c, sc, dtype);
        }
        else
        {
            tc = ctx.Output(sc, dtype);
        }
        double[]? bias = null;
        Tensor? tbias = null;
        if (g.Bias)
        {
            bias = ctx.Values.Floats(n, ValueKind.Normal, dtype);
            tbias = ctx.Upload(bias, new Shape(n), dtype);
        }
        ctx.Ops.Gemm(ta, tb, tc, g.TransA, g.TransB, g.Alpha, g.Beta, tbias);
        int batch = g.BatchC.Aggregate(1, (x, y) => x * y);
        int batchA = g.BatchA.Aggregate(1, (x, y) => x * y);
        int batchB = g.BatchB.Aggregate(1, (x, y) => x * y);
        var (expected, scale) = RefGemm.Gemm(a, b, c, bias, batch, batchA, batchB, m, n, k, g.TransA, g.TransB, g.Alpha, g.Beta);
        return [Out("c", KernelNames.Gemm, dtype, ctx.Download(tc), expected, k, scale)];
    }
}
