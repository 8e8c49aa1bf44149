namespace Hal.Backends.Cpu.Tests;

public sealed class Tier1ElementwiseTests(CpuFixture fx) : IClassFixture<CpuFixture>
{
    private static readonly DType[] FloatTypes = [DType.F32, DType.F64, DType.F16, DType.BF16];

    /// <summary>Edge inputs every float unary op sees: zeros, infinities, NaN, a denormal, tiny and large values.</summary>
    private static readonly double[] Edges =
        [0.0, -0.0, double.PositiveInfinity, double.NegativeInfinity, double.NaN, 1e-40, -1e-40, 1e-30, -1e-30, 0.5, -0.5, 2.5, -2.5, 88, -88, 1e30, -1e30];

    private static double Ref(UnaryOp op, double x) => op switch
    {
        UnaryOp.Neg => -x,
        UnaryOp.Abs => Math.Abs(x),
        UnaryOp.Exp => Math.Exp(x),
        UnaryOp.Log => Math.Log(x),
        UnaryOp.Sqrt => Math.Sqrt(x),
        UnaryOp.Rsqrt => 1 / Math.Sqrt(x),
        UnaryOp.Tanh => Math.Tanh(x),
        UnaryOp.Sigmoid => 1 / (1 + Math.Exp(-x)),
        UnaryOp.Relu => double.IsNaN(x) ? x : x > 0 ? x : 0,
        UnaryOp.GeluErf => double.IsNegativeInfinity(x) ? 0 : Reference.GeluErf(x),
        UnaryOp.GeluTanh => double.IsNegativeInfinity(x) ? 0 : GeluTanhRef(x),
        UnaryOp.Silu => double.IsNegativeInfinity(x) ? 0 : x / (1 + Math.Exp(-x)),
        UnaryOp.Sin => Math.Sin(x),
        UnaryOp.Cos => Math.Cos(x),
        UnaryOp.Round => Math.Round(x, MidpointRounding.ToEven),
        UnaryOp.Square => x * x,
        UnaryOp.Reciprocal => 1 / x,
        _ => throw new ArgumentOutOfRangeException(nameof(op)),
    };

    /// <summary>0.5·x·(1 + tanh u) with 1 + tanh u = 2/(1 + e^(−2u)), which does not cancel for negative u.</summary>
    private static double GeluTanhRef(double x)
    {
        double u = Math.Sqrt(2 / Math.PI) * (x + (0.044715 * x * x * x));
        return 0.5 * x * (2 / (1 + Math.Exp(-2 * u)));
    }

    /// <summary>
    /// The conformance bounds in ULPs of the output dtype. Correctly rounded ops: 0.5 (the rounding itself);
    /// rsqrt 2; exp/log/sin/cos 4; tanh/sigmoid/silu/gelu-tanh 8; gelu-erf 16 (F32). F64: 4 ULPs, erf-based 1e-14
    /// relative (≈ 45 ULPs). 16-bit types compute in F32 and round once: the rounding (0.5) plus F32 error ≈ 1 ULP.
    /// </summary>
    private static double Tolerance(UnaryOp op, DType dtype)
    {
        bool exact = op is UnaryOp.Neg or UnaryOp.Abs or UnaryOp.Relu or UnaryOp.Sqrt or UnaryOp.Round or UnaryOp.Square or UnaryOp.Reciprocal;
        if (exact)
        {
            return 0.5;
        }
        if (dtype.Is16Bit())
        {
            return 1;
        }
        if (dtype == DType.F64)
        {
            return op == UnaryOp.GeluErf ? 45 : 4;
        }
        return op switch
        {
            UnaryOp.Rsqrt => 2,
            UnaryOp.Exp or UnaryOp.Log or UnaryOp.Sin or UnaryOp.Cos => 4,
            UnaryOp.GeluErf => 16,
            _ => 8,
        };
    }

