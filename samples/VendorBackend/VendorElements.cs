using Hal;
using Hal.Numerics;

namespace Hal.Samples.VendorBackend;

/// <summary>
/// Element access to a tensor on the vendor device: loads and stores by flat index, converting to and from double
/// (float dtypes) or long (integer and bool dtypes) with the contract's rules. A real device reads its own memory in
/// its kernels; this one reads byte arrays on the host.
/// </summary>
internal readonly struct View
{
    private readonly byte[] _bytes;
    private readonly int _base;

    public View(Tensor t)
    {
        _bytes = ((VendorBuffer)t.Buffer).Bytes;
        _base = checked((int)t.OffsetBytes);
        DType = t.DType;
        Shape = t.Shape;
        Count = t.ElementCount;
    }

    public DType DType { get; }

    public Shape Shape { get; }

    public long Count { get; }

    private int At(long i) => _base + (int)(i * DType.SizeInBytes());

    /// <summary>Element i as a double: exact for every dtype except I64 beyond 2⁵³ (integer kernels use <see cref="GetInt"/>).</summary>
    public double Get(long i) => DType switch
    {
        DType.F32 => BitConverter.ToSingle(_bytes, At(i)),
        DType.F64 => BitConverter.ToDouble(_bytes, At(i)),
        DType.F16 => HalfConvert.F16ToFloat(BitConverter.ToUInt16(_bytes, At(i))),
        DType.BF16 => HalfConvert.Bf16ToFloat(BitConverter.ToUInt16(_bytes, At(i))),
        _ => GetInt(i),
    };

    /// <summary>Element i of an integer or bool tensor (bool as 0 or 1).</summary>
    public long GetInt(long i) => DType switch
    {
        DType.I32 => BitConverter.ToInt32(_bytes, At(i)),
        DType.I64 => BitConverter.ToInt64(_bytes, At(i)),
        DType.I8 => (sbyte)_bytes[At(i)],
        DType.U8 => _bytes[At(i)],
        DType.Bool => _bytes[At(i)] != 0 ? 1 : 0,
        _ => throw new InvalidOperationException($"{DType.Name()} is not an integer dtype"),
    };

    /// <summary>
    /// Stores v as a cast to the dtype would: floats round to nearest even; integers truncate toward zero and
    /// saturate, NaN → 0; bool is (v != 0).
    /// </summary>
    public void Set(long i, double v)
    {
        int at = At(i);
        switch (DType)
        {
            case DType.F32: BitConverter.TryWriteBytes(_bytes.AsSpan(at), (float)v); break;
            case DType.F64: BitConverter.TryWriteBytes(_bytes.AsSpan(at), v); break;
            case DType.F16: BitConverter.TryWriteBytes(_bytes.AsSpan(at), BitConverter.HalfToUInt16Bits((Half)v)); break;
            case DType.BF16: BitConverter.TryWriteBytes(_bytes.AsSpan(at), HalfConvert.DoubleToBf16(v)); break;
            case DType.Bool: _bytes[at] = v != 0 ? (byte)1 : (byte)0; break;
            default: SetSaturated(i, TruncateToLong(v)); break;
        }
    }

    /// <summary>Stores an integer result of integer arithmetic: wraps (two's complement) like the hardware's integer units.</summary>
    public void SetWrapped(long i, long v)
    {
        int at = At(i);
        switch (DType)
        {
            case DType.I32: BitConverter.TryWriteBytes(_bytes.AsSpan(at), unchecked((int)v)); break;
            case DType.I64: BitConverter.TryWriteBytes(_bytes.AsSpan(at), v); break;
            case DType.I8: _bytes[at] = unchecked((byte)(sbyte)v); break;
            case DType.U8: _bytes[at] = unchecked((byte)v); break;
            case DType.Bool: _bytes[at] = v != 0 ? (byte)1 : (byte)0; break;
            default: SetFromInteger(i, v); break;
        }
    }

    /// <summary>Stores an integer as a cast would: to a float dtype rounded to nearest even, to a narrower integer saturated, to bool (v != 0).</summary>
    public void SetSaturated(long i, long v)
    {
        int at = At(i);
        switch (DType)
        {
            case DType.I32: BitConverter.TryWriteBytes(_bytes.AsSpan(at), (int)Math.Clamp(v, int.MinValue, int.MaxValue)); break;
            case DType.I64: BitConverter.TryWriteBytes(_bytes.AsSpan(at), v); break;
            case DType.I8: _bytes[at] = unchecked((byte)(sbyte)Math.Clamp(v, sbyte.MinValue, sbyte.MaxValue)); break;
            case DType.U8: _bytes[at] = (byte)Math.Clamp(v, byte.MinValue, byte.MaxValue); break;
            case DType.Bool: _bytes[at] = v != 0 ? (byte)1 : (byte)0; break;
            default: SetFromInteger(i, v); break;
        }
    }

    /// <summary>Copies element <paramref name="srcIndex"/> of <paramref name="src"/> (same dtype) bit for bit.</summary>
    public void CopyFrom(View src, long srcIndex, long i)
    {
        int size = DType.SizeInBytes();
        Buffer.BlockCopy(src._bytes, src.At(srcIndex), _bytes, At(i), size);
    }

    private void SetFromInteger(long i, long v)
    {
        if (DType == DType.F64)
        {
            // The conversion instruction rounds to nearest even.
            Set(i, (double)v);
            return;
        }
        // To a narrower float: an exact double with the bits below 2⁵³ folded into a sticky bit rounds the same
        // way as v itself would (53 bits ≥ the target's 24 + 2), so one rounding in Set gives the right result.
        Set(i, StickyDouble(v));
    }

    private static double StickyDouble(long v)
    {
        const long Exact = 1L << 53;
        if (v > -Exact && v < Exact)
        {
            return v;
        }
        ulong magnitude = v < 0 ? unchecked((ulong)-v) : (ulong)v;
        int shift = 64 - 53 - System.Numerics.BitOperations.LeadingZeroCount(magnitude);
        ulong kept = magnitude >> shift;
        if ((magnitude & ((1UL << shift) - 1)) != 0)
        {
            kept |= 1;
        }
        double d = Math.ScaleB(kept, shift);
        return v < 0 ? -d : d;
    }

    /// <summary>Truncation toward zero with saturation to the 64-bit range, NaN → 0 (the narrower ranges saturate in <see cref="SetSaturated"/>).</summary>
    private static long TruncateToLong(double v)
    {
        if (double.IsNaN(v))
        {
            return 0;
        }
        if (v >= 9223372036854775808.0)
        {
            return long.MaxValue;
        }
        return v <= -9223372036854775808.0 ? long.MinValue : (long)Math.Truncate(v);
    }
}

