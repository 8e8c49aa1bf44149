using System.Runtime.InteropServices;

namespace Hal.Numerics;

/// <summary>
/// Host-side conversion between doubles and the bytes of any dtype, with the contract's cast rules:
/// float targets round to nearest even; integer targets truncate toward zero and saturate, NaN → 0; Bool is (x != 0).
/// </summary>
public static class HostConvert
{
    /// <summary>Encodes <paramref name="values"/> as <paramref name="dtype"/> into <paramref name="dst"/> (length = count × element size).</summary>
    public static void FromDoubles(ReadOnlySpan<double> values, DType dtype, Span<byte> dst)
    {
        int size = dtype.SizeInBytes();
        if (dst.Length != values.Length * size)
        {
            throw new ArgumentException($"destination holds {dst.Length} bytes, {values.Length} {dtype.Name()} values need {values.Length * size}");
        }
        switch (dtype)
        {
            case DType.F64: values.CopyTo(MemoryMarshal.Cast<byte, double>(dst)); break;
            case DType.F32: Each(values, MemoryMarshal.Cast<byte, float>(dst), v => (float)v); break;
            case DType.F16: Each(values, MemoryMarshal.Cast<byte, ushort>(dst), v => BitConverter.HalfToUInt16Bits((Half)v)); break;
            case DType.BF16: Each(values, MemoryMarshal.Cast<byte, ushort>(dst), HalfConvert.DoubleToBf16); break;
            case DType.I32: Each(values, MemoryMarshal.Cast<byte, int>(dst), v => (int)Saturate(v, int.MinValue, int.MaxValue)); break;
            case DType.I64: Each(values, MemoryMarshal.Cast<byte, long>(dst), SaturateI64); break;
            case DType.I8: Each(values, MemoryMarshal.Cast<byte, sbyte>(dst), v => (sbyte)Saturate(v, sbyte.MinValue, sbyte.MaxValue)); break;
            case DType.U8: Each(values, dst, v => (byte)Saturate(v, 0, byte.MaxValue)); break;
            case DType.Bool: Each(values, dst, v => v != 0 ? (byte)1 : (byte)0); break;
            default: throw new ArgumentOutOfRangeException(nameof(dtype));
        }
    }

    /// <summary>Decodes bytes of <paramref name="dtype"/> into doubles (exact for every dtype but I64 beyond 2^53).</summary>
    public static void ToDoubles(ReadOnlySpan<byte> src, DType dtype, Span<double> values)
    {
        int size = dtype.SizeInBytes();
        if (src.Length != values.Length * size)
        {
            throw new ArgumentException($"source holds {src.Length} bytes, {values.Length} {dtype.Name()} values need {values.Length * size}");
        }
        switch (dtype)
        {
            case DType.F64: MemoryMarshal.Cast<byte, double>(src).CopyTo(values); break;
            case DType.F32: Each(MemoryMarshal.Cast<byte, float>(src), values, v => v); break;
            case DType.F16: Each(MemoryMarshal.Cast<byte, ushort>(src), values, v => HalfConvert.F16ToFloat(v)); break;
            case DType.BF16: Each(MemoryMarshal.Cast<byte, ushort>(src), values, v => HalfConvert.Bf16ToFloat(v)); break;
            case DType.I32: Each(MemoryMarshal.Cast<byte, int>(src), values, v => v); break;
            case DType.I64: Each(MemoryMarshal.Cast<byte, long>(src), values, v => v); break;
            case DType.I8: Each(MemoryMarshal.Cast<byte, sbyte>(src), values, v => v); break;
            case DType.U8: Each(src, values, v => v); break;
            case DType.Bool: Each(src, values, v => v != 0 ? 1 : 0); break;
            default: throw new ArgumentOutOfRangeException(nameof(dtype));
        }
    }

    private static double Saturate(double v, double lo, double hi) =>
        double.IsNaN(v) ? 0 : Math.Clamp(Math.Truncate(v), lo, hi);

    private static long SaturateI64(double v) =>
        double.IsNaN(v) ? 0 : v >= 9.2233720368547758E18 ? long.MaxValue : v <= -9.2233720368547758E18 ? long.MinValue : (long)v;

    private static void Each<TIn, TOut>(ReadOnlySpan<TIn> src, Span<TOut> dst, Func<TIn, TOut> f)
    {
        for (int i = 0; i < src.Length; i++)
        {
            dst[i] = f(src[i]);
        }
    }
}
