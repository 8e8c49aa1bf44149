namespace Hal.Backends.Cuda.Tests;

[Collection(EmulatorCollection.Name)]
public sealed class ElementwiseTests(EmulatorFixture fx)
{
    private static readonly double[] Specials =
    [
        0.0, -0.0, 1.5, -1.5, 2.5, -2.5, 0.1, 127.5, 128.0, -129.0, 255.9, 256.0, 300.0, -300.0, 65504.0, 65520.0, 70000.0,
        1e10, -1e10, 3e9, -3e9, 1e19, -1e19, 3.4e38, 1e39, 1e-8, 1e-40, 1e-45, 5.9604644775390625E-8, 2.9802322387695312E-8,
        double.NaN, double.PositiveInfinity, double.NegativeInfinity, 1.00048828125, 1.0009765625, 0.333333333333,
    ];

    private static byte[] Bytes(Ops ops, Tensor t)
    {
        var b = new byte[t.SizeInBytes];
        t.Device.CopyToHost(t.Buffer, t.OffsetBytes, b);
        return b;
    }

    [Fact]
    public void CastMatchesTheCpuBackendBitForBitForEveryDtypePair()
    {
        foreach (DType from in DTypeInfo.All)
        {
            using var src64 = fx.Ops.FromArray(Specials, new Shape(Specials.Length), DType.F64);
            using var cpu64 = fx.CpuOps.FromArray(Specials, new Shape(Specials.Length), DType.F64);
            using var src = fx.Ops.Empty(new Shape(Specials.Length), from);
            using var cpuSrc = fx.CpuOps.Empty(new Shape(Specials.Length), from);
            fx.Ops.Cast(src64, src);
            fx.CpuOps.Cast(cpu64, cpuSrc);
            Assert.True(Bytes(fx.Ops, src).AsSpan().SequenceEqual(Bytes(fx.CpuOps, cpuSrc)), $"f64 → {from.Name()}");
            foreach (DType to in DTypeInfo.All)
            {
                using var dst = fx.Ops.Empty(new Shape(Specials.Length), to);
                using var cpuDst = fx.CpuOps.Empty(new Shape(Specials.Length), to);
                fx.Ops.Cast(src, dst);
                fx.CpuOps.Cast(cpuSrc, cpuDst);
                var got = Bytes(fx.Ops, dst);
                var want = Bytes(fx.CpuOps, cpuDst);
                int size = to.SizeInBytes();
                for (int i = 0; i < Specials.Length; i++)
                {
                    bool same = got.AsSpan(i * size, size).SequenceEqual(want.AsSpan(i * size, size));
                    bool bothNaN = to.IsFloatingPoint() && double.IsNaN(fx.Ops.ToDoubleArray(dst)[i]) && double.IsNaN(fx.CpuOps.ToDoubleArray(cpuDst)[i]);
                    Assert.True(same || bothNaN, $"{from.Name()} → {to.Name()} of {Specials[i]:R}: cuda {Convert.ToHexString(got, i * size, size)} cpu {Convert.ToHexString(want, i * size, size)}");
                }
            }
        }
    }

    [Fact]
    public void CastOfLargeI64ToBf16RoundsOnce()
    {
        // 2⁶⁰ + 2⁵² + 1: the nearest BF16 is 2⁶⁰ + 2⁵³ (above the halfway point only because of the final +1).
        long v = (1L << 60) + (1L << 52) + 1;
        using var src = fx.Ops.FromArray(new long[] { v, -v }, new Shape(2), DType.I64);
        using var dst = fx.Ops.Empty(new Shape(2), DType.BF16);
        fx.Ops.Cast(src, dst);
        var got = fx.Ops.ToDoubleArray(dst);
        Assert.Equal(Math.ScaleB(1, 60) + Math.ScaleB(1, 53), got[0]);
        Assert.Equal(-(Math.ScaleB(1, 60) + Math.ScaleB(1, 53)), got[1]);
    }

