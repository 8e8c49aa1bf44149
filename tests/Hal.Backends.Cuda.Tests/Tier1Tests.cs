using Hal.Numerics;

namespace Hal.Backends.Cuda.Tests;

[Collection(EmulatorCollection.Name)]
public sealed class Tier1Tests(EmulatorFixture fx)
{
    [Theory]
    [InlineData(ReduceOp.Sum)]
    [InlineData(ReduceOp.Mean)]
    [InlineData(ReduceOp.Max)]
    [InlineData(ReduceOp.Min)]
    public void ReduceMatchesDoubleLoops(ReduceOp op)
    {
        const int seed = 3;
        foreach (DType dtype in Kit.FloatTypes)
        {
            foreach (int n in new[] { 0, 1, 7, 33 })
            {
                foreach (int axis in new[] { 0, 1, 2 })
                {
                    int[] dims = [2, n, 3];
                    var shape = new Shape(dims);
                    var x = Kit.Representable(Kit.Random(seed + n, (int)shape.ElementCount, -4, 4), dtype);
                    if (x.Length > 5)
                    {
                        x[5] = double.NaN;
                    }
                    using var xt = fx.Ops.FromArray(x, shape, dtype);
                    using var yt = fx.Ops.Empty(shape.With(axis, 1), dtype);
                    fx.Ops.Reduce(op, xt, axis, yt);
                    var y = fx.Ops.ToDoubleArray(yt);
                    int outer = 1, inner = 1;
                    for (int k = 0; k < axis; k++)
                    {
                        outer *= dims[k];
                    }
                    for (int k = axis + 1; k < 3; k++)
                    {
                        inner *= dims[k];
                    }
                    for (int o = 0; o < outer; o++)
                    {
                        for (int i = 0; i < inner; i++)
                        {
                            var values = Enumerable.Range(0, dims[axis]).Select(j => x[(((o * dims[axis]) + j) * inner) + i]).ToArray();
                            double exact = op switch
                            {
                                ReduceOp.Sum => values.Sum(),
                                ReduceOp.Mean => values.Sum() / values.Length,
                                ReduceOp.Max => values.Length == 0 ? double.NegativeInfinity : values.Any(double.IsNaN) ? double.NaN : values.Max(),
                                _ => values.Length == 0 ? double.PositiveInfinity : values.Any(double.IsNaN) ? double.NaN : values.Min(),
                            };
                            double want = Kit.Representable([exact], dtype)[0];
                            double got = y[(o * inner) + i];
                            // Accumulated in double: at most one rounding of the output dtype away from the exact sum
                            // (n ≤ 33 values of magnitude ≤ 4 leave the double error far below an F32 ulp; F64 gets n ulp).
                            double tolerance = dtype == DType.F64 ? values.Length : 1;
                            Assert.True(Kit.Ulps(got, want, dtype) <= tolerance, $"{op} {dtype.Name()} n={n} axis={axis} seed {seed + n}: {got:R} vs {want:R}");
                        }
                    }
                }
            }
        }
    }

    [Fact]
    public void IntegerSumWrapsAndMaxOfEmptyAxisIsTheTypeMinimum()
    {
        using var x = fx.Ops.FromArray(new long[] { 100, 100, 100 }, new Shape(1, 3), DType.I8);
        using var y = fx.Ops.Empty(new Shape(1, 1), DType.I8);
        fx.Ops.Reduce(ReduceOp.Sum, x, 1, y);
        Assert.Equal(44, fx.Ops.ToDoubleArray(y)[0]);
        using var empty = fx.Ops.Empty(new Shape(2, 0), DType.I32);
        using var m = fx.Ops.Empty(new Shape(2, 1), DType.I32);
        fx.Ops.Reduce(ReduceOp.Max, empty, 1, m);
        Assert.Equal([int.MinValue, int.MinValue], fx.Ops.ToDoubleArray(m));
    }

    [Fact]
    public void ArgMaxTakesTheFirstMaximumAndNaNWins()
    {
        double[] x = [1, 5, 5, 2, /* row 2 */ 3, double.NaN, 9, double.NaN];
        using var xt = fx.Ops.FromArray(x, new Shape(2, 4), DType.F32);
        using var it = fx.Ops.Empty(new Shape(2, 1), DType.I64);
        fx.Ops.ArgMax(xt, 1, it);
        Assert.Equal([1, 1], fx.Ops.ToDoubleArray(it));
        using var col = fx.Ops.Empty(new Shape(1, 4), DType.I64);
        fx.Ops.ArgMax(xt, 0, col);
        Assert.Equal([1, 1, 1, 1], fx.Ops.ToDoubleArray(col));
    }

