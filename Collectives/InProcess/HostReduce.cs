using System.Numerics;
using System.Runtime.Intrinsics;
using Hal.Numerics;

namespace Hal.Collectives.InProcess;

/// <summary>
/// Element-wise reduction of host memory for the in-process collectives: dst = a op b over count elements, then an
/// optional division by the rank count for Mean. F32/F64/I32/I64 use 256-bit vectors; F16/BF16 load to F32, combine
/// and round back once per call (one rounding per reduction step). Max/Min propagate NaN (IEEE 754-2019 maximum /
/// minimum, as <see cref="float.Max(float, float)"/>). Integer sums wrap; integer Mean truncates toward zero.
/// </summary>
internal static unsafe class HostReduce
{
    /// <summary>Copies bytes; a copy onto itself is skipped. Overlapping ranges are allowed (memmove).</summary>
    public static void Copy(IntPtr dst, IntPtr src, long bytes)
    {
        if (bytes > 0 && dst != src)
        {
            Buffer.MemoryCopy((void*)src, (void*)dst, bytes, bytes);
        }
    }

    /// <summary>dst[i] = a[i] op b[i]; Mean combines as Sum (the division comes once, at the end).</summary>
    public static void Combine(IntPtr dst, IntPtr a, IntPtr b, long count, DType dtype, ReduceOp op)
    {
        if (count <= 0)
        {
            return;
        }
        switch (dtype)
        {
            case DType.F32:
                CombineVector((float*)dst, (float*)a, (float*)b, count, op);
                break;
            case DType.F64:
                CombineVector((double*)dst, (double*)a, (double*)b, count, op);
                break;
            case DType.I32:
                CombineVector((int*)dst, (int*)a, (int*)b, count, op);
                break;
            case DType.I64:
                CombineVector((long*)dst, (long*)a, (long*)b, count, op);
                break;
            case DType.F16:
                CombineHalf((ushort*)dst, (ushort*)a, (ushort*)b, count, op, bf16: false);
                break;
            case DType.BF16:
                CombineHalf((ushort*)dst, (ushort*)a, (ushort*)b, count, op, bf16: true);
                break;
            default:
                throw new DTypeNotSupportedException("reduce", dtype, "inproc");
        }
    }

    /// <summary>dst[i] = dst[i] / divisor: correctly rounded for floats (16-bit: in F32, rounded once), truncating for integers.</summary>
    public static void DivideBy(IntPtr dst, long count, DType dtype, int divisor)
    {
        if (count <= 0 || divisor == 1)
        {
            return;
        }
        switch (dtype)
        {
            case DType.F32:
                DivideVector((float*)dst, count, divisor);
                break;
            case DType.F64:
                DivideVector((double*)dst, count, divisor);
                break;
            case DType.I32:
                DivideVector((int*)dst, count, divisor);
                break;
            case DType.I64:
                DivideVector((long*)dst, count, divisor);
                break;
            case DType.F16:
            case DType.BF16:
                {
                    bool bf16 = dtype == DType.BF16;
                    var p = (ushort*)dst;
                    float d = divisor;
                    for (long i = 0; i < count; i++)
                    {
                        p[i] = Store(Load(p[i], bf16) / d, bf16);
                    }
                    break;
                }
            default:
                throw new DTypeNotSupportedException("reduce", dtype, "inproc");
        }
    }

    private static void CombineVector<T>(T* dst, T* a, T* b, long count, ReduceOp op)
        where T : unmanaged, INumber<T>
    {
        long width = Vector256<T>.Count;
        long vectorEnd = count - count % width;
        long i = 0;
        switch (op)
        {
            case ReduceOp.Sum:
            case ReduceOp.Mean:
                for (; i < vectorEnd; i += width)
                {
                    Vector256.Store(Vector256.Load(a + i) + Vector256.Load(b + i), dst + i);
                }
                for (; i < count; i++)
                {
                    dst[i] = a[i] + b[i];
                }
                break;
            case ReduceOp.Max:
                for (; i < vectorEnd; i += width)
                {
                    Vector256.Store(Vector256.Max(Vector256.Load(a + i), Vector256.Load(b + i)), dst + i);
                }
                for (; i < count; i++)
                {
                    dst[i] = T.Max(a[i], b[i]);
                }
                break;
            case ReduceOp.Min:
                for (; i < vectorEnd; i += width)
                {
                    Vector256.Store(Vector256.Min(Vector256.Load(a + i), Vector256.Load(b + i)), dst + i);
                }
                for (; i < count; i++)
                {
                    dst[i] = T.Min(a[i], b[i]);
                }
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(op), op, "unknown reduce op");
        }
    }

    private static void DivideVector<T>(T* dst, long count, int divisor)
        where T : unmanaged, INumber<T>
    {
        T d = T.CreateChecked(divisor);
        long width = Vector256<T>.Count;
        long i = 0;
        if (typeof(T) == typeof(float) || typeof(T) == typeof(double))
        {
            // Integer vector division is emulated element by element anyway, so only floats take the vector loop.
            var dv = Vector256.Create(d);
            long vectorEnd = count - count % width;
            for (; i < vectorEnd; i += width)
            {
                Vector256.Store(Vector256.Load(dst + i) / dv, dst + i);
            }
        }
        for (; i < count; i++)
        {
            dst[i] /= d;
        }
    }

    private static void CombineHalf(ushort* dst, ushort* a, ushort* b, long count, ReduceOp op, bool bf16)
    {
        for (long i = 0; i < count; i++)
        {
            float x = Load(a[i], bf16);
            float y = Load(b[i], bf16);
            float r = op switch
            {
                ReduceOp.Max => float.Max(x, y),
                ReduceOp.Min => float.Min(x, y),
                _ => x + y,
            };
            dst[i] = Store(r, bf16);
        }
    }

    private static float Load(ushort bits, bool bf16) => bf16 ? HalfConvert.Bf16ToFloat(bits) : HalfConvert.F16ToFloat(bits);

    private static ushort Store(float value, bool bf16) => bf16 ? HalfConvert.FloatToBf16(value) : HalfConvert.FloatToF16(value);
}
