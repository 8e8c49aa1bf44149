namespace Hal.Backends.Cpu.Tests;

public sealed class Tier1CastTests(CpuFixture fx) : IClassFixture<CpuFixture>
{
    /// <summary>Values that probe rounding, saturation and the specials; each is first rounded to the source dtype.</summary>
    private static readonly double[] Values =
    [
        0.0, -0.0, 1, -1, 0.5, -0.5, 1.5, 2.5, -2.5, 0.49999997, 127, 128, 255, 256, -128, -129, 300.7, -300.7,
        65504, 65519, 65520, 1e5, 1e10, -1e10, 3e38, -3e38, 1e300, 16777217, 2147483647, 2147483648, -2147483649,
        33554435, 1.00390625, 1.01171875, 9.2233720368547758E18, -9.2233720368547758E18, 1e-40, -1e-40, 1e-8, 6e-8,
        double.NaN, double.PositiveInfinity, double.NegativeInfinity,
    ];

    /// <summary>The cast rules, written out: float targets round once (RNE), integers truncate and saturate, NaN → 0.</summary>
    private static double Cast(double v, DType to) => to switch
    {
        DType.F64 or DType.F32 or DType.F16 or DType.BF16 => Reference.RoundTo(v, to),
        DType.I32 => Saturate(v, int.MinValue, int.MaxValue),
        DType.I64 => double.IsNaN(v) ? 0 : v >= 9.2233720368547758E18 ? 9.2233720368547758E18 : v <= -9.2233720368547758E18 ? -9.2233720368547758E18 : Math.Truncate(v),
        DType.I8 => Saturate(v, -128, 127),
        DType.U8 => Saturate(v, 0, 255),
        _ => v != 0 ? 1 : 0,
    };

    private static double Saturate(double v, double lo, double hi) => double.IsNaN(v) ? 0 : Math.Clamp(Math.Truncate(v), lo, hi);

