using ILGPU;

namespace Hal.Backends.Cuda.Kernels;

/// <summary>
/// A tensor as a kernel sees it: the whole buffer as bytes, the view's first element and its dtype code
/// (<c>(int)DType</c>). Kernels load every dtype into a double (float dtypes) or a long (integer dtypes) and store
/// with one rounding, so one kernel body serves all dtypes; the dtype test is uniform across a warp.
/// </summary>
internal struct DeviceTensor
{
    public ArrayView<byte> Bytes;
    public long Offset;
    public int DType;

    public DeviceTensor(ArrayView<byte> bytes, long offset, int dtype)
    {
        Bytes = bytes;
        Offset = offset;
        DType = dtype;
    }
}

/// <summary>dtype codes as kernels compare them (the <see cref="Hal.DType"/> values).</summary>
internal static class DTypeCode
{
    public const int F32 = (int)Hal.DType.F32;
    public const int F64 = (int)Hal.DType.F64;
    public const int F16 = (int)Hal.DType.F16;
    public const int BF16 = (int)Hal.DType.BF16;
    public const int I32 = (int)Hal.DType.I32;
    public const int I64 = (int)Hal.DType.I64;
    public const int I8 = (int)Hal.DType.I8;
    public const int U8 = (int)Hal.DType.U8;
    public const int Bool = (int)Hal.DType.Bool;

    public static bool IsFloat(int code) => code <= BF16;
}
