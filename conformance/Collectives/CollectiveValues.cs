using System.Buffers.Binary;
using System.Globalization;
using Hal.Numerics;

namespace Hal.Conformance.Collectives;

/// <summary>
/// Inputs whose reductions are exact in any order, chosen as nccl-tests chooses them: every element is a small
/// integer number of units (a power of two apart), bounded so that a sum over all ranks, and every partial sum,
/// fits the dtype's significand. Values depend only on (seed, rank, element), so every rank can compute what every
/// other rank holds and therefore the exact expected result, locally.
/// </summary>
public static class CollectiveValues
{
    /// <summary>The value of one unit for float dtypes: 2⁻⁴, so results exercise fractional bits too.</summary>
    public const double FloatUnit = 1.0 / 16;

    /// <summary>
    /// The largest |units| of one element for <paramref name="ranks"/> ranks: 2^p / ranks for a p-bit significand
    /// (F16 11, BF16 8, F32 24, F64 53), capped at 2²⁰ so that sums of F32 and F64 stay well inside the range, and
    /// 2²⁴ for I32 (so sums over 8 ranks do not wrap and Mean truncation is unambiguous).
    /// </summary>
    public static long MaxUnits(DType dtype, int ranks)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(ranks, 1);
        int significandBits = dtype switch
        {
            DType.F16 => 11,
            DType.BF16 => 8,
            DType.F32 => 24,
            DType.F64 => 53,
            DType.I32 => 24,
            DType.I64 => 24,
            _ => throw new DTypeNotSupportedException("collective conformance", dtype, "conformance", "no exact input scheme for this dtype"),
        };
        long bound = Math.Min(1L << significandBits, 1L << 24) / ranks;
        return dtype.IsFloatingPoint() ? Math.Min(bound, 1L << 20) : bound;
    }

    /// <summary>Units of element <paramref name="element"/> on <paramref name="rank"/>: uniform in [−maxUnits, maxUnits].</summary>
    public static long Units(ulong seed, int rank, long element, long maxUnits)
    {
        ulong h = Mix(seed ^ Mix(((ulong)(uint)rank << 40) ^ (ulong)element ^ 0x9E37_79B9_7F4A_7C15UL));
        return (long)(h % (ulong)(2 * maxUnits + 1)) - maxUnits;
    }

    /// <summary>A per-case seed from the run's seed and the case id, so that cases do not share inputs.</summary>
    public static ulong CaseSeed(ulong seed, string caseId)
    {
        ulong h = seed;
        foreach (char c in caseId)
        {
            h = Mix(h ^ c);
        }
        return h;
    }

    /// <summary>The value <paramref name="units"/> stand for in <paramref name="dtype"/>.</summary>
    public static double ValueOf(long units, DType dtype) => dtype.IsFloatingPoint() ? units * FloatUnit : units;

    /// <summary>Writes <paramref name="value"/> (exactly representable, or rounded to nearest even) as one element at <paramref name="index"/>.</summary>
    public static void Write(Span<byte> bytes, long index, DType dtype, double value)
    {
        int size = dtype.SizeInBytes();
        var dst = bytes.Slice(checked((int)(index * size)), size);
        switch (dtype)
        {
            case DType.F32:
                BinaryPrimitives.WriteSingleLittleEndian(dst, (float)value);
                break;
            case DType.F64:
                BinaryPrimitives.WriteDoubleLittleEndian(dst, value);
                break;
            case DType.F16:
                BinaryPrimitives.WriteUInt16LittleEndian(dst, HalfConvert.FloatToF16((float)value));
                break;
            case DType.BF16:
                BinaryPrimitives.WriteUInt16LittleEndian(dst, HalfConvert.FloatToBf16((float)value));
                break;
            case DType.I32:
                BinaryPrimitives.WriteInt32LittleEndian(dst, checked((int)value));
                break;
            case DType.I64:
                BinaryPrimitives.WriteInt64LittleEndian(dst, checked((long)value));
                break;
            default:
                throw new DTypeNotSupportedException("collective conformance", dtype, "conformance");
        }
    }

    /// <summary>Reads element <paramref name="index"/> as a double (exact for every dtype here but large I64).</summary>
    public static double Read(ReadOnlySpan<byte> bytes, long index, DType dtype)
    {
        int size = dtype.SizeInBytes();
        var src = bytes.Slice(checked((int)(index * size)), size);
        return dtype switch
        {
            DType.F32 => BinaryPrimitives.ReadSingleLittleEndian(src),
            DType.F64 => BinaryPrimitives.ReadDoubleLittleEndian(src),
            DType.F16 => HalfConvert.F16ToFloat(BinaryPrimitives.ReadUInt16LittleEndian(src)),
            DType.BF16 => HalfConvert.Bf16ToFloat(BinaryPrimitives.ReadUInt16LittleEndian(src)),
            DType.I32 => BinaryPrimitives.ReadInt32LittleEndian(src),
            DType.I64 => BinaryPrimitives.ReadInt64LittleEndian(src),
            _ => throw new DTypeNotSupportedException("collective conformance", dtype, "conformance"),
        };
    }

    /// <summary>The raw bit pattern of element <paramref name="index"/>.</summary>
    public static ulong Bits(ReadOnlySpan<byte> bytes, long index, DType dtype)
    {
        int size = dtype.SizeInBytes();
        var src = bytes.Slice(checked((int)(index * size)), size);
        return size switch
        {
            2 => BinaryPrimitives.ReadUInt16LittleEndian(src),
            4 => BinaryPrimitives.ReadUInt32LittleEndian(src),
            _ => BinaryPrimitives.ReadUInt64LittleEndian(src),
        };
    }

    /// <summary>
    /// The exact reduction of <paramref name="units"/> (the operands over ranks, as integer units) in
    /// <paramref name="dtype"/>'s value space. Sums of these inputs are exact in every dtype; Mean is the exact
    /// quotient for floats (checked within 2 ULP) and truncates toward zero for integers.
    /// </summary>
    public static double Reduce(ReadOnlySpan<long> units, ReduceOp op, DType dtype)
    {
        long acc = units[0];
        for (int i = 1; i < units.Length; i++)
        {
            acc = op switch
            {
                ReduceOp.Sum or ReduceOp.Mean => acc + units[i],
                ReduceOp.Max => Math.Max(acc, units[i]),
                ReduceOp.Min => Math.Min(acc, units[i]),
                _ => throw new ArgumentOutOfRangeException(nameof(op), op, null),
            };
        }
        if (op != ReduceOp.Mean)
        {
            return ValueOf(acc, dtype);
        }
        // Integer Mean truncates toward zero (C# long division does); float Mean is the exact quotient.
        return dtype.IsFloatingPoint() ? acc * FloatUnit / units.Length : acc / units.Length;
    }

    /// <summary>One unit in the last place of <paramref name="dtype"/> at <paramref name="value"/> (the subnormal step near zero).</summary>
    public static double Ulp(double value, DType dtype)
    {
        (int precision, int minExponent) = dtype switch
        {
            DType.F16 => (11, -14),
            DType.BF16 => (8, -126),
            DType.F32 => (24, -126),
            DType.F64 => (53, -1022),
            _ => (1, 0),
        };
        double a = Math.Abs(value);
        int exponent = a == 0 ? minExponent : Math.Max(Math.ILogB(a), minExponent);
        return Math.ScaleB(1.0, exponent - (precision - 1));
    }

    /// <summary>A value and its bit pattern, for reports: <c>1.5 (0x3fc00000)</c>.</summary>
    public static string Describe(double value, ulong bits, DType dtype) =>
        string.Create(CultureInfo.InvariantCulture, $"{value:R} (0x{bits.ToString("x" + (dtype.SizeInBytes() * 2), CultureInfo.InvariantCulture)})");

    private static ulong Mix(ulong z)
    {
        // SplitMix64's finalizer: every input bit affects every output bit.
        z = (z ^ (z >> 30)) * 0xBF58_476D_1CE4_E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D0_49BB_1331_11EBUL;
        return z ^ (z >> 31);
    }
}
