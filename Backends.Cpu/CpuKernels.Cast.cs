using Hal.Numerics;

namespace Hal.Backends.Cpu;

// Casts between all dtype pairs. Every source is read exactly into a double (float sources) or a long (integer and
// bool sources), then written with one rounding: float targets round to nearest even, integer targets truncate
// toward zero and saturate (NaN → 0), bool is (x != 0). Hot float pairs have direct loops.
internal sealed unsafe partial class CpuKernels
{
    private const int CastBlock = 256;

    public void Cast(Tensor src, Tensor dst)
    {
        if (src.DType == dst.DType)
        {
            Copy(src, dst);
            return;
        }
        nint sp = (nint)Ptr(src), dp = (nint)Ptr(dst);
        DType from = src.DType, to = dst.DType;
        long n = src.ElementCount;
        CpuParallel.RangeBody body = (from, to) switch
        {
            (DType.F32, DType.BF16) => (s, e) => CpuConvert.F32ToBf16((float*)sp + s, (ushort*)dp + s, e - s),
            (DType.BF16, DType.F32) => (s, e) => CpuConvert.Bf16ToF32((ushort*)sp + s, (float*)dp + s, e - s),
            (DType.F32, DType.F16) => (s, e) => CpuConvert.F32ToF16((float*)sp + s, (ushort*)dp + s, e - s),
            (DType.F16, DType.F32) => (s, e) => CpuConvert.F16ToF32((ushort*)sp + s, (float*)dp + s, e - s),
            (DType.F32, DType.F64) => (s, e) => F32ToF64((float*)sp + s, (double*)dp + s, e - s),
            (DType.F64, DType.F32) => (s, e) => F64ToF32((double*)sp + s, (float*)dp + s, e - s),
            _ when from.IsFloatingPoint() => (s, e) => CastViaDouble((byte*)sp, from, (byte*)dp, to, s, e),
            _ => (s, e) => CastViaLong((byte*)sp, from, (byte*)dp, to, s, e),
        };
        CpuParallel.For(Threads, n, body, alignItems: 64);
    }

    private static void F32ToF64(float* s, double* d, long n)
    {
        for (long i = 0; i < n; i++)
        {
            d[i] = s[i];
        }
    }

    private static void F64ToF32(double* s, float* d, long n)
    {
        for (long i = 0; i < n; i++)
        {
            d[i] = (float)s[i];
        }
    }

    private static void CastViaDouble(byte* src, DType from, byte* dst, DType to, long start, long end)
    {
        double* block = stackalloc double[CastBlock];
        for (long i = start; i < end; i += CastBlock)
        {
            int m = (int)Math.Min(CastBlock, end - i);
            for (int j = 0; j < m; j++)
            {
                long k = i + j;
                block[j] = from switch
                {
                    DType.F32 => ((float*)src)[k],
                    DType.F64 => ((double*)src)[k],
                    _ => CpuConvert.Load16(from, ((ushort*)src)[k]),
                };
            }
            int size = to.SizeInBytes();
            for (int j = 0; j < m; j++)
            {
                CastFromDouble(block[j], to, dst + ((i + j) * size));
            }
        }
    }

    private static void CastViaLong(byte* src, DType from, byte* dst, DType to, long start, long end)
    {
        long* block = stackalloc long[CastBlock];
        for (long i = start; i < end; i += CastBlock)
        {
            int m = (int)Math.Min(CastBlock, end - i);
            for (int j = 0; j < m; j++)
            {
                long k = i + j;
                block[j] = from switch
                {
                    DType.I32 => ((int*)src)[k],
                    DType.I64 => ((long*)src)[k],
                    DType.I8 => ((sbyte*)src)[k],
                    DType.U8 => src[k],
                    _ => src[k] != 0 ? 1 : 0,
                };
            }
            int size = to.SizeInBytes();
            for (int j = 0; j < m; j++)
            {
                CastFromLong(block[j], to, dst + ((i + j) * size));
            }
        }
    }

    /// <summary>Writes <paramref name="v"/> as one element of <paramref name="to"/> with the cast rules.</summary>
    internal static void CastFromDouble(double v, DType to, byte* dst)
    {
        switch (to)
        {
            case DType.F32: *(float*)dst = (float)v; break;
            case DType.F64: *(double*)dst = v; break;
            case DType.F16: *(ushort*)dst = CpuMath.DoubleToF16(v); break;
            case DType.BF16: *(ushort*)dst = HalfConvert.DoubleToBf16(v); break;
            case DType.I32: *(int*)dst = (int)CpuMath.SaturateToLong(v, int.MinValue, int.MaxValue); break;
            case DType.I64: *(long*)dst = CpuMath.SaturateToI64(v); break;
            case DType.I8: *(sbyte*)dst = (sbyte)CpuMath.SaturateToLong(v, sbyte.MinValue, sbyte.MaxValue); break;
            case DType.U8: *dst = (byte)CpuMath.SaturateToLong(v, 0, byte.MaxValue); break;
            case DType.Bool: *dst = v != 0 ? (byte)1 : (byte)0; break;
            default: throw new ArgumentOutOfRangeException(nameof(to), to, "unknown dtype");
        }
    }

    /// <summary>Writes integer <paramref name="v"/> as one element of <paramref name="to"/>; narrower integers saturate.</summary>
    internal static void CastFromLong(long v, DType to, byte* dst)
    {
        switch (to)
        {
            case DType.F32: *(float*)dst = v; break;
            case DType.F64: *(double*)dst = v; break;
            case DType.F16: *(ushort*)dst = CpuMath.LongToF16(v); break;
            case DType.BF16: *(ushort*)dst = CpuMath.LongToBf16(v); break;
            case DType.I32: *(int*)dst = (int)Math.Clamp(v, int.MinValue, int.MaxValue); break;
            case DType.I64: *(long*)dst = v; break;
            case DType.I8: *(sbyte*)dst = (sbyte)Math.Clamp(v, sbyte.MinValue, sbyte.MaxValue); break;
            case DType.U8: *dst = (byte)Math.Clamp(v, 0, byte.MaxValue); break;
            case DType.Bool: *dst = v != 0 ? (byte)1 : (byte)0; break;
            default: throw new ArgumentOutOfRangeException(nameof(to), to, "unknown dtype");
        }
    }

    /// <summary>One element of any dtype as a double (exact except I64 beyond 2⁵³).</summary>
    internal static double LoadAsDouble(byte* p, DType dtype, long i) => dtype switch
    {
        DType.F32 => ((float*)p)[i],
        DType.F64 => ((double*)p)[i],
        DType.F16 or DType.BF16 => CpuConvert.Load16(dtype, ((ushort*)p)[i]),
        DType.I32 => ((int*)p)[i],
        DType.I64 => ((long*)p)[i],
        DType.I8 => ((sbyte*)p)[i],
        DType.U8 => p[i],
        _ => p[i] != 0 ? 1 : 0,
    };

}
