using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Hal.Backends.Cpu;

/// <summary>
/// Vectorised row primitives shared by the fused kernels, for T = float or double. Each loop runs two 256-bit
/// accumulators where it reduces (16 float or 8 double lanes, so a sum's rounding error grows with n/lanes, not n),
/// then a scalar tail; without 256-bit hardware the scalar loop does all. The typeof(T) tests fold at JIT time.
/// </summary>
internal static unsafe class CpuRowMath
{
    private static bool Wide<T>() => Vector256.IsHardwareAccelerated && Vector256<T>.IsSupported;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<T> Fma<T>(Vector256<T> a, Vector256<T> b, Vector256<T> c)
        where T : unmanaged
    {
        if (typeof(T) == typeof(float))
        {
            return Vector256.FusedMultiplyAdd(a.AsSingle(), b.AsSingle(), c.AsSingle()).As<float, T>();
        }
        return Vector256.FusedMultiplyAdd(a.AsDouble(), b.AsDouble(), c.AsDouble()).As<double, T>();
    }

    /// <summary>Largest element; NaN when the row holds a NaN; −Inf for an empty row.</summary>
    internal static T Max<T>(T* x, int n)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        T m = T.NegativeInfinity;
        int i = 0;
        if (Wide<T>() && n >= Vector256<T>.Count)
        {
            var acc = Vector256.Create(T.NegativeInfinity);
            var nan = Vector256<T>.Zero;
            for (; i <= n - Vector256<T>.Count; i += Vector256<T>.Count)
            {
                var v = Vector256.Load(x + i);
                acc = Vector256.MaxNative(acc, v);
                nan |= ~Vector256.Equals(v, v);
            }
            if (nan != Vector256<T>.Zero)
            {
                return T.NaN;
            }
            for (int l = 0; l < Vector256<T>.Count; l++)
            {
                m = T.Max(m, acc[l]);
            }
        }
        for (; i < n; i++)
        {
            m = T.Max(m, x[i]);
        }
        return m;
    }

    /// <summary>y = exp(x − shift) (y may be null: not stored); returns Σ exp(x − shift).</summary>
    internal static T ExpShiftSum<T>(T* x, T shift, T* y, int n)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int i = 0;
        T sum = T.Zero;
        if (typeof(T) == typeof(float) && Vector512.IsHardwareAccelerated)
        {
            // 16 lanes: exp dominates the cost of a vocabulary-wide row (the LM head's 50257 columns).
            var s = Vector512.Create(float.CreateTruncating(shift));
            var acc0 = Vector512<float>.Zero;
            var acc1 = Vector512<float>.Zero;
            float* xf = (float*)x, yf = (float*)y;
            for (; i <= n - 32; i += 32)
            {
                var e0 = CpuExp.Exp(Vector512.Load(xf + i) - s);
                var e1 = CpuExp.Exp(Vector512.Load(xf + i + 16) - s);
                if (y != null)
                {
                    e0.Store(yf + i);
                    e1.Store(yf + i + 16);
                }
                acc0 += e0;
                acc1 += e1;
            }
            sum = T.CreateTruncating(Vector512.Sum(acc0 + acc1));
        }
        if (typeof(T) == typeof(float) && Wide<T>())
        {
            var s = Vector256.Create(shift);
            var acc0 = Vector256<T>.Zero;
            var acc1 = Vector256<T>.Zero;
            int w = Vector256<T>.Count;
            for (; i <= n - (2 * w); i += 2 * w)
            {
                var e0 = CpuExp.Exp(Vector256.Load(x + i) - s);
                var e1 = CpuExp.Exp(Vector256.Load(x + i + w) - s);
                if (y != null)
                {
                    e0.Store(y + i);
                    e1.Store(y + i + w);
                }
                acc0 += e0;
                acc1 += e1;
            }
            for (; i <= n - w; i += w)
            {
                var e0 = CpuExp.Exp(Vector256.Load(x + i) - s);
                if (y != null)
                {
                    e0.Store(y + i);
                }
                acc0 += e0;
            }
            sum += Vector256.Sum(acc0 + acc1);
        }
        T s0 = T.Zero, s1 = T.Zero;
        for (; i + 1 < n; i += 2)
        {
            T e0 = T.Exp(x[i] - shift);
            T e1 = T.Exp(x[i + 1] - shift);
            if (y != null)
            {
                y[i] = e0;
                y[i + 1] = e1;
            }
            s0 += e0;
            s1 += e1;
        }
        if (i < n)
        {
            T e = T.Exp(x[i] - shift);
            if (y != null)
            {
                y[i] = e;
            }
            s0 += e;
        }
        return sum + (s0 + s1);
    }

    /// <summary>y = x · s.</summary>
    internal static void Scale<T>(T* x, T s, T* y, int n)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int i = 0;
        if (Wide<T>())
        {
            var vs = Vector256.Create(s);
            for (; i <= n - Vector256<T>.Count; i += Vector256<T>.Count)
            {
                (Vector256.Load(x + i) * vs).Store(y + i);
            }
        }
        for (; i < n; i++)
        {
            y[i] = x[i] * s;
        }
    }

    /// <summary>y = x + s.</summary>
    internal static void AddScalar<T>(T* x, T s, T* y, int n)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int i = 0;
        if (Wide<T>())
        {
            var vs = Vector256.Create(s);
            for (; i <= n - Vector256<T>.Count; i += Vector256<T>.Count)
            {
                (Vector256.Load(x + i) + vs).Store(y + i);
            }
        }
        for (; i < n; i++)
        {
            y[i] = x[i] + s;
        }
    }

    /// <summary>Σ x.</summary>
    internal static T Sum<T>(T* x, int n)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int i = 0;
        T sum = T.Zero;
        if (Wide<T>())
        {
            var a0 = Vector256<T>.Zero;
            var a1 = Vector256<T>.Zero;
            int w = Vector256<T>.Count;
            for (; i <= n - (2 * w); i += 2 * w)
            {
                a0 += Vector256.Load(x + i);
                a1 += Vector256.Load(x + i + w);
            }
            for (; i <= n - w; i += w)
            {
                a0 += Vector256.Load(x + i);
            }
            sum = Vector256.Sum(a0 + a1);
        }
        for (; i < n; i++)
        {
            sum += x[i];
        }
        return sum;
    }

    /// <summary>Σ a·b.</summary>
    internal static T Dot<T>(T* a, T* b, int n)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int i = 0;
        T sum = T.Zero;
        if (Wide<T>())
        {
            var a0 = Vector256<T>.Zero;
            var a1 = Vector256<T>.Zero;
            int w = Vector256<T>.Count;
            for (; i <= n - (2 * w); i += 2 * w)
            {
                a0 = Fma(Vector256.Load(a + i), Vector256.Load(b + i), a0);
                a1 = Fma(Vector256.Load(a + i + w), Vector256.Load(b + i + w), a1);
            }
            for (; i <= n - w; i += w)
            {
                a0 = Fma(Vector256.Load(a + i), Vector256.Load(b + i), a0);
            }
            sum = Vector256.Sum(a0 + a1);
        }
        for (; i < n; i++)
        {
            sum = T.FusedMultiplyAdd(a[i], b[i], sum);
        }
        return sum;
    }

    /// <summary>Four dot products of a with b0..b3 at once: each load of a serves four FMAs (attention's q·k over a key tile).</summary>
    internal static void Dot4<T>(T* a, T* b0, T* b1, T* b2, T* b3, int n, out T s0, out T s1, out T s2, out T s3)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int i = 0;
        s0 = s1 = s2 = s3 = T.Zero;
        if (Wide<T>())
        {
            var a0 = Vector256<T>.Zero;
            var a1 = Vector256<T>.Zero;
            var a2 = Vector256<T>.Zero;
            var a3 = Vector256<T>.Zero;
            for (; i <= n - Vector256<T>.Count; i += Vector256<T>.Count)
            {
                var va = Vector256.Load(a + i);
                a0 = Fma(va, Vector256.Load(b0 + i), a0);
                a1 = Fma(va, Vector256.Load(b1 + i), a1);
                a2 = Fma(va, Vector256.Load(b2 + i), a2);
                a3 = Fma(va, Vector256.Load(b3 + i), a3);
            }
            s0 = Vector256.Sum(a0);
            s1 = Vector256.Sum(a1);
            s2 = Vector256.Sum(a2);
            s3 = Vector256.Sum(a3);
        }
        for (; i < n; i++)
        {
            s0 = T.FusedMultiplyAdd(a[i], b0[i], s0);
            s1 = T.FusedMultiplyAdd(a[i], b1[i], s1);
            s2 = T.FusedMultiplyAdd(a[i], b2[i], s2);
            s3 = T.FusedMultiplyAdd(a[i], b3[i], s3);
        }
    }

    /// <summary>y += c0·x0 + c1·x1 + c2·x2 + c3·x3: one load and store of y for four rows (attention's P·V).</summary>
    internal static void Axpy4<T>(T c0, T* x0, T c1, T* x1, T c2, T* x2, T c3, T* x3, T* y, int n)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int i = 0;
        if (Wide<T>())
        {
            var v0 = Vector256.Create(c0);
            var v1 = Vector256.Create(c1);
            var v2 = Vector256.Create(c2);
            var v3 = Vector256.Create(c3);
            for (; i <= n - Vector256<T>.Count; i += Vector256<T>.Count)
            {
                var acc = Fma(v0, Vector256.Load(x0 + i), Vector256.Load(y + i));
                acc = Fma(v1, Vector256.Load(x1 + i), acc);
                acc = Fma(v2, Vector256.Load(x2 + i), acc);
                Fma(v3, Vector256.Load(x3 + i), acc).Store(y + i);
            }
        }
        for (; i < n; i++)
        {
            T acc = T.FusedMultiplyAdd(c0, x0[i], y[i]);
            acc = T.FusedMultiplyAdd(c1, x1[i], acc);
            acc = T.FusedMultiplyAdd(c2, x2[i], acc);
            y[i] = T.FusedMultiplyAdd(c3, x3[i], acc);
        }
    }

    /// <summary>Σ (x − c)², the centred sum of squares (two-pass variance, no cancellation).</summary>
    internal static T CentredSumSquares<T>(T* x, T c, int n)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int i = 0;
        T sum = T.Zero;
        if (Wide<T>())
        {
            var vc = Vector256.Create(c);
            var a0 = Vector256<T>.Zero;
            var a1 = Vector256<T>.Zero;
            int w = Vector256<T>.Count;
            for (; i <= n - (2 * w); i += 2 * w)
            {
                var d0 = Vector256.Load(x + i) - vc;
                var d1 = Vector256.Load(x + i + w) - vc;
                a0 = Fma(d0, d0, a0);
                a1 = Fma(d1, d1, a1);
            }
            for (; i <= n - w; i += w)
            {
                var d0 = Vector256.Load(x + i) - vc;
                a0 = Fma(d0, d0, a0);
            }
            sum = Vector256.Sum(a0 + a1);
        }
        for (; i < n; i++)
        {
            T d = x[i] - c;
            sum = T.FusedMultiplyAdd(d, d, sum);
        }
        return sum;
    }

    /// <summary>y += a · x.</summary>
    internal static void Axpy<T>(T a, T* x, T* y, int n)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int i = 0;
        if (Wide<T>())
        {
            var va = Vector256.Create(a);
            for (; i <= n - Vector256<T>.Count; i += Vector256<T>.Count)
            {
                Fma(va, Vector256.Load(x + i), Vector256.Load(y + i)).Store(y + i);
            }
        }
        for (; i < n; i++)
        {
            y[i] = T.FusedMultiplyAdd(a, x[i], y[i]);
        }
    }

    /// <summary>dx = y ⊙ (dy − s).</summary>
    internal static void MulShifted<T>(T* y, T* dy, T s, T* dx, int n)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int i = 0;
        if (Wide<T>())
        {
            var vs = Vector256.Create(s);
            for (; i <= n - Vector256<T>.Count; i += Vector256<T>.Count)
            {
                (Vector256.Load(y + i) * (Vector256.Load(dy + i) - vs)).Store(dx + i);
            }
        }
        for (; i < n; i++)
        {
            dx[i] = y[i] * (dy[i] - s);
        }
    }

    /// <summary>dx = dy − exp(y) · s.</summary>
    internal static void SubExpScaled<T>(T* y, T* dy, T s, T* dx, int n)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int i = 0;
        if (typeof(T) == typeof(float) && Wide<T>())
        {
            var vs = Vector256.Create(s);
            for (; i <= n - Vector256<T>.Count; i += Vector256<T>.Count)
            {
                Fma(-CpuExp.Exp(Vector256.Load(y + i)), vs, Vector256.Load(dy + i)).Store(dx + i);
            }
        }
        for (; i < n; i++)
        {
            dx[i] = T.FusedMultiplyAdd(-T.Exp(y[i]), s, dy[i]);
        }
    }

    /// <summary>y = (x − mean) · rstd · w + b (b may be null).</summary>
    internal static void NormAffine<T>(T* x, T mean, T rstd, T* w, T* b, T* y, int n)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int i = 0;
        if (Wide<T>())
        {
            var vm = Vector256.Create(mean);
            var vr = Vector256.Create(rstd);
            for (; i <= n - Vector256<T>.Count; i += Vector256<T>.Count)
            {
                var h = (Vector256.Load(x + i) - vm) * vr;
                var r = b == null ? h * Vector256.Load(w + i) : Fma(h, Vector256.Load(w + i), Vector256.Load(b + i));
                r.Store(y + i);
            }
        }
        for (; i < n; i++)
        {
            T h = (x[i] - mean) * rstd;
            y[i] = b == null ? h * w[i] : T.FusedMultiplyAdd(h, w[i], b[i]);
        }
    }
}
