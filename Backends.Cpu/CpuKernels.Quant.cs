using Hal.Numerics;

namespace Hal.Backends.Cpu;

// Symmetric per-row int8 quantisation and its inverse. Legend: R rows, C columns (the last axis);
// x, y [R, C] float; q [R, C] I8; scale [R] F32.
internal sealed partial class CpuKernels
{
    public unsafe void QuantizeInt8(Tensor x, Tensor q, Tensor scale)
    {
        var (rows, c) = RowsCols(x);
        nint px = (nint)Ptr(x), pq = (nint)Ptr(q), ps = (nint)Ptr(scale);
        DType dtype = x.DType;
        ParallelFor(rows, c, (start, end) =>
        {
            for (long r = start; r < end; r++)
            {
                long row = r * c;
                double maxAbs = 0;
                for (int i = 0; i < c; i++)
                {
                    maxAbs = Math.Max(maxAbs, Math.Abs(LoadAny(px, dtype, row + i)));
                }
                // The scale is stored as F32 and dequantisation multiplies by that stored value, so quantise with it too.
                float s = maxAbs == 0 ? 1f : (float)(maxAbs / 127);
                ((float*)ps)[r] = s;
                sbyte* qr = (sbyte*)pq + row;
                for (int i = 0; i < c; i++)
                {
                    double level = Math.Round(LoadAny(px, dtype, row + i) / s, MidpointRounding.ToEven);
                    // NaN compares false both ways and lands on 0.
                    qr[i] = level >= 127 ? (sbyte)127 : level <= -127 ? (sbyte)-127 : double.IsNaN(level) ? (sbyte)0 : (sbyte)level;
                }
            }
        });
    }

    public unsafe void DequantizeInt8(Tensor q, Tensor scale, Tensor y)
    {
        var (rows, c) = RowsCols(q);
        nint py = (nint)Ptr(y), pq = (nint)Ptr(q), ps = (nint)Ptr(scale);
        DType dtype = y.DType;
        ParallelFor(rows, c, (start, end) =>
        {
            for (long r = start; r < end; r++)
            {
                float s = ((float*)ps)[r];
                long row = r * c;
                for (int i = 0; i < c; i++)
                {
                    // In double the product of an int8 level and an F32 scale is exact; StoreAny rounds it once.
                    StoreAny(py, dtype, row + i, (double)((sbyte*)pq)[row + i] * s);
                }
            }
        });
    }

    private static unsafe double LoadAny(nint p, DType dtype, long i) => dtype switch
    {
        DType.F32 => ((float*)p)[i],
        DType.F64 => ((double*)p)[i],
        DType.F16 => HalfConvert.F16ToFloat(((ushort*)p)[i]),
        _ => HalfConvert.Bf16ToFloat(((ushort*)p)[i]),
    };

    private static unsafe void StoreAny(nint p, DType dtype, long i, double value)
    {
        switch (dtype)
        {
            case DType.F32:
                ((float*)p)[i] = (float)value;
                break;
            case DType.F64:
                ((double*)p)[i] = value;
                break;
            case DType.F16:
                ((ushort*)p)[i] = HalfConvert.FloatToF16((float)value);
                break;
            default:
                ((ushort*)p)[i] = HalfConvert.FloatToBf16((float)value);
                break;
        }
    }
}