/// <summary>Index arithmetic over row-major shapes.</summary>
internal static class Layout
{
    /// <summary>The shape split around <paramref name="axis"/>: (product before, size of axis, product after).</summary>
    public static (long Outer, int Length, long Inner) Around(Shape shape, int axis) =>
        (shape.Product(0, axis), shape[axis], shape.Product(axis + 1, shape.Rank));

    /// <summary>For every flat index of <paramref name="output"/>, the flat index of the element of <paramref name="input"/> that broadcasts to it (NumPy rules).</summary>
    public static long[] BroadcastMap(Shape input, Shape output)
    {
        var map = new long[output.ElementCount];
        int rank = output.Rank;
        var inStrides = new long[rank];
        long stride = 1;
        for (int d = rank - 1, s = input.Rank - 1; d >= 0; d--, s--)
        {
            int size = s >= 0 ? input[s] : 1;
            inStrides[d] = size == 1 ? 0 : stride;
            stride *= size;
        }
        var outStrides = output.Strides();
        for (long i = 0; i < map.Length; i++)
        {
            long rest = i, at = 0;
            for (int d = 0; d < rank; d++)
            {
                long coordinate = rest / outStrides[d];
                rest -= coordinate * outStrides[d];
                at += coordinate * inStrides[d];
            }
            map[i] = at;
        }
        return map;
    }
}
