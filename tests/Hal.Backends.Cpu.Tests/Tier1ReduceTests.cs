namespace Hal.Backends.Cpu.Tests;

public sealed class Tier1ReduceTests(CpuFixture fx) : IClassFixture<CpuFixture>
{
    private static readonly DType[] Numeric = [DType.F32, DType.F64, DType.F16, DType.BF16, DType.I32, DType.I64, DType.I8, DType.U8];

    /// <summary>Reference along one axis in double: y[o, 0, i] over x[o, k, i].</summary>
    private static double[] RefReduce(ReduceOp op, double[] x, Shape s, int axis)
    {
        long outer = s.Product(0, axis), n = s[axis], inner = s.Product(axis + 1, s.Rank);
        var y = new double[outer * inner];
        for (long o = 0; o < outer; o++)
        {
            for (long i = 0; i < inner; i++)
            {
                double acc = op switch { ReduceOp.Max => double.NegativeInfinity, ReduceOp.Min => double.PositiveInfinity, _ => 0 };
                for (long k = 0; k < n; k++)
                {
                    double v = x[(((o * n) + k) * inner) + i];
                    acc = op switch
                    {
                        ReduceOp.Max => double.IsNaN(acc) || double.IsNaN(v) ? double.NaN : Math.Max(acc, v),
                        ReduceOp.Min => double.IsNaN(acc) || double.IsNaN(v) ? double.NaN : Math.Min(acc, v),
                        _ => acc + v,
                    };
                }
                y[(o * inner) + i] = op == ReduceOp.Mean ? acc / n : acc;
            }
        }
        return y;
    }

    /// <summary>Sum of |x| along the axis, for the summation error bound.</summary>
    private static double[] AbsSum(double[] x, Shape s, int axis) => RefReduce(ReduceOp.Sum, Array.ConvertAll(x, Math.Abs), s, axis);

    private void Check(ReduceOp op, DType dtype, Shape shape, int axis, int seed, double[]? values = null)
    {
        bool isFloat = dtype.IsFloatingPoint();
        var x = values ?? Kit.Random(seed, (int)shape.ElementCount, isFloat ? -10 : dtype == DType.U8 ? 0 : -3, isFloat ? 10 : 3);
        x = isFloat ? Kit.Representable(x, dtype) : Array.ConvertAll(x, Math.Round);
        var yShape = shape.With(axis, 1);
        using var tx = fx.Ops.FromArray(x, shape, dtype);
        using var ty = fx.Ops.Empty(yShape, dtype);
        fx.Ops.Reduce(op, tx, axis, ty);
        var got = fx.Ops.ToDoubleArray(ty);
        var want = RefReduce(op, x, shape, axis);
        var abs = AbsSum(x, shape, axis);
        long n = shape[axis];
        for (int i = 0; i < got.Length; i++)
        {
            string where = $"{op} {dtype.Name()} {shape} axis {axis} seed={seed} at {i}: got {got[i]:R} want {want[i]:R}";
            if (!isFloat || op is ReduceOp.Max or ReduceOp.Min || double.IsNaN(want[i]) || double.IsInfinity(want[i]))
            {
                // Integer sums accumulate in the integer type and wrap like it.
                double exact = isFloat || op != ReduceOp.Sum ? Kit.Round(want[i], dtype) : Tier1ElementwiseTests.Wrap((long)want[i], dtype);
                Assert.True(Kit.SameValue(got[i], exact), where);
                continue;
            }
            // Summation bound: n·ε(accumulator)·Σ|x| (recursive summation; the lanes only make it smaller), plus the
            // final rounding to the dtype (one ULP of the result), divided by n for the mean.
            double eps = dtype == DType.F64 ? Math.Pow(2, -53) : Math.Pow(2, -24);
            double bound = (n * eps * abs[i] / (op == ReduceOp.Mean ? n : 1)) + Kit.Ulp(want[i], dtype);
            Assert.True(Math.Abs(got[i] - want[i]) <= bound, where + $" (bound {bound:E2})");
        }
    }

