namespace Hal;

/// <summary>Element types a tensor can hold. F16/BF16 are storage types: kernels compute and accumulate in F32.</summary>
public enum DType
{
    F32,
    F64,
    F16,
    BF16,
    I32,
    I64,
    I8,
    U8,
    Bool,
}

/// <summary>Sizes, names and classification of <see cref="DType"/>.</summary>
public static class DTypeInfo
{
    /// <summary>Every dtype, in declaration order.</summary>
    public static IReadOnlyList<DType> All { get; } = Enum.GetValues<DType>();

    /// <summary>Bytes per element.</summary>
    public static int SizeInBytes(this DType dtype) => dtype switch
    {
        DType.F32 or DType.I32 => 4,
        DType.F64 or DType.I64 => 8,
        DType.F16 or DType.BF16 => 2,
        DType.I8 or DType.U8 or DType.Bool => 1,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "unknown dtype"),
    };

    /// <summary>Lower-case short name used on the command line and in reports: f32, bf16, i64, bool…</summary>
    public static string Name(this DType dtype) => dtype switch
    {
        DType.F32 => "f32",
        DType.F64 => "f64",
        DType.F16 => "f16",
        DType.BF16 => "bf16",
        DType.I32 => "i32",
        DType.I64 => "i64",
        DType.I8 => "i8",
        DType.U8 => "u8",
        DType.Bool => "bool",
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "unknown dtype"),
    };

    /// <summary>True for F32, F64, F16 and BF16.</summary>
    public static bool IsFloatingPoint(this DType dtype) => dtype is DType.F32 or DType.F64 or DType.F16 or DType.BF16;

    /// <summary>True for the 16-bit storage types whose kernels compute in F32.</summary>
    public static bool Is16Bit(this DType dtype) => dtype is DType.F16 or DType.BF16;

    /// <summary>True for I32, I64, I8 and U8.</summary>
    public static bool IsInteger(this DType dtype) => dtype is DType.I32 or DType.I64 or DType.I8 or DType.U8;

    /// <summary>True for the dtypes accepted as indices by gather/scatter/embedding/cross-entropy (I32, I64).</summary>
    public static bool IsIndex(this DType dtype) => dtype is DType.I32 or DType.I64;

    /// <summary>Machine epsilon (distance from 1 to the next value) of a floating-point dtype.</summary>
    public static double Epsilon(this DType dtype) => dtype switch
    {
        DType.F64 => Math.Pow(2, -52),
        DType.F32 => Math.Pow(2, -23),
        DType.F16 => Math.Pow(2, -10),
        DType.BF16 => Math.Pow(2, -7),
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "epsilon is defined for floating-point dtypes only"),
    };

    /// <summary>Parses a short name (<c>f32</c>, <c>bf16</c>…; case-insensitive, also <c>float32</c>, <c>float16</c>, <c>bfloat16</c>).</summary>
    /// <exception cref="ArgumentException">the name is not a dtype; the message lists the valid names.</exception>
    public static DType Parse(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return name.Trim().ToLowerInvariant() switch
        {
            "f32" or "float32" or "float" => DType.F32,
            "f64" or "float64" or "double" => DType.F64,
            "f16" or "float16" or "half" => DType.F16,
            "bf16" or "bfloat16" => DType.BF16,
            "i32" or "int32" => DType.I32,
            "i64" or "int64" => DType.I64,
            "i8" or "int8" => DType.I8,
            "u8" or "uint8" => DType.U8,
            "bool" => DType.Bool,
            _ => throw new ArgumentException(
                $"unknown dtype '{name}'; expected one of {string.Join(", ", All.Select(d => d.Name()))}", nameof(name)),
        };
    }
}