    public static TheoryData<int, int, int, bool, bool> GemmCases => new()
    {
        { 1, 1, 1, false, false },
        { 7, 9, 5, false, false },
        { 17, 8, 33, true, false },
        { 16, 15, 31, false, true },
        { 9, 33, 17, true, true },
        { 3, 4, 0, false, false },
    };

    [Theory]
    [MemberData(nameof(GemmCases))]
    public void GemmMatchesDoubleLoops(int m, int n, int k, bool transA, bool transB)
    {
        const int seed = 17;
        const int batch = 2;
        foreach (DType dtype in Kit.FloatTypes)
        {
            var a = Kit.Representable(Kit.Random(seed, batch * m * k, -1, 1), dtype);
            var b = Kit.Representable(Kit.Random(seed + 1, k * n, -1, 1), dtype);
            var c0 = Kit.Representable(Kit.Random(seed + 2, batch * m * n, -1, 1), dtype);
            var bias = Kit.Representable(Kit.Random(seed + 3, n, -1, 1), dtype);
            using var at = fx.Ops.FromArray(a, transA ? new Shape(batch, k, m) : new Shape(batch, m, k), dtype);
            using var bt = fx.Ops.FromArray(b, transB ? new Shape(n, k) : new Shape(k, n), dtype);
            using var ct = fx.Ops.FromArray(c0, new Shape(batch, m, n), dtype);
            using var biasT = fx.Ops.FromArray(bias, new Shape(n), dtype);
            const double alpha = 0.75, beta = -0.5;
            fx.Ops.Gemm(at, bt, ct, transA, transB, alpha, beta, biasT);
            var c = fx.Ops.ToDoubleArray(ct);
            for (int p = 0; p < batch; p++)
            {
                for (int i = 0; i < m; i++)
                {
                    for (int j = 0; j < n; j++)
                    {
                        double sum = 0, magnitude = 0;
                        for (int q = 0; q < k; q++)
                        {
                            double av = transA ? a[(p * k * m) + (q * m) + i] : a[(p * m * k) + (i * k) + q];
                            double bv = transB ? b[(j * k) + q] : b[(q * n) + j];
                            sum += av * bv;
                            magnitude += Math.Abs(av * bv);
                        }
                        int at2 = (p * m * n) + (i * n) + j;
                        double want = (alpha * sum) + (beta * c0[at2]) + bias[j];
                        // F32 accumulation (F64 for F64): k roundings of at most eps·Σ|a·b| each, plus the final rounding.
                        double eps = dtype == DType.F64 ? DType.F64.Epsilon() : DType.F32.Epsilon();
                        double tolerance = (k * eps * magnitude) + (2 * dtype.Epsilon() * (Math.Abs(want) + 1));
                        Assert.True(Math.Abs(c[at2] - want) <= tolerance, $"gemm {dtype.Name()} {m}x{n}x{k} tA={transA} tB={transB} seed {seed} at ({p},{i},{j}): {c[at2]:R} vs {want:R}");
                    }
                }
            }
        }
    }

    [Fact]
    public void GemmWithBetaZeroIgnoresNaNInC()
    {
        using var a = fx.Ops.FromArray(new double[] { 1, 2 }, new Shape(1, 2), DType.F32);
        using var b = fx.Ops.FromArray(new double[] { 3, 4 }, new Shape(2, 1), DType.F32);
        using var c = fx.Ops.FromArray(new[] { double.NaN }, new Shape(1, 1), DType.F32);
        fx.Ops.Gemm(a, b, c);
        Assert.Equal(11, fx.Ops.ToDoubleArray(c)[0]);
    }