    public static TheoryData<ReduceOp, DType> Cases()
    {
        var data = new TheoryData<ReduceOp, DType>();
        foreach (var op in Enum.GetValues<ReduceOp>())
        {
            foreach (var dt in Numeric)
            {
                if (op != ReduceOp.Mean || dt.IsFloatingPoint())
                {
                    data.Add(op, dt);
                }
            }
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void EveryAxisOfRank3(ReduceOp op, DType dtype)
    {
        foreach (var dims in new[] { new[] { 3, 5, 7 }, [2, 17, 33], [1, 65, 1], [4, 1, 9] })
        {
            var shape = new Shape(dims);
            for (int axis = 0; axis < 3; axis++)
            {
                Check(op, dtype, shape, axis, 31 + axis);
            }
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void ContiguousAndStridedOverSizes(ReduceOp op, DType dtype)
    {
        foreach (int n in Kit.Sizes)
        {
            Check(op, dtype, new Shape(n), 0, 300 + n);
            if (n <= 129)
            {
                Check(op, dtype, new Shape(3, n), 1, 400 + n);
                Check(op, dtype, new Shape(n, 5), 0, 500 + n);
            }
        }
        Check(op, dtype, new Shape(2, 20000), 1, 600);
        Check(op, dtype, new Shape(3, 700, 40), 1, 601);
    }

    [Theory]
    [InlineData(DType.F32)]
    [InlineData(DType.F64)]
    [InlineData(DType.BF16)]
    public void MaxAndMinPropagateNaN(DType dtype)
    {
        foreach (int n in new[] { 1, 9, 33, 40_000 })
        {
            var x = Kit.Random(n, n, -1, 1);
            x[n / 2] = double.NaN;
            Check(ReduceOp.Max, dtype, new Shape(n), 0, n, x);
            Check(ReduceOp.Min, dtype, new Shape(n), 0, n, x);
            Check(ReduceOp.Sum, dtype, new Shape(n), 0, n, x);
        }
    }

    [Theory]
    [InlineData(DType.F32)]
    [InlineData(DType.F64)]
    [InlineData(DType.F16)]
    [InlineData(DType.I32)]
    public void EmptyAxisGivesTheDocumentedValues(DType dtype)
    {
        using var x = fx.Ops.Empty(new Shape(2, 0, 3), dtype);
        using var y = fx.Ops.Empty(new Shape(2, 1, 3), dtype);
        foreach (var (op, want) in new[] { (ReduceOp.Sum, 0.0), (ReduceOp.Mean, double.NaN), (ReduceOp.Max, double.NegativeInfinity), (ReduceOp.Min, double.PositiveInfinity) })
        {
            if (op == ReduceOp.Mean && !dtype.IsFloatingPoint())
            {
                continue;
            }
            fx.Ops.Reduce(op, x, 1, y);
            double w = Kit.Round(want, dtype);
            Assert.All(fx.Ops.ToDoubleArray(y), g => Assert.True(Kit.SameValue(g, w), $"{op} {dtype.Name()} of an empty axis: got {g}, want {w}"));
        }
    }

    [Fact]
    public void IntegerSumWrapsInTheType()
    {
        var x = Enumerable.Repeat(100.0, 10).ToArray();
        using var tx = fx.Ops.FromArray(x, new Shape(10), DType.I8);
        using var ty = fx.Ops.Empty(new Shape(1), DType.I8);
        fx.Ops.Reduce(ReduceOp.Sum, tx, 0, ty);
        Assert.Equal((double)unchecked((sbyte)1000), fx.Ops.ToDoubleArray(ty)[0]);
    }

    [Theory]
    [InlineData(DType.F32)]
    [InlineData(DType.F64)]
    [InlineData(DType.BF16)]
    [InlineData(DType.I32)]
    [InlineData(DType.I64)]
    [InlineData(DType.U8)]
    public void ArgMaxTakesTheFirstMaximumOnEveryAxis(DType dtype)
    {
        var shape = new Shape(4, 6, 5);
        // Few distinct values so ties are common.
        var x = Array.ConvertAll(Kit.Random(77, 120, 0, 4), Math.Floor);
        using var tx = fx.Ops.FromArray(x, shape, dtype);
        for (int axis = 0; axis < 3; axis++)
        {
            var ys = shape.With(axis, 1);
            using var ti = fx.Ops.Empty(ys, DType.I64);
            fx.Ops.ArgMax(tx, axis, ti);
            var got = fx.Ops.ToArray<long>(ti);
            long outer = shape.Product(0, axis), n = shape[axis], inner = shape.Product(axis + 1, 3);
            for (long o = 0; o < outer; o++)
            {
                for (long i = 0; i < inner; i++)
                {
                    long best = 0;
                    for (long k = 1; k < n; k++)
                    {
                        if (x[(((o * n) + k) * inner) + i] > x[(((o * n) + best) * inner) + i])
                        {
                            best = k;
                        }
                    }
                    Assert.True(best == got[(o * inner) + i], $"argmax {dtype.Name()} axis {axis} seed=77 at ({o},{i}): got {got[(o * inner) + i]} want {best}");
                }
            }
        }
    }

    [Fact]
    public void ArgMaxCountsNaNAsTheMaximum()
    {
        double nan = double.NaN;
        using var tx = fx.Ops.FromArray(new[] { 1, 5, nan, 7, nan, 2, 9, 9 }, new Shape(2, 4));
        using var ti = fx.Ops.Empty(new Shape(2, 1), DType.I64);
        fx.Ops.ArgMax(tx, 1, ti);
        Assert.Equal(new long[] { 2, 0 }, fx.Ops.ToArray<long>(ti));
    }
}