    public static TheoryData<DType, DType> Pairs()
    {
        var data = new TheoryData<DType, DType>();
        foreach (var a in DTypeInfo.All)
        {
            foreach (var b in DTypeInfo.All)
            {
                data.Add(a, b);
            }
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Pairs))]
    public void EveryPairFollowsTheCastRules(DType from, DType to)
    {
        var src = Array.ConvertAll(Values, v => Cast(v, from));
        using var a = fx.Ops.FromArray(src, new Shape(src.Length), from);
        using var b = fx.Ops.Empty(new Shape(src.Length), to);
        fx.Ops.Cast(a, b);
        var got = fx.Ops.ToDoubleArray(b);
        for (int i = 0; i < src.Length; i++)
        {
            double want = Cast(src[i], to);
            Assert.True(Kit.SameValue(got[i], want), $"{from.Name()}→{to.Name()}: {src[i]:R} gave {got[i]:R}, want {want:R}");
        }
    }

    [Theory]
    [InlineData(DType.F32, DType.BF16)]
    [InlineData(DType.BF16, DType.F32)]
    [InlineData(DType.F32, DType.F16)]
    [InlineData(DType.F16, DType.F32)]
    [InlineData(DType.F64, DType.F32)]
    [InlineData(DType.F32, DType.F64)]
    [InlineData(DType.F64, DType.BF16)]
    [InlineData(DType.I32, DType.F32)]
    [InlineData(DType.F32, DType.I32)]
    public void HotPairsOverSizes(DType from, DType to)
    {
        foreach (int n in Kit.Sizes)
        {
            int seed = 50 + n;
            var src = Array.ConvertAll(Kit.Random(seed, n, -70000, 70000), v => Cast(v * Math.Pow(2, -(Math.Abs(v) % 40)), from));
            using var a = fx.Ops.FromArray(src, new Shape(n), from);
            using var b = fx.Ops.Empty(new Shape(n), to);
            fx.Ops.Cast(a, b);
            var got = fx.Ops.ToDoubleArray(b);
            for (int i = 0; i < n; i++)
            {
                double want = Cast(src[i], to);
                Assert.True(Kit.SameValue(got[i], want), $"{from.Name()}→{to.Name()} n={n} seed={seed}: {src[i]:R} gave {got[i]:R}, want {want:R}");
            }
        }
    }

    /// <summary>
    /// Every finite value of the 16-bit format, the midpoint above it (a tie) and points a quarter-spacing either side,
    /// cast from F32 by the vectorised kernels, against the reference rounding.
    /// </summary>
    [Theory]
    [InlineData(DType.BF16)]
    [InlineData(DType.F16)]
    public void F32ToSixteenBitRoundsEveryMidpointLikeTheReference(DType to)
    {
        var values = new List<double>();
        var decoded = new double[65536];
        var bits = new byte[65536 * 2];
        for (int b = 0; b < 65536; b++)
        {
            bits[2 * b] = (byte)b;
            bits[(2 * b) + 1] = (byte)(b >> 8);
        }
        Numerics.HostConvert.ToDoubles(bits, to, decoded);
        for (int b = 0; b < 0x7FFF; b++)
        {
            double lo = decoded[b], hi = decoded[b + 1];
            if (double.IsNaN(lo) || double.IsInfinity(lo) || double.IsNaN(hi) || double.IsInfinity(hi))
            {
                continue;
            }
            double mid = (lo + hi) / 2, q = (hi - lo) / 4;
            values.AddRange([lo, mid, mid - q, mid + q, -mid, -(mid + q)]);
        }
        var src = values.ToArray();
        using var a = fx.Ops.FromArray(src, new Shape(src.Length), DType.F64);
        using var f = fx.Ops.Empty(new Shape(src.Length));
        fx.Ops.Cast(a, f);
        Assert.Equal(src, fx.Ops.ToDoubleArray(f)); // every point has at most 13 significant bits: exact in F32
        using var h = fx.Ops.Empty(new Shape(src.Length), to);
        fx.Ops.Cast(f, h);
        var got = fx.Ops.ToDoubleArray(h);
        for (int i = 0; i < src.Length; i++)
        {
            double want = Reference.RoundTo(src[i], to);
            Assert.True(got[i] == want, $"f32→{to.Name()}: {src[i]:R} gave {got[i]:R}, want {want:R}");
        }
    }

    [Fact]
    public void LargeI64RoundsOnceToFloatTargets()
    {
        // 2^53 + 1 and neighbours: a detour through double would round twice.
        long[] values = [(1L << 53) + 1, (1L << 40) + (1L << 32) + 1, -((1L << 40) + (1L << 32) + 1), long.MaxValue, long.MinValue, (1L << 24) + 1, 0x0100_8000_0000_0001];
        using var a = fx.Ops.FromArray(values, new Shape(values.Length));
        foreach (var to in new[] { DType.F32, DType.BF16, DType.F64, DType.F16 })
        {
            using var b = fx.Ops.Empty(new Shape(values.Length), to);
            fx.Ops.Cast(a, b);
            var got = fx.Ops.ToDoubleArray(b);
            for (int i = 0; i < values.Length; i++)
            {
                double want = RoundLong(values[i], to);
                Assert.True(got[i] == want, $"i64→{to.Name()}: {values[i]} gave {got[i]:R}, want {want:R}");
            }
        }
    }

    /// <summary>Rounds an integer to the format's precision by integer arithmetic, ties to even.</summary>
    private static double RoundLong(long v, DType to)
    {
        int bits = to switch { DType.F64 => 53, DType.F32 => 24, DType.F16 => 11, _ => 8 };
        System.Numerics.BigInteger m = System.Numerics.BigInteger.Abs(v);
        int length = (int)m.GetBitLength();
        int drop = Math.Max(0, length - bits);
        var kept = m >> drop;
        var rest = m - (kept << drop);
        var half = drop == 0 ? System.Numerics.BigInteger.Zero : System.Numerics.BigInteger.One << (drop - 1);
        if (drop > 0 && (rest > half || (rest == half && !kept.IsEven)))
        {
            kept += 1;
        }
        double r = Math.ScaleB((double)kept, drop) * Math.Sign(v);
        return to == DType.F16 && Math.Abs(r) > 65504 ? r * double.PositiveInfinity : r;
    }
}
