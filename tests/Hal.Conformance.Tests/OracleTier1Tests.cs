using Hal.Conformance.Kernels;
using Hal.Conformance.Oracle;

namespace Hal.Conformance.Tests;

/// <summary>The tier-1 oracle against values known independently: tables of erf, IEEE conversions worked by hand, the Random123 Philox vectors.</summary>
public sealed class OracleTier1Tests
{
    /// <summary>Relative tolerance for the oracle's special functions: 4 F64 ULPs (2⁻⁵⁰): the oracle must be far more accurate than any bound it judges.</summary>
    private static readonly double SpecialRelative = Math.ScaleB(1, -50);

    // Reference values to 20 digits (Abramowitz & Stegun table 7.1 extended; computed at 30 digits with mpmath).
    [Theory]
    [InlineData(0.1, 0.1124629160182848984)]
    [InlineData(0.5, 0.52049987781304653768)]
    [InlineData(1.0, 0.84270079294971486934)]
    [InlineData(2.0, 0.99532226501895273416)]
    [InlineData(-1.0, -0.84270079294971486934)]
    public void ErfMatchesTable(double x, double erf)
    {
        double got = RefSpecial.Erf(x);
        Assert.True(Math.Abs(got - erf) <= SpecialRelative * Math.Abs(erf), $"erf({x}) = {got:R}, table {erf:R}");
    }

    [Theory]
    [InlineData(0.75, 0.2888443663464848684)]
    [InlineData(3.0, 0.000022090496998585441373)]
    [InlineData(5.0, 1.5374597944280348502e-12)]
    [InlineData(-0.75, 2 - 0.2888443663464848684)]
    public void ErfcMatchesTable(double x, double erfc)
    {
        double got = RefSpecial.Erfc(x);
        Assert.True(Math.Abs(got - erfc) <= SpecialRelative * Math.Abs(erfc), $"erfc({x}) = {got:R}, table {erfc:R}");
    }

    [Fact]
    public void ActivationsAtTheirLimitsAndInTheCancellingRange()
    {
        // gelu(−0.75) = −0.75·Φ(−0.75) to 20 digits (mpmath): the 1 + erf cancellation range.
        Assert.True(Math.Abs(RefScalar.Unary(UnaryOp.GeluErf, -0.75) - -0.1699705142826511495) <= SpecialRelative * 0.17);
        Assert.Equal(-0.0, RefScalar.Unary(UnaryOp.GeluErf, double.NegativeInfinity));
        Assert.True(double.IsNegative(RefScalar.Unary(UnaryOp.GeluTanh, double.NegativeInfinity)));
        Assert.Equal(double.PositiveInfinity, RefScalar.Unary(UnaryOp.Silu, double.PositiveInfinity));
        // σ(−740) = e^−740/(1 + e^−740) ≈ 4.2e−322, a subnormal; 1/(1 + e^740) would overflow to 0.
        double s = RefScalar.Unary(UnaryOp.Sigmoid, -740);
        Assert.True(s > 0 && s < 1e-320, $"sigmoid(-740) = {s:R}");
    }

