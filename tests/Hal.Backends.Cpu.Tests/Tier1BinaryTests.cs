namespace Hal.Backends.Cpu.Tests;

public sealed class Tier1BinaryTests(CpuFixture fx) : IClassFixture<CpuFixture>
{
    private static readonly DType[] Numeric = [DType.F32, DType.F64, DType.F16, DType.BF16, DType.I32, DType.I64, DType.I8, DType.U8];

    private static double RefFloat(BinaryOp op, double a, double b) => op switch
    {
        BinaryOp.Add => a + b,
        BinaryOp.Sub => a - b,
        BinaryOp.Mul => a * b,
        BinaryOp.Div => a / b,
        BinaryOp.Max => double.IsNaN(a) || double.IsNaN(b) ? double.NaN : a > b ? a : b,
        BinaryOp.Min => double.IsNaN(a) || double.IsNaN(b) ? double.NaN : a < b ? a : b,
        _ => Math.Pow(a, b),
    };

    private static double RefInteger(BinaryOp op, long a, long b, DType dtype)
    {
        long r = op switch
        {
            BinaryOp.Add => a + b,
            BinaryOp.Sub => a - b,
            BinaryOp.Mul => a * b,
            BinaryOp.Div => b == 0 ? 0 : a / b,
            BinaryOp.Max => Math.Max(a, b),
            _ => Math.Min(a, b),
        };
        return Tier1ElementwiseTests.Wrap(r, dtype);
    }

    /// <summary>Reference over an explicit broadcast: every output index maps to its a and b indices.</summary>
    private static double[] RefBroadcast(BinaryOp op, double[] a, Shape sa, double[] b, Shape sb, Shape sy, DType dtype)
    {
        var y = new double[sy.ElementCount];
        var idx = new int[sy.Rank];
        for (long flat = 0; flat < y.Length; flat++)
        {
            long rem = flat;
            for (int d = sy.Rank - 1; d >= 0; d--)
            {
                idx[d] = (int)(rem % sy[d]);
                rem /= sy[d];
            }
            double va = a[Flat(idx, sa)], vb = b[Flat(idx, sb)];
            y[flat] = dtype.IsFloatingPoint() ? RefFloat(op, va, vb) : RefInteger(op, (long)va, (long)vb, dtype);
        }
        return y;
    }

    private static long Flat(int[] outIdx, Shape s)
    {
        long f = 0;
        int off = outIdx.Length - s.Rank;
        for (int d = 0; d < s.Rank; d++)
        {
            f = (f * s[d]) + (s[d] == 1 ? 0 : outIdx[d + off]);
        }
        return f;
    }

    private void Check(BinaryOp op, DType dtype, Shape sa, Shape sb, int seed)
    {
        var sy = Shape.Broadcast(sa, sb)!;
        bool isFloat = dtype.IsFloatingPoint();
        double lo = isFloat ? -10 : dtype == DType.U8 ? 0 : -20, hi = isFloat ? 10 : 20;
        if (op == BinaryOp.Pow)
        {
            lo = 0.1;
            hi = 3;
        }
        var a = Kit.Representable(Kit.Random(seed, (int)sa.ElementCount, lo, hi), dtype);
        var b = Kit.Representable(Kit.Random(seed + 1, (int)sb.ElementCount, lo, hi), dtype);
        if (!isFloat)
        {
            a = Array.ConvertAll(a, Math.Truncate);
            b = Array.ConvertAll(b, Math.Truncate);
            if (b.Length > 2)
            {
                b[1] = 0;
            }
        }
        using var ta = fx.Ops.FromArray(a, sa, dtype);
        using var tb = fx.Ops.FromArray(b, sb, dtype);
        using var ty = fx.Ops.Empty(sy, dtype);
        fx.Ops.Binary(op, ta, tb, ty);
        var got = fx.Ops.ToDoubleArray(ty);
        var want = RefBroadcast(op, a, sa, b, sb, sy, dtype);
        // Correctly rounded ops: 0.5 ULP is the rounding itself. Pow evaluates in double and rounds once (≤ 1 ULP
        // in F32 and 16-bit); F64 pow is the runtime's, within 2 ULPs.
        double tol = op == BinaryOp.Pow ? (dtype == DType.F64 ? 2 : 1) : 0.5;
        for (int i = 0; i < got.Length; i++)
        {
            if (isFloat)
            {
                double ulps = Kit.Ulps(got[i], want[i], dtype);
                Assert.True(ulps <= tol, $"{op} {dtype.Name()} {sa} op {sb} seed={seed} at {i}: got {got[i]:R} want {want[i]:R} ({ulps:F2} ULP)");
            }
            else
            {
                Assert.True(got[i] == want[i], $"{op} {dtype.Name()} {sa} op {sb} seed={seed} at {i}: got {got[i]} want {want[i]}");
            }
        }
    }

