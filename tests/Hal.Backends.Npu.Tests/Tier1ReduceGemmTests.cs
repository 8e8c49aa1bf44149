namespace Hal.Backends.Npu.Tests;

/// <summary>Reductions, ArgMax and GEMM on npu:0 against plain double loops and the CPU backend.</summary>
[Collection("npu")]
public sealed class Tier1ReduceGemmTests(NpuFixture f)
{
    private const ulong Seed = 23;

    [Theory]
    [InlineData(ReduceOp.Sum)]
    [InlineData(ReduceOp.Mean)]
    [InlineData(ReduceOp.Max)]
    [InlineData(ReduceOp.Min)]
    public void ReduceEachAxisMatchesPlainLoops(ReduceOp op)
    {
        foreach (int n in new[] { 0, 1, 7, 9, 33 })
        {
            var shape = new Shape(3, n, 4);
            var x = Kit.Random((int)shape.ElementCount, Seed + (ulong)n);
            if (x.Length > 5)
            {
                x[5] = double.NaN;
            }
            foreach (int axis in new[] { 0, 1, 2 })
            {
                using var xt = f.NpuOps.FromArray(x, shape);
                using var yt = f.NpuOps.Empty(shape.With(axis, 1));
                f.NpuOps.Reduce(op, xt, axis, yt);
                var expected = ReduceReference(op, x, shape, axis);
                // F32 accumulation of ≤ 33 terms of magnitude ≤ 2: relative 1e-5 bounds the summation-order difference.
                Kit.Close(expected, f.NpuOps.ToDoubleArray(yt), 1e-5, 1e-5, $"{op} axis {axis} shape {shape} seed={Seed + (ulong)n}");
            }
        }
    }

    private static double[] ReduceReference(ReduceOp op, double[] x, Shape shape, int axis)
    {
        long outer = shape.Product(0, axis);
        long n = shape[axis];
        long inner = shape.Product(axis + 1, shape.Rank);
        var y = new double[outer * inner];
        for (long o = 0; o < outer; o++)
        {
            for (long i = 0; i < inner; i++)
            {
                double acc = op switch { ReduceOp.Max => double.NegativeInfinity, ReduceOp.Min => double.PositiveInfinity, _ => 0 };
                for (long k = 0; k < n; k++)
                {
                    double v = (float)x[(((o * n) + k) * inner) + i];
                    acc = op switch
                    {
                        ReduceOp.Max => double.IsNaN(v) || double.IsNaN(acc) ? double.NaN : Math.Max(acc, v),
                        ReduceOp.Min => double.IsNaN(v) || double.IsNaN(acc) ? double.NaN : Math.Min(acc, v),
                        _ => acc + v,
                    };
                }
                y[(o * inner) + i] = op == ReduceOp.Mean ? acc / n : acc;
            }
        }
        return y;
    }

    [Fact]
    public void ArgMaxTakesTheFirstMaximumAndNaNWins()
    {
        using var x = f.NpuOps.FromArray(new double[] { 1, 5, 5, 2, /**/ 3, double.PositiveInfinity, double.NaN, double.NaN, /**/ -1, -1, -1, -1 }, new Shape(3, 4));
        using var i = f.NpuOps.Empty(new Shape(3, 1), DType.I64);
        f.NpuOps.ArgMax(x, 1, i);
        Assert.Equal(new double[] { 1, 2, 0 }, f.NpuOps.ToDoubleArray(i));
    }

    public static TheoryData<int, bool, bool> GemmShapes()
    {
        var data = new TheoryData<int, bool, bool>();
        foreach (int s in new[] { 0, 1, 7, 8, 9, 17, 33, 65 })
        {
            data.Add(s, false, false);
        }
        data.Add(9, true, false);
        data.Add(17, false, true);
        data.Add(33, true, true);
        return data;
    }

    [Theory]
    [MemberData(nameof(GemmShapes))]
    public void GemmMatchesPlainLoopsWithAlphaBetaAndBias(int size, bool transA, bool transB)
    {
        int m = size;
        int n = size + 2;
        int k = Math.Max(size - 1, 0);
        var a = Kit.Random(m * k, Seed);
        var b = Kit.Random(k * n, Seed + 1);
        var c = Kit.Random(m * n, Seed + 2);
        var bias = Kit.Random(n, Seed + 3);
        const double alpha = 0.5;
        const double beta = 2;
        var expected = new double[m * n];
        for (int i = 0; i < m; i++)
        {
            for (int j = 0; j < n; j++)
            {
                double acc = 0;
                for (int p = 0; p < k; p++)
                {
                    double av = transA ? a[(p * m) + i] : a[(i * k) + p];
                    double bv = transB ? b[(j * k) + p] : b[(p * n) + j];
                    acc += (float)av * (double)(float)bv;
                }
                expected[(i * n) + j] = (alpha * acc) + (beta * (float)c[(i * n) + j]) + (float)bias[j];
            }
        }
        using var at = f.NpuOps.FromArray(a, transA ? new Shape(k, m) : new Shape(m, k));
        using var bt = f.NpuOps.FromArray(b, transB ? new Shape(n, k) : new Shape(k, n));
        using var ct = f.NpuOps.FromArray(c, new Shape(m, n));
        using var biast = f.NpuOps.FromArray(bias, new Shape(n));
        f.NpuOps.Gemm(at, bt, ct, transA, transB, alpha, beta, biast);
        // F32 dot products of ≤ 64 terms with |terms| ≤ 4: relative 1e-5 plus absolute 1e-4 covers accumulation order.
        Kit.Close(expected, f.NpuOps.ToDoubleArray(ct), 1e-5, 1e-4, $"gemm {m}x{n}x{k} tA={transA} tB={transB} seed={Seed}");
    }

    [Theory]
    [InlineData(DType.F64)]
    [InlineData(DType.F16)]
    [InlineData(DType.BF16)]
    public void BatchedGemmWithBroadcastBatchMatchesCpu(DType dtype)
    {
        // a [2, 3, 9, 5] · b [5, 7] (batch 1, broadcast) → c [2, 3, 9, 7]; beta = 0 ignores NaN in c.
        var a = Kit.Random(2 * 3 * 9 * 5, Seed);
        var b = Kit.Random(5 * 7, Seed + 1);
        var (an, ac) = Kit.Both(f, a, new Shape(2, 3, 9, 5), dtype);
        var (bn, bc) = Kit.Both(f, b, new Shape(5, 7), dtype);
        using var _1 = an;
        using var _2 = ac;
        using var _3 = bn;
        using var _4 = bc;
        using var cn = f.NpuOps.Empty(new Shape(2, 3, 9, 7), dtype);
        using var cc = f.CpuOps.Empty(new Shape(2, 3, 9, 7), dtype);
        f.NpuOps.Fill(cn, double.NaN);
        f.NpuOps.Gemm(an, bn, cn);
        f.CpuOps.Gemm(ac, bc, cc);
        // Both accumulate in F32 (F64 for F64) and round once to the storage type: one storage ulp apart at most.
        double rel = dtype == DType.F64 ? 1e-14 : dtype.Epsilon();
        Kit.Close(f.CpuOps.ToDoubleArray(cc), f.NpuOps.ToDoubleArray(cn), rel, rel, $"batched gemm {dtype.Name()} seed={Seed}");
    }
}
