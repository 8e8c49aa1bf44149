using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Hal.Backends.Cpu.Gemm;

// Legend: MR = 12 rows × NR = 2 zmm vectors of C per micro-tile (32 floats or 16 doubles); kc the depth of one packed
// block. Packed A strip: kc × 12; packed B strip: kc × NR.

/// <summary>
/// AVX-512 12 × (2 · 512-bit) tile for F32 (12 × 32) and F64 (12 × 16): 24 zmm accumulators, two B loads and twelve
/// A broadcasts per k, which leaves 8 of the 32 zmm registers for the B vectors and broadcasts. Chosen only when
/// <see cref="Avx512F.IsSupported"/>.
/// </summary>
internal readonly unsafe struct Avx512Kernel12x2V<T> : IGemmMicroKernel<T>
    where T : unmanaged, IBinaryFloatingPointIeee754<T>
{
    private const int Rows = 12;

    public static int Mr => Rows;

    public static int Nr => 2 * Vector512<T>.Count;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<T> MulAdd(Vector512<T> a, Vector512<T> b, Vector512<T> c)
    {
        if (typeof(T) == typeof(float))
        {
            return Avx512F.FusedMultiplyAdd(a.AsSingle(), b.AsSingle(), c.AsSingle()).As<float, T>();
        }
        return Avx512F.FusedMultiplyAdd(a.AsDouble(), b.AsDouble(), c.AsDouble()).As<double, T>();
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Run(int kc, T* a, T* b, T* c, long ldc, int rows, int cols, T alpha, T beta, T* bias)
    {
        int w = Vector512<T>.Count;
        Vector512<T> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default;
        Vector512<T> c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default;
        Vector512<T> c60 = default, c61 = default, c70 = default, c71 = default, c80 = default, c81 = default;
        Vector512<T> c90 = default, c91 = default, ca0 = default, ca1 = default, cb0 = default, cb1 = default;
        GemmWriteBack.PrefetchTile(c, ldc, rows, (2 * w) - 1);
        for (int p = 0; p < kc; p++)
        {
            var b0 = Vector512.Load(b);
            var b1 = Vector512.Load(b + w);
            var ar = Vector512.Create(a[0]);
            c00 = MulAdd(ar, b0, c00);
            c01 = MulAdd(ar, b1, c01);
            ar = Vector512.Create(a[1]);
            c10 = MulAdd(ar, b0, c10);
            c11 = MulAdd(ar, b1, c11);
            ar = Vector512.Create(a[2]);
            c20 = MulAdd(ar, b0, c20);
            c21 = MulAdd(ar, b1, c21);
            ar = Vector512.Create(a[3]);
            c30 = MulAdd(ar, b0, c30);
            c31 = MulAdd(ar, b1, c31);
            ar = Vector512.Create(a[4]);
            c40 = MulAdd(ar, b0, c40);
            c41 = MulAdd(ar, b1, c41);
            ar = Vector512.Create(a[5]);
            c50 = MulAdd(ar, b0, c50);
            c51 = MulAdd(ar, b1, c51);
            ar = Vector512.Create(a[6]);
            c60 = MulAdd(ar, b0, c60);
            c61 = MulAdd(ar, b1, c61);
            ar = Vector512.Create(a[7]);
            c70 = MulAdd(ar, b0, c70);
            c71 = MulAdd(ar, b1, c71);
            ar = Vector512.Create(a[8]);
            c80 = MulAdd(ar, b0, c80);
            c81 = MulAdd(ar, b1, c81);
            ar = Vector512.Create(a[9]);
            c90 = MulAdd(ar, b0, c90);
            c91 = MulAdd(ar, b1, c91);
            ar = Vector512.Create(a[10]);
            ca0 = MulAdd(ar, b0, ca0);
            ca1 = MulAdd(ar, b1, ca1);
            ar = Vector512.Create(a[11]);
            cb0 = MulAdd(ar, b0, cb0);
            cb1 = MulAdd(ar, b1, cb1);
            a += Rows;
            b += 2 * w;
        }

        if (rows == Rows && cols == 2 * w)
        {
            var va = Vector512.Create(alpha);
            var vb = Vector512.Create(beta);
            bool readC = beta != T.Zero;
            StoreRow(c, c00, c01, va, vb, readC, bias);
            StoreRow(c + ldc, c10, c11, va, vb, readC, bias);
            StoreRow(c + (2 * ldc), c20, c21, va, vb, readC, bias);
            StoreRow(c + (3 * ldc), c30, c31, va, vb, readC, bias);
            StoreRow(c + (4 * ldc), c40, c41, va, vb, readC, bias);
            StoreRow(c + (5 * ldc), c50, c51, va, vb, readC, bias);
            StoreRow(c + (6 * ldc), c60, c61, va, vb, readC, bias);
            StoreRow(c + (7 * ldc), c70, c71, va, vb, readC, bias);
            StoreRow(c + (8 * ldc), c80, c81, va, vb, readC, bias);
            StoreRow(c + (9 * ldc), c90, c91, va, vb, readC, bias);
            StoreRow(c + (10 * ldc), ca0, ca1, va, vb, readC, bias);
            StoreRow(c + (11 * ldc), cb0, cb1, va, vb, readC, bias);
            return;
        }

        // Ragged edge: spill the whole tile (12 rows × 2 vectors) and write back the live part element by element.
        T* tile = stackalloc T[Rows * 2 * w];
        int s = 2 * w;
        c00.Store(tile); c01.Store(tile + w);
        c10.Store(tile + s); c11.Store(tile + s + w);
        c20.Store(tile + (2 * s)); c21.Store(tile + (2 * s) + w);
        c30.Store(tile + (3 * s)); c31.Store(tile + (3 * s) + w);
        c40.Store(tile + (4 * s)); c41.Store(tile + (4 * s) + w);
        c50.Store(tile + (5 * s)); c51.Store(tile + (5 * s) + w);
        c60.Store(tile + (6 * s)); c61.Store(tile + (6 * s) + w);
        c70.Store(tile + (7 * s)); c71.Store(tile + (7 * s) + w);
        c80.Store(tile + (8 * s)); c81.Store(tile + (8 * s) + w);
        c90.Store(tile + (9 * s)); c91.Store(tile + (9 * s) + w);
        ca0.Store(tile + (10 * s)); ca1.Store(tile + (10 * s) + w);
        cb0.Store(tile + (11 * s)); cb1.Store(tile + (11 * s) + w);
        GemmWriteBack.Partial(tile, s, c, ldc, rows, cols, alpha, beta, bias);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreRow(T* c, Vector512<T> acc0, Vector512<T> acc1, Vector512<T> alpha, Vector512<T> beta, bool readC, T* bias)
    {
        int w = Vector512<T>.Count;
        var v0 = acc0 * alpha;
        var v1 = acc1 * alpha;
        if (readC)
        {
            v0 = MulAdd(beta, Vector512.Load(c), v0);
            v1 = MulAdd(beta, Vector512.Load(c + w), v1);
        }
        if (bias != null)
        {
            v0 += Vector512.Load(bias);
            v1 += Vector512.Load(bias + w);
        }
        v0.Store(c);
        v1.Store(c + w);
    }
}