    [Theory]
    [InlineData(1 + 5.9604644775390625E-08, DType.F32, 1.0)]                      // 1 + 2⁻²⁴: tie → even (1)
    [InlineData(1 + 1.7881393432617188E-07, DType.F32, 1.0000002384185791)]       // 1 + 3·2⁻²⁴: tie → even (1 + 2⁻²²)
    [InlineData(65519.0, DType.F16, 65504.0)]                                      // below the F16 overflow tie
    [InlineData(65520.0, DType.F16, double.PositiveInfinity)]                      // the tie at max + ulp/2 overflows
    [InlineData(2.98023223876953125E-08, DType.F16, 0.0)]                          // 2⁻²⁵ = half the smallest subnormal: tie → 0
    [InlineData(8.940696716308594E-08, DType.F16, 1.1920928955078125E-07)]         // 3·2⁻²⁵: tie → 2·2⁻²⁴
    [InlineData(1.00390625, DType.BF16, 1.0)]                                      // 1 + 2⁻⁸: BF16 tie → even
    [InlineData(1.01171875, DType.BF16, 1.015625)]                                 // 1 + 3·2⁻⁸ → 1 + 2⁻⁶
    [InlineData(300.0, DType.I8, 127.0)]                                           // saturation
    [InlineData(-300.0, DType.U8, 0.0)]
    [InlineData(-2.9, DType.I32, -2.0)]                                            // truncation toward zero
    [InlineData(double.NaN, DType.I64, 0.0)]                                       // NaN → 0
    [InlineData(double.NaN, DType.Bool, 1.0)]                                      // NaN ≠ 0
    [InlineData(1e300, DType.F32, double.PositiveInfinity)]
    public void CastRoundsTiesToEvenAndSaturates(double value, DType target, double expected) =>
        Assert.Equal(expected, RefTier1.Cast(value, target));

    [Fact]
    public void CastKeepsTheSignOfZero() => Assert.True(double.IsNegative(RefTier1.Cast(-0.0, DType.F16)));

    [Theory]
    [InlineData((1L << 62) + (1L << 38), DType.F32, 4.611686018427388E+18)]         // tie between 2⁶² and 2⁶² + 2³⁹ → even (2⁶²)
    [InlineData((1L << 62) + (1L << 38) + 1, DType.F32, 4.611686568183201792E+18)]  // just above the tie → 2⁶² + 2³⁹
    [InlineData((1L << 53) + 1, DType.F64, 9007199254740992.0)]                    // tie → 2⁵³
    [InlineData((1L << 53) + 3, DType.F64, 9007199254740996.0)]                    // tie → 2⁵³ + 4
    [InlineData(long.MaxValue, DType.F32, 9.223372036854775807E+18)]               // rounds up to 2⁶³
    [InlineData(long.MinValue, DType.F64, -9.223372036854775808E+18)]
    [InlineData(65520L, DType.F16, double.PositiveInfinity)]
    [InlineData(300L, DType.I8, 127.0)]
    [InlineData(-5L, DType.Bool, 1.0)]
    public void Int64CastsRoundOnce(long value, DType target, double expected) =>
        Assert.Equal(expected, RefTier1.CastInt64(value, target));

    /// <summary>Random123's kat_vectors for philox4x32 with 10 rounds: counter, key, expected output.</summary>
    [Theory]
    [InlineData(0u, 0u, 0u, 0u, 0u, 0u, 0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u)]
    [InlineData(0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu)]
    [InlineData(0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u, 0xa4093822u, 0x299f31d0u, 0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u)]
    public void PhiloxMatchesRandom123KnownAnswers(uint c0, uint c1, uint c2, uint c3, uint k0, uint k1, uint r0, uint r1, uint r2, uint r3) =>
        Assert.Equal([r0, r1, r2, r3], RefPhilox.Bijection([c0, c1, c2, c3], [k0, k1]));

    [Fact]
    public void StreamLayoutAndUniformMapping()
    {
        // Seed 0, block 0 is the all-zero known answer: element g is lane g of it; u = (x >> 8)·2⁻²⁴.
        Assert.Equal(0xe169c58du, RefPhilox.Word(0, 1));
        Assert.Equal(0x9b00dbd8u, RefPhilox.Word(0, 3));
        Assert.Equal((0x6627e8d5u >> 8) / 16777216.0, RefPhilox.Uniform(DType.F32, 0, 0, 0, 1));
        Assert.Equal((0xbc57ac4cu >> 8) / 16777216.0, RefPhilox.Uniform(DType.F64, 0, 2, 0, 1));
        // The block counter's high word carries block ≥ 2³²: element 4·2³² starts a block whose counter is (0, 1, 0, 0).
        Assert.Equal(RefPhilox.Bijection([0, 1, 0, 0], [7, 0])[0], RefPhilox.Word(7, 4UL << 32));
        // Normal: lanes 0 and 1 share (r, θ), so their squares sum to r².
        double z0 = RefPhilox.Normal(5, 8, 0, 1, out double r);
        double z1 = RefPhilox.Normal(5, 9, 0, 1, out _);
        Assert.True(Math.Abs(z0 * z0 + z1 * z1 - r * r) <= 1e-12 * (1 + r * r), $"z0 {z0}, z1 {z1}, r {r}");
    }