    /// <summary>An input range where the double reference itself is accurate (gelu-tanh's 1 + tanh cancels below −5).</summary>
    private static (double Lo, double Hi) Range(UnaryOp op) => op switch
    {
        UnaryOp.Log or UnaryOp.Sqrt or UnaryOp.Rsqrt => (1e-3, 100),
        UnaryOp.Exp => (-80, 80),
        UnaryOp.GeluTanh => (-5, 5),
        UnaryOp.GeluErf => (-12, 8),
        UnaryOp.Sin or UnaryOp.Cos => (-100, 100),
        _ => (-20, 20),
    };

    public static TheoryData<UnaryOp, DType> UnaryCases()
    {
        var data = new TheoryData<UnaryOp, DType>();
        foreach (var op in Enum.GetValues<UnaryOp>())
        {
            foreach (var dt in FloatTypes)
            {
                data.Add(op, dt);
            }
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(UnaryCases))]
    public void UnaryMatchesDoubleReferenceOverSizesAndEdges(UnaryOp op, DType dtype)
    {
        const int seed = 1234;
        var (lo, hi) = Range(op);
        double tol = Tolerance(op, dtype);
        foreach (int n in Kit.Sizes)
        {
            if (n > 129 && dtype != DType.F32 && op is UnaryOp.GeluErf)
            {
                continue;
            }
            var input = Kit.Random(seed + n, n, lo, hi);
            if (n >= Edges.Length)
            {
                Edges.CopyTo(input, 0);
            }
            var x = Kit.Representable(input, dtype);
            using var tx = fx.Ops.FromArray(x, new Shape(n), dtype);
            using var ty = fx.Ops.Empty(new Shape(n), dtype);
            fx.Ops.Unary(op, tx, ty);
            var got = fx.Ops.ToDoubleArray(ty);
            int step = n > 1000 ? 97 : 1;
            for (int i = 0; i < n; i += step)
            {
                double want = Ref(op, x[i]);
                if (double.IsInfinity(Reference.RoundTo(want, dtype)))
                {
                    // Overflow in the dtype: the only right answer is the rounded infinity.
                    want = Reference.RoundTo(want, dtype);
                }
                double ulps = Kit.Ulps(got[i], want, dtype);
                Assert.True(ulps <= tol, $"{op} {dtype.Name()} n={n} seed={seed + n}: x={x[i]:R} got {got[i]:R} want {want:R} ({ulps:F2} ULP > {tol})");
            }
        }
    }

    [Theory]
    [InlineData(UnaryOp.Exp)]
    [InlineData(UnaryOp.GeluErf)]
    [InlineData(UnaryOp.Relu)]
    public void UnaryInPlaceEqualsOutOfPlace(UnaryOp op)
    {
        var x = Kit.Random(7, 100, -3, 3);
        using var a = fx.Ops.FromArray(x, new Shape(100));
        using var b = fx.Ops.Empty(new Shape(100));
        fx.Ops.Unary(op, a, b);
        fx.Ops.Unary(op, a, a);
        Assert.Equal(fx.Ops.ToDoubleArray(b), fx.Ops.ToDoubleArray(a));
    }

    [Theory]
    [InlineData(DType.I32)]
    [InlineData(DType.I64)]
    [InlineData(DType.I8)]
    public void IntegerUnaryOpsWrapInTheirType(DType dtype)
    {
        double min = dtype switch { DType.I32 => int.MinValue, DType.I64 => -9e15, _ => sbyte.MinValue };
        double[] x = [0, 1, -1, 5, -7, 11, -11, min];
        using var tx = fx.Ops.FromArray(x, new Shape(x.Length), dtype);
        using var ty = fx.Ops.Empty(new Shape(x.Length), dtype);
        foreach (var op in new[] { UnaryOp.Neg, UnaryOp.Abs, UnaryOp.Relu, UnaryOp.Square })
        {
            fx.Ops.Unary(op, tx, ty);
            var got = fx.Ops.ToDoubleArray(ty);
            for (int i = 0; i < x.Length; i++)
            {
                long v = (long)x[i];
                long want = op switch
                {
                    UnaryOp.Neg => -v,
                    UnaryOp.Abs => Math.Abs(v),
                    UnaryOp.Relu => Math.Max(v, 0),
                    _ => v * v,
                };
                want = Wrap(want, dtype);
                Assert.Equal((double)want, got[i]);
            }
        }
    }

