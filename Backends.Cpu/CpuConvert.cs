using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using Hal.Numerics;

namespace Hal.Backends.Cpu;

/// <summary>Span conversions between F32 and the 16-bit storage types (RNE), vectorised where the bit tricks allow.</summary>
internal static unsafe class CpuConvert
{
    /// <summary>BF16 → F32 is a 16-bit shift, exact.</summary>
    internal static void Bf16ToF32(ushort* src, float* dst, long n)
    {
        long i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            for (; i <= n - 16; i += 16)
            {
                var v = Vector256.Load(src + i);
                var (lo, hi) = Vector256.Widen(v);
                Vector256.Store(Vector256.ShiftLeft(lo, 16).AsSingle(), dst + i);
                Vector256.Store(Vector256.ShiftLeft(hi, 16).AsSingle(), dst + i + 8);
            }
        }
        for (; i < n; i++)
        {
            dst[i] = HalfConvert.Bf16ToFloat(src[i]);
        }
    }

    /// <summary>F32 → BF16 round to nearest even; NaN stays a quiet NaN with its sign.</summary>
    internal static void F32ToBf16(float* src, ushort* dst, long n)
    {
        long i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            var bias = Vector256.Create(0x7FFFu);
            var one = Vector256.Create(1u);
            var quiet = Vector256.Create(0x0040_0000u);
            for (; i <= n - 16; i += 16)
            {
                var lo = RoundBf16(Vector256.Load(src + i).AsUInt32(), bias, one, quiet);
                var hi = RoundBf16(Vector256.Load(src + i + 8).AsUInt32(), bias, one, quiet);
                Vector256.Store(Vector256.Narrow(lo, hi), dst + i);
            }
        }
        for (; i < n; i++)
        {
            dst[i] = HalfConvert.FloatToBf16(src[i]);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<uint> RoundBf16(Vector256<uint> bits, Vector256<uint> bias, Vector256<uint> one, Vector256<uint> quiet)
    {
        var isNaN = Vector256.GreaterThan(bits & Vector256.Create(0x7FFF_FFFFu), Vector256.Create(0x7F80_0000u));
        var rounded = bits + bias + (Vector256.ShiftRightLogical(bits, 16) & one);
        return Vector256.ShiftRightLogical(Vector256.ConditionalSelect(isNaN, bits | quiet, rounded), 16);
    }

    /// <summary>F16 → F32, exact.</summary>
    internal static void F16ToF32(ushort* src, float* dst, long n)
    {
        for (long done = 0; done < n; done += int.MaxValue)
        {
            int m = (int)Math.Min(int.MaxValue, n - done);
            TensorPrimitives.ConvertToSingle(new ReadOnlySpan<Half>(src + done, m), new Span<float>(dst + done, m));
        }
    }

    /// <summary>F32 → F16 round to nearest even.</summary>
    internal static void F32ToF16(float* src, ushort* dst, long n)
    {
        for (long done = 0; done < n; done += int.MaxValue)
        {
            int m = (int)Math.Min(int.MaxValue, n - done);
            TensorPrimitives.ConvertToHalf(new ReadOnlySpan<float>(src + done, m), new Span<Half>(dst + done, m));
        }
    }

    /// <summary>16-bit → F32 for either storage type.</summary>
    internal static void Load16(DType dtype, ushort* src, float* dst, long n)
    {
        if (dtype == DType.BF16)
        {
            Bf16ToF32(src, dst, n);
        }
        else
        {
            F16ToF32(src, dst, n);
        }
    }

    /// <summary>F32 → 16-bit for either storage type.</summary>
    internal static void Store16(DType dtype, float* src, ushort* dst, long n)
    {
        if (dtype == DType.BF16)
        {
            F32ToBf16(src, dst, n);
        }
        else
        {
            F32ToF16(src, dst, n);
        }
    }

    /// <summary>One 16-bit element as F32.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static float Load16(DType dtype, ushort bits) =>
        dtype == DType.BF16 ? HalfConvert.Bf16ToFloat(bits) : (float)BitConverter.UInt16BitsToHalf(bits);

    /// <summary>One F32 value as 16-bit bits.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static ushort Store16(DType dtype, float value) =>
        dtype == DType.BF16 ? HalfConvert.FloatToBf16(value) : BitConverter.HalfToUInt16Bits((Half)value);
}
