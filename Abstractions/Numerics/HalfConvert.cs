namespace Hal.Numerics;

/// <summary>
/// Bit-exact conversions between F32 and the 16-bit storage types. F32→16-bit rounds to nearest, ties to even;
/// NaN stays NaN (quiet, sign kept), ±Inf stays ±Inf, values beyond the range become ±Inf.
/// </summary>
public static class HalfConvert
{
    /// <summary>F32 → BF16 bits, round-to-nearest-even.</summary>
    public static ushort FloatToBf16(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        if ((bits & 0x7FFF_FFFFu) > 0x7F80_0000u)
        {
            // NaN: keep sign and the top payload bits, force the quiet bit so truncation cannot make it Inf.
            return (ushort)((bits >> 16) | 0x0040u);
        }
        uint lsb = (bits >> 16) & 1u;
        uint rounded = bits + 0x7FFFu + lsb;
        return (ushort)(rounded >> 16);
    }

    /// <summary>
    /// F64 → BF16 bits, rounded once to nearest even (not twice through F32): the F32 step rounds to odd, which keeps
    /// the information the final 8-bit rounding needs.
    /// </summary>
    public static ushort DoubleToBf16(double value)
    {
        float f = (float)value;
        if (double.IsNaN(value) || (double)f == value)
        {
            return FloatToBf16(f);
        }
        uint bits = BitConverter.SingleToUInt32Bits(f);
        if (float.IsInfinity(f) || Math.Abs((double)f) > Math.Abs(value))
        {
            // Step back toward zero so the 24-bit value is the truncation (float max when the value overflowed F32).
            bits--;
        }
        return FloatToBf16(BitConverter.UInt32BitsToSingle(bits | 1u));
    }

    /// <summary>BF16 bits → F32 (exact).</summary>
    public static float Bf16ToFloat(ushort bits) => BitConverter.UInt32BitsToSingle((uint)bits << 16);

    /// <summary>F32 → F16 bits, round-to-nearest-even (IEEE binary16, subnormals kept).</summary>
    public static ushort FloatToF16(float value) => BitConverter.HalfToUInt16Bits((Half)value);

    /// <summary>F16 bits → F32 (exact).</summary>
    public static float F16ToFloat(ushort bits) => (float)BitConverter.UInt16BitsToHalf(bits);

    /// <summary>Rounds an F32 value through BF16 and back.</summary>
    public static float RoundToBf16(float value) => Bf16ToFloat(FloatToBf16(value));

    /// <summary>Rounds an F32 value through F16 and back.</summary>
    public static float RoundToF16(float value) => F16ToFloat(FloatToF16(value));
}