    [Theory]
    [InlineData(DType.F32)]
    [InlineData(DType.F64)]
    [InlineData(DType.F16)]
    [InlineData(DType.BF16)]
    [InlineData(DType.I32)]
    [InlineData(DType.I8)]
    [InlineData(DType.U8)]
    [InlineData(DType.Bool)]
    public void FillStoresTheCastOfTheValue(DType dtype)
    {
        foreach (double value in new[] { 0.0, -2.75, 300.0, double.NaN, 1e-40 })
        {
            foreach (int n in Kit.Sizes)
            {
                using var t = fx.Ops.Empty(new Shape(n), dtype);
                fx.Ops.Fill(t, value);
                using var c = fx.CpuOps.Empty(new Shape(Math.Max(n, 1)), dtype);
                fx.CpuOps.Fill(c, value);
                double want = fx.CpuOps.ToDoubleArray(c)[0];
                foreach (double got in fx.Ops.ToDoubleArray(t))
                {
                    Assert.True(Kit.Same(got, want), $"fill {value} as {dtype.Name()} n={n}: {got} vs {want}");
                }
            }
        }
    }

    [Theory]
    [InlineData(UnaryOp.Neg)]
    [InlineData(UnaryOp.Abs)]
    [InlineData(UnaryOp.Exp)]
    [InlineData(UnaryOp.Log)]
    [InlineData(UnaryOp.Sqrt)]
    [InlineData(UnaryOp.Rsqrt)]
    [InlineData(UnaryOp.Tanh)]
    [InlineData(UnaryOp.Sigmoid)]
    [InlineData(UnaryOp.Relu)]
    [InlineData(UnaryOp.Sin)]
    [InlineData(UnaryOp.Cos)]
    [InlineData(UnaryOp.Round)]
    [InlineData(UnaryOp.Square)]
    [InlineData(UnaryOp.Reciprocal)]
    public void UnaryMatchesDoubleReference(UnaryOp op)
    {
        const int seed = 11;
        Func<double, double> f = op switch
        {
            UnaryOp.Neg => x => -x,
            UnaryOp.Abs => Math.Abs,
            UnaryOp.Exp => Math.Exp,
            UnaryOp.Log => Math.Log,
            UnaryOp.Sqrt => Math.Sqrt,
            UnaryOp.Rsqrt => x => 1 / Math.Sqrt(x),
            UnaryOp.Tanh => Math.Tanh,
            UnaryOp.Sigmoid => x => 1 / (1 + Math.Exp(-x)),
            UnaryOp.Relu => x => double.IsNaN(x) ? x : Math.Max(x, 0),
            UnaryOp.Sin => Math.Sin,
            UnaryOp.Cos => Math.Cos,
            UnaryOp.Round => x => Math.Round(x, MidpointRounding.ToEven),
            UnaryOp.Square => x => x * x,
            _ => x => 1 / x,
        };
        bool positive = op is UnaryOp.Log or UnaryOp.Sqrt or UnaryOp.Rsqrt;
        foreach (DType dtype in Kit.FloatTypes)
        {
            foreach (int n in new[] { 0, 1, 33 })
            {
                var x = Kit.Representable(Kit.Random(seed + n, n, positive ? 0.01 : -6, 6), dtype);
                if (n > 0)
                {
                    x[0] = op == UnaryOp.Round ? 2.5 : double.NaN;
                }
                using var xt = fx.Ops.FromArray(x, new Shape(n), dtype);
                using var yt = fx.Ops.Empty(new Shape(n), dtype);
                fx.Ops.Unary(op, xt, yt);
                var y = fx.Ops.ToDoubleArray(yt);
                for (int i = 0; i < n; i++)
                {
                    double want = Kit.Representable([f(x[i])], dtype)[0];
                    // Evaluated in double and rounded once: at most one unit in the last place of a narrower dtype.
                    // F64 results carry the double library's error on both sides (sigmoid's two algebraic forms
                    // differ by up to a few double ulps), hence 4 there.
                    double ulps = Kit.Ulps(y[i], want, dtype);
                    Assert.True(ulps <= (dtype == DType.F64 ? 4 : 1), $"{op} {dtype.Name()} seed {seed + n} x={x[i]:R}: got {y[i]:R} want {want:R} ({ulps} ulp)");
                }
            }
        }
    }

