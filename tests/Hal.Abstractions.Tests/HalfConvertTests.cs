using Hal.Numerics;

namespace Hal.Abstractions.Tests;

public sealed class HalfConvertTests
{
    /// <summary>Reference RNE to a binary format by scaling to an integer multiple of the ulp and Math.Round in double.</summary>
    internal static double RoundToFormat(double v, int mantissaBits, int minExponent, int maxExponent)
    {
        if (double.IsNaN(v) || double.IsInfinity(v) || v == 0)
        {
            return v;
        }
        int e = Math.Max(minExponent, Math.ILogB(Math.Abs(v)));
        double ulp = Math.ScaleB(1.0, e - mantissaBits);
        double r = Math.Round(v / ulp, MidpointRounding.ToEven) * ulp;
        double max = Math.ScaleB(2.0 - Math.ScaleB(1.0, -mantissaBits), maxExponent);
        return Math.Abs(r) > max ? (r > 0 ? double.PositiveInfinity : double.NegativeInfinity) : r;
    }

    /// <summary>The value of BF16 bits, decoded by the format's definition (sign, 8-bit exponent, 7-bit fraction).</summary>
    private static double DecodeBf16(ushort bits) => Decode(bits, 8, 7);

    private static double DecodeF16(ushort bits) => Decode(bits, 5, 10);

    private static double Decode(ushort bits, int exponentBits, int fractionBits)
    {
        int sign = bits >> 15;
        int exp = (bits >> fractionBits) & ((1 << exponentBits) - 1);
        int frac = bits & ((1 << fractionBits) - 1);
        int bias = (1 << (exponentBits - 1)) - 1;
        double v = exp == 0
            ? Math.ScaleB(frac, 1 - bias - fractionBits)
            : exp == (1 << exponentBits) - 1
                ? (frac == 0 ? double.PositiveInfinity : double.NaN)
                : Math.ScaleB(frac + (1 << fractionBits), exp - bias - fractionBits);
        return sign == 1 ? -v : v;
    }

    [Fact]
    public void Bf16DecodesAndRoundTripsEveryBitPattern()
    {
        for (int b = 0; b < 65536; b++)
        {
            ushort bits = (ushort)b;
            float f = HalfConvert.Bf16ToFloat(bits);
            double want = DecodeBf16(bits);
            Assert.True(double.IsNaN(want) ? float.IsNaN(f) : f == want && (b >> 15 == 1) == float.IsNegative(f), $"bf16 0x{b:X4}: {f} vs {want}");
            ushort back = HalfConvert.FloatToBf16(f);
            if (double.IsNaN(want))
            {
                // NaN stays NaN, quiet, with its sign.
                Assert.True((back & 0x7F80) == 0x7F80 && (back & 0x0040) != 0 && (back >> 15) == (b >> 15), $"bf16 NaN 0x{b:X4} → 0x{back:X4}");
            }
            else
            {
                Assert.True(back == bits, $"bf16 0x{b:X4} → 0x{back:X4}");
            }
        }
    }

    [Fact]
    public void F16DecodesAndRoundTripsEveryBitPattern()
    {
        for (int b = 0; b < 65536; b++)
        {
            ushort bits = (ushort)b;
            float f = HalfConvert.F16ToFloat(bits);
            double want = DecodeF16(bits);
            Assert.True(double.IsNaN(want) ? float.IsNaN(f) : f == want, $"f16 0x{b:X4}: {f} vs {want}");
            ushort back = HalfConvert.FloatToF16(f);
            if (double.IsNaN(want))
            {
                Assert.True((back & 0x7C00) == 0x7C00 && (back & 0x03FF) != 0 && (back >> 15) == (b >> 15), $"f16 NaN 0x{b:X4} → 0x{back:X4}");
            }
            else
            {
                Assert.True(back == bits, $"f16 0x{b:X4} → 0x{back:X4}");
            }
        }
    }

    /// <summary>
    /// Every BF16 value, the midpoint above it (a tie), and points a quarter-ulp either side of that midpoint: the
    /// float → bf16 conversion must agree with the reference rounding on each.
    /// </summary>
    [Fact]
    public void FloatToBf16RoundsToNearestEvenIncludingTies()
    {
        for (int b = 0; b < 0x7F7F; b++)
        {
            double lo = DecodeBf16((ushort)b), hi = DecodeBf16((ushort)(b + 1));
            double mid = (lo + hi) / 2;
            foreach (double v in new[] { lo, mid, mid - ((hi - lo) / 4), mid + ((hi - lo) / 4), -mid })
            {
                float f = (float)v; // exact: these points have at most 10 significant bits
                Assert.Equal(v, (double)f);
                double want = RoundToFormat(v, 7, -126, 127);
                double got = HalfConvert.Bf16ToFloat(HalfConvert.FloatToBf16(f));
                Assert.True(got == want, $"bf16 rounding of {v:R} (from 0x{b:X4}): got {got:R} want {want:R}");
            }
        }
    }

    [Fact]
    public void FloatToF16RoundsToNearestEvenIncludingTiesAndOverflow()
    {
        for (int b = 0; b < 0x7C00; b++)
        {
            double lo = DecodeF16((ushort)b), hi = b + 1 == 0x7C00 ? 65536 : DecodeF16((ushort)(b + 1));
            double mid = (lo + hi) / 2;
            foreach (double v in new[] { lo, mid, mid - ((hi - lo) / 4), mid + ((hi - lo) / 4), -mid })
            {
                double want = RoundToFormat(v, 10, -14, 15);
                double got = HalfConvert.F16ToFloat(HalfConvert.FloatToF16((float)v));
                Assert.True(got == want, $"f16 rounding of {v:R}: got {got:R} want {want:R}");
            }
        }
        Assert.Equal(float.PositiveInfinity, HalfConvert.RoundToF16(1e6f));
        Assert.Equal(float.NegativeInfinity, HalfConvert.RoundToF16(-65520f));
        Assert.Equal(65504f, HalfConvert.RoundToF16(65519f));
    }

    [Fact]
    public void SpecialsSurviveBothFormats()
    {
        Assert.Equal(float.PositiveInfinity, HalfConvert.RoundToBf16(float.PositiveInfinity));
        Assert.Equal(float.NegativeInfinity, HalfConvert.RoundToBf16(float.NegativeInfinity));
        Assert.Equal(float.PositiveInfinity, HalfConvert.RoundToBf16(float.MaxValue));
        Assert.True(float.IsNegative(HalfConvert.RoundToBf16(-0.0f)));
        // A NaN whose payload lies only in the low 16 bits must not truncate to Inf.
        float lowPayloadNaN = BitConverter.UInt32BitsToSingle(0xFF80_0001);
        ushort bits = HalfConvert.FloatToBf16(lowPayloadNaN);
        Assert.True(float.IsNaN(HalfConvert.Bf16ToFloat(bits)) && (bits & 0x8000) != 0);
        Assert.True(float.IsNaN(HalfConvert.RoundToF16(float.NaN)));
        // The smallest F32 subnormal rounds to +0 in F16 and stays itself… in BF16 it is below half the smallest
        // BF16 subnormal (2^-133), so it rounds to 0 as well.
        Assert.Equal(0f, HalfConvert.RoundToF16(float.Epsilon));
        Assert.Equal(0f, HalfConvert.RoundToBf16(float.Epsilon));
        Assert.Equal(Math.ScaleB(1.0, -133), HalfConvert.RoundToBf16((float)Math.ScaleB(1.0, -133)));
    }
}
