namespace Hal.Backends.Npu.Tests;

/// <summary>Element-wise tier-1 kernels on npu:0 against the CPU backend on the same inputs.</summary>
[Collection("npu")]
public sealed class Tier1ElementwiseTests(NpuFixture f)
{
    private const ulong Seed = 11;

    public static TheoryData<UnaryOp> FloatUnaryOps => [.. Enum.GetValues<UnaryOp>()];

    [Theory]
    [MemberData(nameof(FloatUnaryOps))]
    public void UnaryF32MatchesCpuAcrossSizesAndSpecials(UnaryOp op)
    {
        foreach (int n in Kit.Sizes)
        {
            var values = Kit.WithSpecials(n, Seed + (ulong)n);
            var (xn, xc) = Kit.Both(f, values, new Shape(n), DType.F32);
            using var _1 = xn;
            using var _2 = xc;
            using var yn = f.NpuOps.Empty(xn.Shape, DType.F32);
            using var yc = f.CpuOps.Empty(xc.Shape, DType.F32);
            f.NpuOps.Unary(op, xn, yn);
            f.CpuOps.Unary(op, xc, yc);
            // Both compute in F32 with different libm-style approximations: a few F32 ulps, plus an absolute floor
            // of 1e-6 for results that cancel to near zero (GELU, sin near π).
            Kit.Close(f.CpuOps.ToDoubleArray(yc), f.NpuOps.ToDoubleArray(yn), 4e-6, 1e-6, $"{op} n={n} seed={Seed + (ulong)n}");
        }
    }

    [Theory]
    [InlineData(DType.F64)]
    [InlineData(DType.F16)]
    [InlineData(DType.BF16)]
    public void UnaryOtherFloatDTypesMatchCpu(DType dtype)
    {
        foreach (var op in new[] { UnaryOp.Exp, UnaryOp.Tanh, UnaryOp.GeluErf, UnaryOp.Rsqrt, UnaryOp.Round })
        {
            var values = Kit.WithSpecials(33, Seed);
            var (xn, xc) = Kit.Both(f, values, new Shape(33), dtype);
            using var _1 = xn;
            using var _2 = xc;
            using var yn = f.NpuOps.Empty(xn.Shape, dtype);
            using var yc = f.CpuOps.Empty(xc.Shape, dtype);
            f.NpuOps.Unary(op, xn, yn);
            f.CpuOps.Unary(op, xc, yc);
            // 16-bit: both compute in F32 and round once, so at most one storage ulp apart; F64: libm differences.
            double rel = dtype == DType.F64 ? 1e-13 : dtype.Epsilon();
            Kit.Close(f.CpuOps.ToDoubleArray(yc), f.NpuOps.ToDoubleArray(yn), rel, 1e-12, $"{op} {dtype.Name()} seed={Seed}");
        }
    }

    [Theory]
    [InlineData(DType.I32)]
    [InlineData(DType.I64)]
    [InlineData(DType.I8)]
    public void SignedIntegerNegAbsReluMatchPlainLoops(DType dtype)
    {
        double[] values = [-100, -7, -1, 0, 1, 5, 100];
        foreach (var (op, fn) in new (UnaryOp, Func<double, double>)[] { (UnaryOp.Neg, v => -v), (UnaryOp.Abs, Math.Abs), (UnaryOp.Relu, v => Math.Max(v, 0)) })
        {
            using var x = f.NpuOps.FromArray(values, new Shape(values.Length), dtype);
            using var y = f.NpuOps.Empty(x.Shape, dtype);
            f.NpuOps.Unary(op, x, y);
            Assert.Equal(values.Select(fn).ToArray(), f.NpuOps.ToDoubleArray(y));
        }
    }

    [Fact]
    public void UnaryInPlaceWritesTheInput()
    {
        using var x = f.NpuOps.FromArray(new double[] { -1, 2, -3 }, new Shape(3));
        f.NpuOps.Unary(UnaryOp.Relu, x, x);
        Assert.Equal(new double[] { 0, 2, 0 }, f.NpuOps.ToDoubleArray(x));
    }