    [Theory]
    [InlineData(UnaryOp.GeluErf)]
    [InlineData(UnaryOp.GeluTanh)]
    [InlineData(UnaryOp.Silu)]
    public void ActivationsAgreeWithTheCpuBackend(UnaryOp op)
    {
        const int seed = 5;
        foreach (DType dtype in Kit.FloatTypes)
        {
            var x = Kit.Representable(Kit.Random(seed, 40, -12, 12), dtype);
            x[0] = double.NegativeInfinity;
            x[1] = double.NaN;
            x[2] = -0.0;
            using var xt = fx.Ops.FromArray(x, new Shape(x.Length), dtype);
            using var yt = fx.Ops.Empty(new Shape(x.Length), dtype);
            fx.Ops.Unary(op, xt, yt);
            using var cx = fx.CpuOps.FromArray(x, new Shape(x.Length), dtype);
            using var cy = fx.CpuOps.Empty(new Shape(x.Length), dtype);
            fx.CpuOps.Unary(op, cx, cy);
            var got = fx.Ops.ToDoubleArray(yt);
            var want = fx.CpuOps.ToDoubleArray(cy);
            for (int i = 0; i < x.Length; i++)
            {
                // Both evaluate in double with erfc/sigmoid forms that do not cancel; 4 ulp covers their
                // different series cut-offs (the CPU's F32 GELU uses a shorter series).
                Assert.True(Kit.Ulps(got[i], want[i], dtype) <= 4, $"{op} {dtype.Name()} seed {seed} x={x[i]:R}: {got[i]:R} vs cpu {want[i]:R}");
            }
        }
    }

    [Theory]
    [InlineData(DType.I32)]
    [InlineData(DType.I64)]
    [InlineData(DType.I8)]
    public void IntegerUnaryWrapsLikeTheType(DType dtype)
    {
        long min = dtype switch { DType.I8 => sbyte.MinValue, DType.I32 => int.MinValue, _ => long.MinValue };
        long[] x = [0, 5, -7, min, 100];
        using var xt = fx.Ops.FromArray(x, new Shape(x.Length), dtype);
        using var yt = fx.Ops.Empty(new Shape(x.Length), dtype);
        fx.Ops.Unary(UnaryOp.Neg, xt, yt);
        Assert.Equal([0, -5, 7, min, -100], fx.Ops.ToDoubleArray(yt));
        fx.Ops.Unary(UnaryOp.Relu, xt, yt);
        Assert.Equal([0, 5, 0, 0, 100], fx.Ops.ToDoubleArray(yt));
    }

    public static TheoryData<int[], int[]> BroadcastShapes => new()
    {
        { new[] { 7 }, new[] { 7 } },
        { new[] { 3, 1, 5 }, new[] { 1, 4, 5 } },
        { new[] { 2, 3, 4 }, new[] { 4 } },
        { new[] { 1 }, new[] { 2, 33 } },
        { new[] { 2, 1, 3, 1, 2, 1, 2 }, new[] { 1, 2, 1, 2, 1, 2, 1 } },
        { new[] { 0, 3 }, new[] { 1, 3 } },
    };

