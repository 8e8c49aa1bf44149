namespace Hal.Conformance.Kernels;

/// <summary>
/// The suite's own model of each float storage format, written from the IEEE 754 definitions and independent of
/// the conversions in Hal.Numerics and in any backend: rounding a double to the nearest format value (ties to
/// even, overflow to ±Inf, subnormals kept), the spacing (ULP) at a value, and the integer ranges.
/// </summary>
public static class FloatFormat
{
    /// <summary>Explicit mantissa bits (p − 1), smallest normal exponent, largest exponent.</summary>
    private static (int Mantissa, int MinExp, int MaxExp) Params(DType dtype) => dtype switch
    {
        DType.F64 => (52, -1022, 1023),
        DType.F32 => (23, -126, 127),
        DType.F16 => (10, -14, 15),
        DType.BF16 => (7, -126, 127),
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "not a float dtype"),
    };

    /// <summary>The largest finite value of a float dtype.</summary>
    public static double MaxFinite(DType dtype)
    {
        var (m, _, e) = Params(dtype);
        return (2 - Math.ScaleB(1, -m)) * Math.ScaleB(1, e);
    }

    /// <summary>The smallest positive normal value of a float dtype.</summary>
    public static double MinNormal(DType dtype) => Math.ScaleB(1, Params(dtype).MinExp);

    /// <summary>The smallest positive subnormal value of a float dtype.</summary>
    public static double MinSubnormal(DType dtype)
    {
        var (m, minExp, _) = Params(dtype);
        return Math.ScaleB(1, minExp - m);
    }

    /// <summary>The spacing of <paramref name="dtype"/>'s values at |x| (1 for integer dtypes; the top binade's spacing for infinities).</summary>
    public static double Ulp(DType dtype, double x)
    {
        if (!dtype.IsFloatingPoint())
        {
            return 1;
        }
        var (m, minExp, maxExp) = Params(dtype);
        double ax = Math.Abs(x);
        if (double.IsNaN(ax))
        {
            return double.NaN;
        }
        int e = ax < MinNormal(dtype) ? minExp : Math.Min(Math.ILogB(ax), maxExp);
        return Math.ScaleB(1, e - m);
    }

    /// <summary>
    /// x rounded to the nearest value of <paramref name="dtype"/>: ties to even, beyond the largest finite value to
    /// ±Inf (IEEE 754 §4.3.1, §7.4), NaN kept, the sign of zero kept. Integer dtypes: round toward zero and
    /// saturate, NaN → 0 (the contract's float→int cast); Bool: x ≠ 0.
    /// </summary>
    public static double Round(DType dtype, double x)
    {
        if (!dtype.IsFloatingPoint())
        {
            return RoundToInteger(dtype, x);
        }
        if (dtype == DType.F64 || double.IsNaN(x) || double.IsInfinity(x) || x == 0)
        {
            return x;
        }
        double spacing = Ulp(dtype, x);
        // x / spacing scales by a power of two (exact), so Math.Round sees the exact quotient.
        double r = Math.Round(x / spacing, MidpointRounding.ToEven) * spacing;
        if (Math.Abs(r) > MaxFinite(dtype))
        {
            return x > 0 ? double.PositiveInfinity : double.NegativeInfinity;
        }
        return r == 0 ? (x < 0 ? -0.0 : 0.0) : r;
    }

    /// <summary>The inclusive range of an integer dtype (Bool: 0..1).</summary>
    public static (double Min, double Max) IntegerRange(DType dtype) => dtype switch
    {
        DType.I8 => (sbyte.MinValue, sbyte.MaxValue),
        DType.U8 => (0, byte.MaxValue),
        DType.I32 => (int.MinValue, int.MaxValue),
        DType.I64 => (long.MinValue, long.MaxValue),
        DType.Bool => (0, 1),
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "not an integer dtype"),
    };

    private static double RoundToInteger(DType dtype, double x)
    {
        if (dtype == DType.Bool)
        {
            // NaN ≠ 0, so NaN → 1, as the contract's (x != 0).
            return x != 0 ? 1 : 0;
        }
        if (double.IsNaN(x))
        {
            return 0;
        }
        var (min, max) = IntegerRange(dtype);
        return Math.Clamp(Math.Truncate(x), min, max);
    }
}