    public static TheoryData<BinaryOp, DType> BinaryCases()
    {
        var data = new TheoryData<BinaryOp, DType>();
        foreach (var op in Enum.GetValues<BinaryOp>())
        {
            foreach (var dtype in new[] { DType.F32, DType.F64, DType.BF16, DType.I32, DType.I64 })
            {
                if (op == BinaryOp.Pow && dtype.IsInteger())
                {
                    // Ops accepts Pow on float dtypes only.
                    continue;
                }
                data.Add(op, dtype);
            }
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(BinaryCases))]
    public void BinaryWithBroadcastingMatchesCpu(BinaryOp op, DType dtype)
    {
        // [4, 1, 5] op [3, 1] → [4, 3, 5]; integers get values with zeros so that division by zero is exercised.
        var av = dtype.IsInteger() ? Kit.Random(20, Seed).Select(v => Math.Round(v * 10)).ToArray() : Kit.WithSpecials(20, Seed);
        var bv = dtype.IsInteger() ? new double[] { 0, 3, -4 } : new double[] { 0.5, double.NaN, -2 };
        var (an, ac) = Kit.Both(f, av, new Shape(4, 1, 5), dtype);
        var (bn, bc) = Kit.Both(f, bv, new Shape(3, 1), dtype);
        using var _1 = an;
        using var _2 = ac;
        using var _3 = bn;
        using var _4 = bc;
        using var yn = f.NpuOps.Empty(new Shape(4, 3, 5), dtype);
        using var yc = f.CpuOps.Empty(new Shape(4, 3, 5), dtype);
        f.NpuOps.Binary(op, an, bn, yn);
        f.CpuOps.Binary(op, ac, bc, yc);
        // One rounding of the same F32/F64 operation on both sides; Pow goes through the library's pow: a few ulps.
        double rel = op == BinaryOp.Pow ? 1e-5 : dtype == DType.BF16 ? dtype.Epsilon() : 1e-6;
        Kit.Close(f.CpuOps.ToDoubleArray(yc), f.NpuOps.ToDoubleArray(yn), rel, 0, $"{op} {dtype.Name()} seed={Seed}");
    }

    [Fact]
    public void IntegerDivisionTruncatesAndDivisionByZeroIsZero()
    {
        using var a = f.NpuOps.FromArray(new double[] { 7, -7, 7, -7, 5 }, new Shape(5), DType.I32);
        using var b = f.NpuOps.FromArray(new double[] { 2, 2, -2, -2, 0 }, new Shape(5), DType.I32);
        using var y = f.NpuOps.Empty(new Shape(5), DType.I32);
        f.NpuOps.Binary(BinaryOp.Div, a, b, y);
        Assert.Equal(new double[] { 3, -3, -3, 3, 0 }, f.NpuOps.ToDoubleArray(y));
    }

    [Fact]
    public void MaxAndMinPropagateNaN()
    {
        using var a = f.NpuOps.FromArray(new double[] { double.NaN, 1, 2 }, new Shape(3));
        using var b = f.NpuOps.FromArray(new double[] { 1, double.NaN, 3 }, new Shape(3));
        using var y = f.NpuOps.Empty(new Shape(3));
        f.NpuOps.Binary(BinaryOp.Max, a, b, y);
        var max = f.NpuOps.ToDoubleArray(y);
        f.NpuOps.Binary(BinaryOp.Min, a, b, y);
        var min = f.NpuOps.ToDoubleArray(y);
        Assert.True(double.IsNaN(max[0]) && double.IsNaN(max[1]) && max[2] == 3, string.Join(",", max));
        Assert.True(double.IsNaN(min[0]) && double.IsNaN(min[1]) && min[2] == 2, string.Join(",", min));
    }

    [Fact]
    public void CastBetweenEveryPairOfDTypesMatchesCpu()
    {
        double[] values = [0, -0.0, 1, -1, 0.5, 1.5, 2.5, -2.5, 127.9, 128, 255.5, 256, -129, 3e9, -3e9, 1e19, -1e19, 65504, 70000, 1e-40,
            double.NaN, double.PositiveInfinity, double.NegativeInfinity, 1.00390625, 3.14159];
        foreach (var from in DTypeInfo.All)
        {
            var (sn, sc) = Kit.Both(f, values, new Shape(values.Length), from);
            using var _1 = sn;
            using var _2 = sc;
            foreach (var to in DTypeInfo.All)
            {
                using var yn = f.NpuOps.Empty(sn.Shape, to);
                using var yc = f.CpuOps.Empty(sc.Shape, to);
                f.NpuOps.Cast(sn, yn);
                f.CpuOps.Cast(sc, yc);
                // Casts are exact functions of their input: the two backends agree bit for bit.
                Kit.Close(f.CpuOps.ToDoubleArray(yc), f.NpuOps.ToDoubleArray(yn), 0, 0, $"cast {from.Name()}→{to.Name()}");
            }
        }
    }

    [Theory]
    [InlineData(DType.F32, 1.5)]
    [InlineData(DType.BF16, -3.0)]
    [InlineData(DType.I64, 7.0)]
    [InlineData(DType.Bool, 2.0)]
    public void FillWritesTheValueConvertedToTheDType(DType dtype, double value)
    {
        foreach (int n in new[] { 0, 1, 17, 65 })
        {
            using var y = f.NpuOps.Empty(new Shape(n), dtype);
            f.NpuOps.Fill(y, value);
            double expected = dtype == DType.Bool ? 1 : value;
            Assert.All(f.NpuOps.ToDoubleArray(y), v => Assert.Equal(expected, v));
        }
    }
}