    [Theory]
    [MemberData(nameof(BroadcastShapes))]
    public void BinaryBroadcastsLikeNumPy(int[] sa, int[] sb)
    {
        const int seed = 21;
        var shape = Shape.Broadcast(new Shape(sa), new Shape(sb))!;
        var a = Kit.Random(seed, (int)new Shape(sa).ElementCount, -3, 3);
        var b = Kit.Random(seed + 1, (int)new Shape(sb).ElementCount, 0.5, 3);
        foreach (BinaryOp op in Enum.GetValues<BinaryOp>())
        {
            foreach (DType dtype in new[] { DType.F32, DType.F64, DType.BF16 })
            {
                var ar = Kit.Representable(a, dtype);
                var br = Kit.Representable(b, dtype);
                using var at = fx.Ops.FromArray(ar, new Shape(sa), dtype);
                using var bt = fx.Ops.FromArray(br, new Shape(sb), dtype);
                using var yt = fx.Ops.Empty(shape, dtype);
                fx.Ops.Binary(op, at, bt, yt);
                var y = fx.Ops.ToDoubleArray(yt);
                for (long i = 0; i < shape.ElementCount; i++)
                {
                    double p = ar[BroadcastIndex(i, shape, new Shape(sa))];
                    double q = br[BroadcastIndex(i, shape, new Shape(sb))];
                    double exact = op switch
                    {
                        BinaryOp.Add => p + q,
                        BinaryOp.Sub => p - q,
                        BinaryOp.Mul => p * q,
                        BinaryOp.Div => p / q,
                        BinaryOp.Max => Math.Max(p, q),
                        BinaryOp.Min => Math.Min(p, q),
                        _ => Math.Pow(p, q),
                    };
                    double want = Kit.Representable([exact], dtype)[0];
                    // One rounding of a double result: within one ulp of the output dtype (Pow's double error included).
                    Assert.True(Kit.Ulps(y[i], want, dtype) <= 1, $"{op} {dtype.Name()} {new Shape(sa)}·{new Shape(sb)} seed {seed} at {i}: {y[i]:R} vs {want:R}");
                }
            }
        }
    }

    /// <summary>The flat index into an operand of shape <paramref name="operand"/> for output element <paramref name="i"/>.</summary>
    private static int BroadcastIndex(long i, Shape output, Shape operand)
    {
        long index = 0;
        long stride = 1;
        for (int k = output.Rank - 1, j = operand.Rank - 1; k >= 0; k--, j--)
        {
            long c = i % output[k];
            i /= output[k];
            if (j >= 0)
            {
                if (operand[j] != 1)
                {
                    index += c * stride;
                }
                stride *= operand[j];
            }
        }
        return (int)index;
    }

    [Fact]
    public void IntegerDivTruncatesAndDivisionByZeroGivesZero()
    {
        using var a = fx.Ops.FromArray(new long[] { 7, -7, 7, -7, 5, int.MinValue }, new Shape(6), DType.I32);
        using var b = fx.Ops.FromArray(new long[] { 2, 2, -2, -2, 0, -1 }, new Shape(6), DType.I32);
        using var y = fx.Ops.Empty(new Shape(6), DType.I32);
        fx.Ops.Binary(BinaryOp.Div, a, b, y);
        Assert.Equal([3, -3, -3, 3, 0, int.MinValue], fx.Ops.ToDoubleArray(y));
        fx.Ops.Binary(BinaryOp.Add, a, a, y);
        Assert.Equal(0, fx.Ops.ToDoubleArray(y)[5]);
    }

    [Fact]
    public void MaxAndMinPropagateNaN()
    {
        using var a = fx.Ops.FromArray(new[] { double.NaN, 1.0, -0.0 }, new Shape(3), DType.F32);
        using var b = fx.Ops.FromArray(new[] { 1.0, double.NaN, 0.0 }, new Shape(3), DType.F32);
        using var y = fx.Ops.Empty(new Shape(3), DType.F32);
        fx.Ops.Binary(BinaryOp.Max, a, b, y);
        var max = fx.Ops.ToDoubleArray(y);
        Assert.True(double.IsNaN(max[0]) && double.IsNaN(max[1]), "max of NaN is NaN");
        Assert.False(double.IsNegative(max[2]), "max(−0, +0) is +0");
        fx.Ops.Binary(BinaryOp.Min, a, b, y);
        var min = fx.Ops.ToDoubleArray(y);
        Assert.True(double.IsNaN(min[0]) && double.IsNaN(min[1]), "min of NaN is NaN");
        Assert.True(double.IsNegative(min[2]), "min(−0, +0) is −0");
    }
}
