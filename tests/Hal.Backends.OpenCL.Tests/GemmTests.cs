using static Hal.Backends.OpenCL.Tests.OpenClTestKit;

namespace Hal.Backends.OpenCL.Tests;

// GEMM on opencl:0 against plain double loops: sizes around the tile (16/32/64) and the vload4 width, transposes,
// alpha/beta, bias, broadcast batches, every float dtype.
public class GemmTests
{
    private static readonly Lazy<Ops[]> Kernels = new(() =>
    {
        // Both GEMM kernels on one device each: the work-group-tiled one (GPUs) and the barrier-free one (CPU devices).
        var ops = new Ops[2];
        for (int i = 0; i < 2; i++)
        {
            var device = new OpenClBackend().Open(0);
            ((OpenClKernels)device.Kernels).UseDirectGemm = i == 1;
            ops[i] = new Ops(device);
        }
        return ops;
    });

    /// <summary>c[b] = alpha·op(a[b])·op(b[b]) + beta·c0[b] + bias, in double.</summary>
    private static double[] Reference(double[] a, double[] b, double[] c0, double[]? bias, int batch, bool aBatched, bool bBatched,
        int m, int n, int k, bool transA, bool transB, double alpha, double beta)
    {
        var c = new double[batch * m * n];
        for (int p = 0; p < batch; p++)
        {
            int ao = aBatched ? p * m * k : 0, bo = bBatched ? p * k * n : 0;
            for (int i = 0; i < m; i++)
            {
                for (int j = 0; j < n; j++)
                {
                    double s = 0;
                    for (int q = 0; q < k; q++)
                    {
                        double x = transA ? a[ao + (q * m) + i] : a[ao + (i * k) + q];
                        double y = transB ? b[bo + (j * k) + q] : b[bo + (q * n) + j];
                        s += x * y;
                    }
                    int at = (p * m * n) + (i * n) + j;
                    c[at] = (alpha * s) + (beta == 0 ? 0 : beta * c0[at]) + (bias?[j] ?? 0);
                }
            }
        }
        return c;
    }

    private static void Check(DType dtype, int batch, bool aBatched, bool bBatched, int m, int n, int k, bool transA, bool transB,
        double alpha, double beta, bool withBias, int seed)
    {
        foreach (var ops in Kernels.Value)
        {
            Check(ops, dtype, batch, aBatched, bBatched, m, n, k, transA, transB, alpha, beta, withBias, seed);
        }
    }

    private static void Check(Ops ops, DType dtype, int batch, bool aBatched, bool bBatched, int m, int n, int k, bool transA, bool transB,
        double alpha, double beta, bool withBias, int seed)
    {
        var a = Rounded(RandomValues(seed, (aBatched ? batch : 1) * m * k, -1, 1), dtype);
        var b = Rounded(RandomValues(seed + 1, (bBatched ? batch : 1) * k * n, -1, 1), dtype);
        var c0 = Rounded(RandomValues(seed + 2, batch * m * n, -1, 1), dtype);
        var bias = withBias ? Rounded(RandomValues(seed + 3, n, -1, 1), dtype) : null;
        Shape aShape = transA ? new(aBatched ? batch : 1, k, m) : new(aBatched ? batch : 1, m, k);
        Shape bShape = transB ? new(bBatched ? batch : 1, n, k) : new(bBatched ? batch : 1, k, n);
        using var ta = ops.FromArray(a, aShape, dtype);
        using var tb = ops.FromArray(b, bShape, dtype);
        using var tc = ops.FromArray(c0, new Shape(batch, m, n), dtype);
        using var tbias = bias is null ? null : ops.FromArray(bias, new Shape(n), dtype);
        ops.Gemm(ta, tb, tc, transA, transB, alpha, beta, tbias);
        string kernel = ((OpenClKernels)ops.Device.Kernels).UseDirectGemm ? "direct" : "tiled";
        var expected = Reference(a, b, c0, bias, batch, aBatched, bBatched, m, n, k, transA, transB, alpha, beta);
        // Tolerance: k products of |x|,|y| ≤ 1 accumulate at most k·eps(acc) of error relative to Σ|x·y| ≤ k, plus
        // one rounding of the result to the dtype (16-bit dtypes accumulate in F32).
        double accEps = dtype == DType.F64 ? Math.Pow(2, -52) : Math.Pow(2, -23);
        double atol = (2.0 * k * k * accEps) + 1e-12;
        Close(expected, ops.ToDoubleArray(tc), Tol(dtype, 2), atol,
            $"gemm ({kernel}) {dtype.Name()} batch={batch}({aBatched},{bBatched}) m={m} n={n} k={k} tA={transA} tB={transB} α={alpha} β={beta} bias={withBias} seed={seed}");
    }

