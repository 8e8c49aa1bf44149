using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Hal.Backends.Cpu;

/// <summary>
/// Vectorised single-precision exp, within 2 ULP of the true value over the normal range.
/// Method: x = n·ln2 + r with n = round(x/ln2), |r| ≤ ln2/2, r formed in two steps (Cody–Waite: ln2 = L1 + L2 with
/// L1 = 355/512, whose 9 significant bits make n·L1 exact); exp(r) by its degree-7 Taylor polynomial, whose
/// truncation error (ln2/2)^8/8! ≈ 5e-9 is under 0.1 ULP; 2^n applied as two exact power-of-two factors so that
/// results in the subnormal range and overflow to +Inf come out right.
/// </summary>
internal static class CpuExp
{
    private const float Log2E = 1.44269504088896341f;
    private const float Ln2High = 0.693359375f;
    private const float Ln2Low = -2.12194440054690583e-4f;

    // Adding then subtracting 1.5·2^23 rounds a float of magnitude < 2^22 to the nearest integer, ties to even.
    private const float RoundMagic = 12582912f;

    /// <summary>exp of each lane (T must be float); NaN stays NaN, −Inf gives 0, +Inf gives +Inf.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<T> Exp<T>(Vector256<T> x)
        where T : unmanaged => Exp(x.AsSingle()).As<float, T>();

    /// <summary>exp of each lane; NaN stays NaN, −Inf gives 0, +Inf gives +Inf.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<float> Exp(Vector256<float> x)
    {
        // Beyond these bounds exp is 0 or +Inf in float; clamping keeps n inside the int range used below.
        var xc = Vector256.Min(Vector256.Max(x, Vector256.Create(-110f)), Vector256.Create(100f));
        var magic = Vector256.Create(RoundMagic);
        var n = Vector256.FusedMultiplyAdd(xc, Vector256.Create(Log2E), magic) - magic;
        var r = Vector256.FusedMultiplyAdd(n, Vector256.Create(-Ln2High), xc);
        r = Vector256.FusedMultiplyAdd(n, Vector256.Create(-Ln2Low), r);

        var p = Vector256.Create(1f / 5040f);
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(1f / 720f));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(1f / 120f));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(1f / 24f));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(1f / 6f));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(0.5f));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(1f));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(1f));

        // n in [-159, 145]: split so each factor's biased exponent stays in the normal range [1, 254].
        var ni = Vector256.ConvertToInt32(n);
        var n1 = Vector256.ShiftRightArithmetic(ni, 1);
        var n2 = ni - n1;
        var bias = Vector256.Create(127);
        var f1 = Vector256.ShiftLeft(n1 + bias, 23).AsSingle();
        var f2 = Vector256.ShiftLeft(n2 + bias, 23).AsSingle();
        var result = p * f1 * f2;
        return Vector256.ConditionalSelect(Vector256.Equals(x, x), result, x);
    }

    /// <summary>exp of each lane with AVX-512, the same steps and rounding as the 256-bit form; NaN stays NaN, −Inf gives 0, +Inf gives +Inf.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector512<float> Exp(Vector512<float> x)
    {
        // Beyond these bounds exp is 0 or +Inf in float; clamping keeps n inside the int range used below.
        var xc = Vector512.Min(Vector512.Max(x, Vector512.Create(-110f)), Vector512.Create(100f));
        var magic = Vector512.Create(RoundMagic);
        var n = Vector512.FusedMultiplyAdd(xc, Vector512.Create(Log2E), magic) - magic;
        var r = Vector512.FusedMultiplyAdd(n, Vector512.Create(-Ln2High), xc);
        r = Vector512.FusedMultiplyAdd(n, Vector512.Create(-Ln2Low), r);

        var p = Vector512.Create(1f / 5040f);
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(1f / 720f));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(1f / 120f));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(1f / 24f));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(1f / 6f));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(0.5f));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(1f));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(1f));

        // n in [-159, 145]: split so each factor's biased exponent stays in the normal range [1, 254].
        var ni = Vector512.ConvertToInt32(n);
        var n1 = Vector512.ShiftRightArithmetic(ni, 1);
        var n2 = ni - n1;
        var bias = Vector512.Create(127);
        var f1 = Vector512.ShiftLeft(n1 + bias, 23).AsSingle();
        var f2 = Vector512.ShiftLeft(n2 + bias, 23).AsSingle();
        var result = p * f1 * f2;
        return Vector512.ConditionalSelect(Vector512.Equals(x, x), result, x);
    }

    /// <summary>y = exp(x) element-wise (x and y may be the same span); vector lanes then a scalar tail with the same rounding of exp(0) = 1.</summary>
    internal static void Exp(ReadOnlySpan<float> x, Span<float> y)
    {
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            ref float xr = ref System.Runtime.InteropServices.MemoryMarshal.GetReference(x);
            ref float yr = ref System.Runtime.InteropServices.MemoryMarshal.GetReference(y);
            for (; i <= x.Length - Vector256<float>.Count; i += Vector256<float>.Count)
            {
                Exp(Vector256.LoadUnsafe(ref xr, (nuint)i)).StoreUnsafe(ref yr, (nuint)i);
            }
        }
        for (; i < x.Length; i++)
        {
            y[i] = MathF.Exp(x[i]);
        }
    }
}