    public static TheoryData<BinaryOp, DType> Cases()
    {
        var data = new TheoryData<BinaryOp, DType>();
        foreach (var op in Enum.GetValues<BinaryOp>())
        {
            foreach (var dt in Numeric)
            {
                if (op != BinaryOp.Pow || dt.IsFloatingPoint())
                {
                    data.Add(op, dt);
                }
            }
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void SameShapeOverSizes(BinaryOp op, DType dtype)
    {
        foreach (int n in Kit.Sizes)
        {
            Check(op, dtype, new Shape(n), new Shape(n), 100 + n);
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void BroadcastPatterns(BinaryOp op, DType dtype)
    {
        (int[] A, int[] B)[] patterns =
        [
            ([33], []),                  // tensor op scalar
            ([], [17]),                  // scalar op tensor
            ([5, 33], [33]),             // row broadcast [N,C] op [C]
            ([5, 33], [5, 1]),           // column broadcast
            ([3, 4, 9], [1, 4, 1]),      // middle axis
            ([3, 4, 9], [9]),            // rank 3 vs rank 1
            ([3, 1, 9], [1, 4, 1]),      // both operands broadcast
            ([1], [3, 4]),
            ([2, 0, 3], [3]),            // empty output
            ([200, 300], [300]),         // row broadcast past the parallel threshold
            ([200, 300], [200, 1]),
        ];
        int seed = 7;
        foreach (var (sa, sb) in patterns)
        {
            Check(op, dtype, new Shape(sa), new Shape(sb), seed++);
        }
    }

    [Theory]
    [InlineData(DType.F32)]
    [InlineData(DType.F64)]
    [InlineData(DType.BF16)]
    public void MaxMinPropagateNaNAndSpecials(DType dtype)
    {
        double nan = double.NaN, inf = double.PositiveInfinity;
        double[] a = [nan, 1, nan, -inf, inf, 0.0, -0.0, 1e-40, 3, 4, 5, 6, 7, 8, 9, nan, 1];
        double[] b = [1, nan, nan, 2, -3, -0.0, 0.0, -1e-40, 3, 2, 6, 1, 9, 9, nan, 2, inf];
        foreach (var op in new[] { BinaryOp.Max, BinaryOp.Min, BinaryOp.Add, BinaryOp.Mul, BinaryOp.Div })
        {
            var x = Kit.Representable(a, dtype);
            var y = Kit.Representable(b, dtype);
            using var ta = fx.Ops.FromArray(x, new Shape(a.Length), dtype);
            using var tb = fx.Ops.FromArray(y, new Shape(a.Length), dtype);
            using var tc = fx.Ops.Empty(new Shape(a.Length), dtype);
            fx.Ops.Binary(op, ta, tb, tc);
            var got = fx.Ops.ToDoubleArray(tc);
            for (int i = 0; i < a.Length; i++)
            {
                double want = Reference.RoundTo(RefFloat(op, x[i], y[i]), dtype);
                Assert.True(Kit.SameValue(got[i], want), $"{op} {dtype.Name()} ({x[i]}, {y[i]}): got {got[i]} want {want}");
            }
        }
    }

    [Theory]
    [InlineData(DType.I32, int.MinValue)]
    [InlineData(DType.I8, sbyte.MinValue)]
    public void IntegerDivisionTruncatesAndDivisionByZeroGivesZero(DType dtype, double min)
    {
        double[] a = [7, -7, 7, -7, 5, min, min];
        double[] b = [2, 2, -2, -2, 0, -1, 0];
        double[] want = [3, -3, -3, 3, 0, min, 0];
        using var ta = fx.Ops.FromArray(a, new Shape(a.Length), dtype);
        using var tb = fx.Ops.FromArray(b, new Shape(a.Length), dtype);
        using var tc = fx.Ops.Empty(new Shape(a.Length), dtype);
        fx.Ops.Binary(BinaryOp.Div, ta, tb, tc);
        Assert.Equal(want, fx.Ops.ToDoubleArray(tc));
    }

    [Fact]
    public void OutputMayAliasAnOperand()
    {
        var x = Kit.Random(3, 50, -1, 1);
        var w = Kit.Random(4, 50, -1, 1);
        using var a = fx.Ops.FromArray(x, new Shape(50));
        using var b = fx.Ops.FromArray(w, new Shape(50));
        fx.Ops.Binary(BinaryOp.Mul, a, b, a);
        var got = fx.Ops.ToDoubleArray(a);
        for (int i = 0; i < 50; i++)
        {
            Assert.Equal((double)((float)x[i] * (float)w[i]), got[i]);
        }
    }

    /// <summary>u8 has no −1: a divisor of 255 divides (67 / 255 = 0), it does not negate.</summary>
    [Fact]
    public void UnsignedDivisionByMaxValueTruncates()
    {
        double[] a = [67, 255, 254, 0, 200];
        double[] b = [255, 255, 255, 255, 0];
        using var ta = fx.Ops.FromArray(a, new Shape(a.Length), DType.U8);
        using var tb = fx.Ops.FromArray(b, new Shape(b.Length), DType.U8);
        using var ty = fx.Ops.Empty(new Shape(a.Length), DType.U8);
        fx.Ops.Binary(BinaryOp.Div, ta, tb, ty);
        Assert.Equal([0.0, 1, 0, 0, 0], fx.Ops.ToDoubleArray(ty));
    }
}