    private static double[] Rounded(double[] v, DType dtype)
    {
        var t = CpuOps.FromArray(v, new Shape(v.Length), dtype);
        return CpuOps.ToDoubleArray(t);
    }

    [OpenClFact]
    public void SquareSizesAroundTheTilesMatchDoubleLoops()
    {
        foreach (int s in new[] { 1, 7, 8, 9, 15, 16, 17, 31, 33, 63, 64, 65, 129 })
        {
            Check(DType.F32, 1, true, true, s, s, s, false, false, 1, 0, false, seed: 100 + s);
        }
    }

    [OpenClFact]
    public void RectangularShapesTransposesAlphaBetaAndBias()
    {
        int seed = 7;
        foreach (var (m, n, k) in new[] { (1, 65, 3), (67, 1, 9), (5, 70, 33), (70, 5, 17), (33, 31, 1), (64, 128, 64), (3, 4, 0) })
        {
            foreach (bool ta in new[] { false, true })
            {
                foreach (bool tb in new[] { false, true })
                {
                    Check(DType.F32, 1, true, true, m, n, k, ta, tb, 0.5, 0, false, seed++);
                    Check(DType.F32, 1, true, true, m, n, k, ta, tb, 1.5, -2, true, seed++);
                }
            }
        }
    }

    [OpenClFact]
    public void BatchesBroadcastEitherOperand()
    {
        Check(DType.F32, 3, true, true, 9, 17, 5, false, false, 1, 0, true, seed: 1);
        Check(DType.F32, 3, false, true, 9, 17, 5, true, false, 1, 1, false, seed: 2);
        Check(DType.F32, 4, true, false, 65, 3, 70, false, true, 1, 0, false, seed: 3);
    }

    [OpenClFact]
    public void EveryFloatDTypeMatches()
    {
        foreach (var dtype in FloatDTypes())
        {
            Check(dtype, 2, true, true, 33, 65, 31, false, false, 1, 0.5, true, seed: 9);
            Check(dtype, 1, true, true, 64, 64, 64, true, true, 1, 0, false, seed: 10);
        }
    }

    [OpenClFact]
    public void BetaZeroIgnoresNaNInTheOutput()
    {
        foreach (var ops in Kernels.Value)
        {
            var a = ops.FromArray(new double[] { 1, 2, 3, 4 }, new Shape(2, 2));
            var c = ops.Full(new Shape(2, 2), double.NaN);
            ops.Gemm(a, a, c, beta: 0);
            Assert.Equal([7.0, 10, 15, 22], ops.ToDoubleArray(c));
        }
    }

    [OpenClFact]
    public void TilingOverrideGivesTheSameResults()
    {
        using var device = new OpenClBackend(new OpenClBackendOptions { GemmTiling = new GemmTiling(32, 16, 8, 8, 2) }).Open(0);
        var ops = new Ops(device);
        var a = RandomValues(4, 45 * 19, -1, 1);
        var b = RandomValues(5, 19 * 37, -1, 1);
        var c = ops.Empty(new Shape(45, 37));
        ops.Gemm(ops.FromArray(a, new Shape(45, 19)), ops.FromArray(b, new Shape(19, 37)), c);
        var expected = Reference(a, b, new double[45 * 37], null, 1, true, true, 45, 37, 19, false, false, 1, 0);
        // F32 accumulation over k = 19 terms of magnitude ≤ 1, one rounding: 19·2·2⁻²³ absolute.
        Close(expected, ops.ToDoubleArray(c), 0, 19 * 2 * Math.Pow(2, -23), "gemm with tiling 32,16,8,8,2 seed=4,5");
    }
}