    internal static long Wrap(long v, DType dtype) => dtype switch
    {
        DType.I32 => (int)v,
        DType.I8 => (sbyte)v,
        DType.U8 => (byte)v,
        _ => v,
    };

    [Theory]
    [InlineData(DType.F32)]
    [InlineData(DType.F64)]
    [InlineData(DType.F16)]
    [InlineData(DType.BF16)]
    [InlineData(DType.I32)]
    [InlineData(DType.I64)]
    [InlineData(DType.I8)]
    [InlineData(DType.U8)]
    [InlineData(DType.Bool)]
    public void FillWritesTheCastValueEverywhere(DType dtype)
    {
        foreach (int n in Kit.Sizes)
        {
            foreach (double v in new[] { 0.0, 1.0, -2.5, 300.7, double.NaN, double.NegativeInfinity })
            {
                using var t = fx.Ops.Empty(new Shape(n), dtype);
                fx.Ops.Fill(t, v);
                double want = Kit.Round(v, dtype);
                var got = fx.Ops.ToDoubleArray(t);
                Assert.All(got, g => Assert.True(Kit.SameValue(g, want), $"fill {dtype.Name()} n={n} v={v}: got {g}, want {want}"));
            }
        }
    }

    [Theory]
    [InlineData(DType.F32)]
    [InlineData(DType.F64)]
    [InlineData(DType.BF16)]
    [InlineData(DType.I64)]
    [InlineData(DType.I8)]
    public void CopyIsBitExactAcrossSizesAndShapes(DType dtype)
    {
        foreach (int n in Kit.Sizes)
        {
            var x = Kit.Representable(Kit.Random(n, n, -100, 100), dtype);
            using var a = fx.Ops.FromArray(x, new Shape(n), dtype);
            using var b = fx.Ops.Empty(new Shape(1, n), dtype);
            fx.Ops.Copy(a, b);
            Assert.Equal(x, fx.Ops.ToDoubleArray(b));
        }
    }

    [Fact]
    public void CopyBetweenOverlappingViewsMovesLikeMemmove()
    {
        using var t = fx.Ops.FromArray(new double[] { 0, 1, 2, 3, 4, 5, 6, 7 }, new Shape(8));
        fx.Ops.Copy(t.View(0, new Shape(6)), t.View(2, new Shape(6)));
        Assert.Equal(new double[] { 0, 1, 0, 1, 2, 3, 4, 5 }, fx.Ops.ToDoubleArray(t));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(8)]
    [InlineData(17)]
    [InlineData(70_000)]
    public void ExactPointsAreExactOnEveryPath(int n)
    {
        // exp(0) = 1, log(1) = 0, exp(−Inf) = 0 exactly, on the scalar tail, the vector body and the threaded path:
        // composites (cross-entropy of a certain prediction) rely on them to give exactly 0.
        foreach (var dtype in FloatTypes)
        {
            foreach (var (op, input, expected) in new[] { (UnaryOp.Exp, 0.0, 1.0), (UnaryOp.Log, 1.0, 0.0), (UnaryOp.Exp, double.NegativeInfinity, 0.0) })
            {
                using var x = fx.Ops.FromArray(Enumerable.Repeat(input, n).ToArray(), new Shape(n), dtype);
                using var y = fx.Ops.Empty(new Shape(n), dtype);
                fx.Ops.Unary(op, x, y);
                Assert.All(fx.Ops.ToDoubleArray(y), v => Assert.Equal(expected, v));
            }
        }
    }
}