    [Theory]
    [InlineData(DType.I32)]
    [InlineData(DType.I64)]
    public void IndexSelectAndIndexAddFollowTheIndex(DType indexType)
    {
        double[] src = [.. Enumerable.Range(0, 12).Select(v => (double)v)];
        using var s = fx.Ops.FromArray(src, new Shape(3, 4), DType.F32);
        using var idx = fx.Ops.FromArray(new long[] { 2, 0, 2 }, new Shape(3), indexType);
        using var d = fx.Ops.Empty(new Shape(3, 3), DType.F32);
        fx.Ops.IndexSelect(s, 1, idx, d);
        Assert.Equal([2, 0, 2, 6, 4, 6, 10, 8, 10], fx.Ops.ToDoubleArray(d));
        using var acc = fx.Ops.Zeros(new Shape(3, 4), DType.F32);
        fx.Ops.IndexAdd(d, 1, idx, acc);
        // Column 2 receives source columns 0 and 2 (repeated index accumulates), column 0 receives column 1.
        Assert.Equal([0, 0, 4, 0, 4, 0, 12, 0, 8, 0, 20, 0], fx.Ops.ToDoubleArray(acc));
    }

    [Fact]
    public void GatherAndScatterAddFollowPyTorch()
    {
        using var src = fx.Ops.FromArray(new double[] { 1, 2, 3, 4, 5, 6 }, new Shape(2, 3), DType.F64);
        using var idx = fx.Ops.FromArray(new long[] { 2, 2, 0, 1 }, new Shape(2, 2), DType.I64);
        using var dst = fx.Ops.Empty(new Shape(2, 2), DType.F64);
        fx.Ops.Gather(src, 1, idx, dst);
        Assert.Equal([3, 3, 4, 5], fx.Ops.ToDoubleArray(dst));
        using var acc = fx.Ops.Zeros(new Shape(2, 3), DType.F64);
        fx.Ops.ScatterAdd(dst, 1, idx, acc);
        Assert.Equal([0, 0, 6, 4, 5, 0], fx.Ops.ToDoubleArray(acc));
    }

    [Fact]
    public void IndexOutOfRangeRaisesBeforeWriting()
    {
        using var s = fx.Ops.FromArray(new double[] { 1, 2, 3 }, new Shape(3), DType.F32);
        using var idx = fx.Ops.FromArray(new long[] { 0, 3 }, new Shape(2), DType.I64);
        using var d = fx.Ops.FromArray(new double[] { 7, 7 }, new Shape(2), DType.F32);
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => fx.Ops.IndexSelect(s, 0, idx, d));
        Assert.Contains("position 1", e.Message);
        Assert.Equal([7, 7], fx.Ops.ToDoubleArray(d));
    }

    [Theory]
    [InlineData(DType.F32, 0UL)]
    [InlineData(DType.F32, 3UL)]
    [InlineData(DType.F64, 5UL)]
    [InlineData(DType.BF16, 1UL)]
    [InlineData(DType.F16, 2UL)]
    public void UniformReproducesPhiloxBitForBit(DType dtype, ulong offset)
    {
        const ulong seed = 0x1234_5678_9ABC_DEF0UL;
        foreach (int n in new[] { 1, 7, 33 })
        {
            using var t = fx.Ops.Empty(new Shape(n), dtype);
            fx.Ops.RandomUniform(t, seed, offset, -2, 3);
            var got = fx.Ops.ToDoubleArray(t);
            for (int i = 0; i < n; i++)
            {
                double want = dtype == DType.F64
                    ? -2 + (5.0 * Philox.ToUnit(Philox.Raw(seed, offset + (ulong)i)))
                    : Kit.Representable([Philox.Uniform(seed, offset + (ulong)i, -2f, 3f)], dtype)[0];
                Assert.True(Kit.Same(got[i], want), $"uniform {dtype.Name()} seed {seed} offset {offset} i={i}: {got[i]:R} vs {want:R}");
            }
        }
    }

    [Fact]
    public void NormalMatchesPhiloxWithinOneUlp()
    {
        const ulong seed = 99;
        using var t = fx.Ops.Empty(new Shape(33), DType.F32);
        fx.Ops.RandomNormal(t, seed, 6, 0.5, 2);
        var got = fx.Ops.ToDoubleArray(t);
        for (int i = 0; i < got.Length; i++)
        {
            double want = Philox.Normal(seed, 6 + (ulong)i, 0.5f, 2f);
            // The spec allows transcendental differences; both round Box–Muller once or a few times in F32 → a few ulp.
            Assert.True(Kit.Ulps(got[i], want, DType.F32) <= 8 || Math.Abs(got[i] - want) < 1e-6, $"normal seed {seed} i={i}: {got[i]:R} vs {want:R}");
        }
    }
}