    [Fact]
    public void ReductionsOfEmptyAxesAndNaN()
    {
        var empty = new Shape(2, 0);
        Assert.Equal([0.0, 0.0], RefTier1.Reduce(ReduceOp.Sum, [], empty, 1, out _));
        Assert.All(RefTier1.Reduce(ReduceOp.Mean, [], empty, 1, out _), v => Assert.True(double.IsNaN(v)));
        Assert.Equal([double.NegativeInfinity, double.NegativeInfinity], RefTier1.Reduce(ReduceOp.Max, [], empty, 1, out _));
        Assert.Equal([double.PositiveInfinity, double.PositiveInfinity], RefTier1.Reduce(ReduceOp.Min, [], empty, 1, out _));
        // [2,3] along axis 0: Max propagates NaN; Σ|x| per column is the γ scale.
        double[] x = [1, double.NaN, -3, 4, 5, 6];
        var y = RefTier1.Reduce(ReduceOp.Max, x, new Shape(2, 3), 0, out double[] abs);
        Assert.Equal(4.0, y[0]);
        Assert.True(double.IsNaN(y[1]));
        Assert.Equal(6.0, y[2]);
        Assert.Equal(9.0, abs[2]);
        // argmax: first maximum, and the first NaN beats everything.
        Assert.Equal([1.0], RefTier1.ArgMax([1, 5, 5, 2], new Shape(4), 0));
        Assert.Equal([2.0], RefTier1.ArgMax([1, double.PositiveInfinity, double.NaN, double.NaN], new Shape(4), 0));
    }

    [Fact]
    public void BroadcastAndIndexOps()
    {
        // [2,1] ⊕ [3] → [2,3]
        double[] y = RefTier1.Broadcast([10, 20], [2, 1], [1, 2, 3], [3], (a, b) => a + b);
        Assert.Equal([11.0, 12, 13, 21, 22, 23], y);
        Assert.Null(RefTier1.BroadcastShape([3, 4], [5]));
        // Integer division truncates toward zero; x / 0 = 0.
        Assert.Equal(-2.0, RefTier1.Binary(BinaryOp.Div, DType.I32, -7, 3));
        Assert.Equal(0.0, RefTier1.Binary(BinaryOp.Div, DType.I8, 5, 0));
        // index_add with index [1, 1, 0] into rows of [2,2]: row 1 gets two terms (+ its initial value: 3 terms).
        double[] dst = RefTier1.IndexAdd([1, 1, 1, 1], new Shape(2, 2), 0, [1, 1, 0], [1, 2, 3, 4, 5, 6], out double[] scale, out int terms);
        Assert.Equal([6.0, 7, 5, 7], dst);
        Assert.Equal(3, terms);
        Assert.Equal(7.0, scale[3]);
        // gather along axis 1 of [[1,2],[3,4]] with [[1,1],[0,1]]
        Assert.Equal([2.0, 2, 3, 4], RefTier1.Gather([1, 2, 3, 4], new Shape(2, 2), 1, [1, 1, 0, 1], new Shape(2, 2)));
        Assert.Equal([3.0, 4], RefTier1.IndexSelect([1, 2, 3, 4], new Shape(2, 2), 0, [1]));
        double[] s = RefTier1.ScatterAdd([0, 0, 0, 0], new Shape(2, 2), 1, [1, 1, 0, 0], new Shape(2, 2), [1, 2, 3, 4], out _, out int sTerms);
        Assert.Equal([0.0, 3, 7, 0], s);
        Assert.Equal(3, sTerms);
    }
}
