using System.Diagnostics;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Hal.Backends.Cpu;

/// <summary>
/// One element-wise binary op over any numeric element type, with 256- and 128-bit vector forms for F32/F64 when
/// <see cref="IsVectorized"/>. Integer Div truncates toward zero and a division by zero gives 0.
/// </summary>
internal interface IBinaryOp
{
    static abstract T Invoke<T>(T a, T b)
        where T : unmanaged, INumber<T>;

    static virtual bool IsVectorized => false;

    static virtual Vector256<T> Invoke<T>(Vector256<T> a, Vector256<T> b) => throw new UnreachableException();

    static virtual Vector128<T> Invoke<T>(Vector128<T> a, Vector128<T> b) => throw new UnreachableException();
}

internal readonly struct AddOp : IBinaryOp
{
    public static bool IsVectorized => true;
    public static T Invoke<T>(T a, T b) where T : unmanaged, INumber<T> => a + b;
    public static Vector256<T> Invoke<T>(Vector256<T> a, Vector256<T> b) => a + b;
    public static Vector128<T> Invoke<T>(Vector128<T> a, Vector128<T> b) => a + b;
}

internal readonly struct SubOp : IBinaryOp
{
    public static bool IsVectorized => true;
    public static T Invoke<T>(T a, T b) where T : unmanaged, INumber<T> => a - b;
    public static Vector256<T> Invoke<T>(Vector256<T> a, Vector256<T> b) => a - b;
    public static Vector128<T> Invoke<T>(Vector128<T> a, Vector128<T> b) => a - b;
}

internal readonly struct MulOp : IBinaryOp
{
    public static bool IsVectorized => true;
    public static T Invoke<T>(T a, T b) where T : unmanaged, INumber<T> => a * b;
    public static Vector256<T> Invoke<T>(Vector256<T> a, Vector256<T> b) => a * b;
    public static Vector128<T> Invoke<T>(Vector128<T> a, Vector128<T> b) => a * b;
}

internal readonly struct DivOp : IBinaryOp
{
    public static bool IsVectorized => true;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static T Invoke<T>(T a, T b) where T : unmanaged, INumber<T>
    {
        if (typeof(T) == typeof(float) || typeof(T) == typeof(double))
        {
            return a / b;
        }
        if (T.IsZero(b))
        {
            return T.Zero;
        }
        // MinValue / −1 overflows the hardware divide; its two's-complement answer is −a (MinValue again).
        // Unsigned types have no −1 (−T.One wraps to MaxValue there), so the rule is for signed types only.
        return T.IsNegative(-T.One) && b == -T.One ? T.Zero - a : a / b;
    }

    public static Vector256<T> Invoke<T>(Vector256<T> a, Vector256<T> b) => a / b;
    public static Vector128<T> Invoke<T>(Vector128<T> a, Vector128<T> b) => a / b;
}

internal readonly struct MaxOp : IBinaryOp
{
    public static bool IsVectorized => true;

    // INumber.Max and Vector.Max are the IEEE 754-2019 maximum: a NaN operand gives NaN.
    public static T Invoke<T>(T a, T b) where T : unmanaged, INumber<T> => T.Max(a, b);
    public static Vector256<T> Invoke<T>(Vector256<T> a, Vector256<T> b) => Vector256.Max(a, b);
    public static Vector128<T> Invoke<T>(Vector128<T> a, Vector128<T> b) => Vector128.Max(a, b);
}

internal readonly struct MinOp : IBinaryOp
{
    public static bool IsVectorized => true;
    public static T Invoke<T>(T a, T b) where T : unmanaged, INumber<T> => T.Min(a, b);
    public static Vector256<T> Invoke<T>(Vector256<T> a, Vector256<T> b) => Vector256.Min(a, b);
    public static Vector128<T> Invoke<T>(Vector128<T> a, Vector128<T> b) => Vector128.Min(a, b);
}

internal readonly struct PowOp : IBinaryOp
{
    // F32 pow evaluates in double and rounds once.
    public static T Invoke<T>(T a, T b) where T : unmanaged, INumber<T> =>
        T.CreateTruncating(Math.Pow(double.CreateTruncating(a), double.CreateTruncating(b)));
}
