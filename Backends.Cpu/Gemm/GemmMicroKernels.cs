using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Hal.Backends.Cpu.Gemm;

// Legend: MR rows × NR columns of C per micro-tile; kc the depth of one packed block.
// Packed A strip: kc × MR (MR consecutive values per k); packed B strip: kc × NR (NR consecutive values per k).

/// <summary>
/// A register-tiled inner kernel: C[0..rows, 0..cols] = alpha · (Ā · B̄) + beta · C + bias over one packed A strip
/// and one packed B strip. Both strips are zero-padded to MR × NR, so the kernel always computes a full tile and only
/// the write-back looks at <c>rows</c>/<c>cols</c>.
/// </summary>
internal unsafe interface IGemmMicroKernel<T>
    where T : unmanaged
{
    /// <summary>Rows of C per tile.</summary>
    static abstract int Mr { get; }

    /// <summary>Columns of C per tile.</summary>
    static abstract int Nr { get; }

    /// <summary>beta = 0 never reads C; <paramref name="bias"/> (null for none) points at the tile's first column.</summary>
    static abstract void Run(int kc, T* a, T* b, T* c, long ldc, int rows, int cols, T alpha, T beta, T* bias);
}

/// <summary>6 × 16 single-precision tile: 12 ymm accumulators, one A broadcast and two B loads per k.</summary>
internal readonly unsafe struct F32Kernel6x16 : IGemmMicroKernel<float>
{
    public static int Mr => 6;

    public static int Nr => 16;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> MulAdd(Vector256<float> a, Vector256<float> b, Vector256<float> c) =>
        Fma.IsSupported ? Fma.MultiplyAdd(a, b, c) : (a * b) + c;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Run(int kc, float* a, float* b, float* c, long ldc, int rows, int cols, float alpha, float beta, float* bias)
    {
        Vector256<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default;
        Vector256<float> c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default;
        GemmWriteBack.PrefetchTile(c, ldc, rows, 15);
        // Two k steps per trip halve the loop overhead; the odd step runs after.
        int p = 0;
        for (; p + 1 < kc; p += 2)
        {
            var b0 = Vector256.Load(b);
            var b1 = Vector256.Load(b + 8);
            var ar = Vector256.Create(a[0]);
            c00 = MulAdd(ar, b0, c00);
            c01 = MulAdd(ar, b1, c01);
            ar = Vector256.Create(a[1]);
            c10 = MulAdd(ar, b0, c10);
            c11 = MulAdd(ar, b1, c11);
            ar = Vector256.Create(a[2]);
            c20 = MulAdd(ar, b0, c20);
            c21 = MulAdd(ar, b1, c21);
            ar = Vector256.Create(a[3]);
            c30 = MulAdd(ar, b0, c30);
            c31 = MulAdd(ar, b1, c31);
            ar = Vector256.Create(a[4]);
            c40 = MulAdd(ar, b0, c40);
            c41 = MulAdd(ar, b1, c41);
            ar = Vector256.Create(a[5]);
            c50 = MulAdd(ar, b0, c50);
            c51 = MulAdd(ar, b1, c51);
            b0 = Vector256.Load(b + 16);
            b1 = Vector256.Load(b + 24);
            ar = Vector256.Create(a[6]);
            c00 = MulAdd(ar, b0, c00);
            c01 = MulAdd(ar, b1, c01);
            ar = Vector256.Create(a[7]);
            c10 = MulAdd(ar, b0, c10);
            c11 = MulAdd(ar, b1, c11);
            ar = Vector256.Create(a[8]);
            c20 = MulAdd(ar, b0, c20);
            c21 = MulAdd(ar, b1, c21);
            ar = Vector256.Create(a[9]);
            c30 = MulAdd(ar, b0, c30);
            c31 = MulAdd(ar, b1, c31);
            ar = Vector256.Create(a[10]);
            c40 = MulAdd(ar, b0, c40);
            c41 = MulAdd(ar, b1, c41);
            ar = Vector256.Create(a[11]);
            c50 = MulAdd(ar, b0, c50);
            c51 = MulAdd(ar, b1, c51);
            a += 12;
            b += 32;
        }
        if (p < kc)
        {
            var b0 = Vector256.Load(b);
            var b1 = Vector256.Load(b + 8);
            var ar = Vector256.Create(a[0]);
            c00 = MulAdd(ar, b0, c00);
            c01 = MulAdd(ar, b1, c01);
            ar = Vector256.Create(a[1]);
            c10 = MulAdd(ar, b0, c10);
            c11 = MulAdd(ar, b1, c11);
            ar = Vector256.Create(a[2]);
            c20 = MulAdd(ar, b0, c20);
            c21 = MulAdd(ar, b1, c21);
            ar = Vector256.Create(a[3]);
            c30 = MulAdd(ar, b0, c30);
            c31 = MulAdd(ar, b1, c31);
            ar = Vector256.Create(a[4]);
            c40 = MulAdd(ar, b0, c40);
            c41 = MulAdd(ar, b1, c41);
            ar = Vector256.Create(a[5]);
            c50 = MulAdd(ar, b0, c50);
            c51 = MulAdd(ar, b1, c51);
        }

        if (rows == 6 && cols == 16)
        {
            var va = Vector256.Create(alpha);
            var vb = Vector256.Create(beta);
            bool readC = beta != 0;
            StoreRow(c, c00, c01, va, vb, readC, bias);
            StoreRow(c + ldc, c10, c11, va, vb, readC, bias);
            StoreRow(c + (2 * ldc), c20, c21, va, vb, readC, bias);
            StoreRow(c + (3 * ldc), c30, c31, va, vb, readC, bias);
            StoreRow(c + (4 * ldc), c40, c41, va, vb, readC, bias);
            StoreRow(c + (5 * ldc), c50, c51, va, vb, readC, bias);
            return;
        }

        float* tile = stackalloc float[6 * 16];
        c00.Store(tile); c01.Store(tile + 8);
        c10.Store(tile + 16); c11.Store(tile + 24);
        c20.Store(tile + 32); c21.Store(tile + 40);
        c30.Store(tile + 48); c31.Store(tile + 56);
        c40.Store(tile + 64); c41.Store(tile + 72);
        c50.Store(tile + 80); c51.Store(tile + 88);
        GemmWriteBack.Partial(tile, 16, c, ldc, rows, cols, alpha, beta, bias);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreRow(float* c, Vector256<float> acc0, Vector256<float> acc1, Vector256<float> alpha, Vector256<float> beta, bool readC, float* bias)
    {
        var v0 = acc0 * alpha;
        var v1 = acc1 * alpha;
        if (readC)
        {
            v0 = MulAdd(beta, Vector256.Load(c), v0);
            v1 = MulAdd(beta, Vector256.Load(c + 8), v1);
        }
        if (bias != null)
        {
            v0 += Vector256.Load(bias);
            v1 += Vector256.Load(bias + 8);
        }
        v0.Store(c);
        v1.Store(c + 8);
    }
}

/// <summary>6 × 8 double-precision tile: 12 ymm accumulators, one A broadcast and two B loads per k.</summary>
internal readonly unsafe struct F64Kernel6x8 : IGemmMicroKernel<double>
{
    public static int Mr => 6;

    public static int Nr => 8;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<double> MulAdd(Vector256<double> a, Vector256<double> b, Vector256<double> c) =>
        Fma.IsSupported ? Fma.MultiplyAdd(a, b, c) : (a * b) + c;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Run(int kc, double* a, double* b, double* c, long ldc, int rows, int cols, double alpha, double beta, double* bias)
    {
        Vector256<double> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default;
        Vector256<double> c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default;
        GemmWriteBack.PrefetchTile(c, ldc, rows, 7);
        for (int p = 0; p < kc; p++)
        {
            var b0 = Vector256.Load(b);
            var b1 = Vector256.Load(b + 4);
            var ar = Vector256.Create(a[0]);
            c00 = MulAdd(ar, b0, c00);
            c01 = MulAdd(ar, b1, c01);
            ar = Vector256.Create(a[1]);
            c10 = MulAdd(ar, b0, c10);
            c11 = MulAdd(ar, b1, c11);
            ar = Vector256.Create(a[2]);
            c20 = MulAdd(ar, b0, c20);
            c21 = MulAdd(ar, b1, c21);
            ar = Vector256.Create(a[3]);
            c30 = MulAdd(ar, b0, c30);
            c31 = MulAdd(ar, b1, c31);
            ar = Vector256.Create(a[4]);
            c40 = MulAdd(ar, b0, c40);
            c41 = MulAdd(ar, b1, c41);
            ar = Vector256.Create(a[5]);
            c50 = MulAdd(ar, b0, c50);
            c51 = MulAdd(ar, b1, c51);
            a += 6;
            b += 8;
        }

        if (rows == 6 && cols == 8)
        {
            var va = Vector256.Create(alpha);
            var vb = Vector256.Create(beta);
            bool readC = beta != 0;
            StoreRow(c, c00, c01, va, vb, readC, bias);
            StoreRow(c + ldc, c10, c11, va, vb, readC, bias);
            StoreRow(c + (2 * ldc), c20, c21, va, vb, readC, bias);
            StoreRow(c + (3 * ldc), c30, c31, va, vb, readC, bias);
            StoreRow(c + (4 * ldc), c40, c41, va, vb, readC, bias);
            StoreRow(c + (5 * ldc), c50, c51, va, vb, readC, bias);
            return;
        }

        double* tile = stackalloc double[6 * 8];
        c00.Store(tile); c01.Store(tile + 4);
        c10.Store(tile + 8); c11.Store(tile + 12);
        c20.Store(tile + 16); c21.Store(tile + 20);
        c30.Store(tile + 24); c31.Store(tile + 28);
        c40.Store(tile + 32); c41.Store(tile + 36);
        c50.Store(tile + 40); c51.Store(tile + 44);
        GemmWriteBack.Partial(tile, 8, c, ldc, rows, cols, alpha, beta, bias);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreRow(double* c, Vector256<double> acc0, Vector256<double> acc1, Vector256<double> alpha, Vector256<double> beta, bool readC, double* bias)
    {
        var v0 = acc0 * alpha;
        var v1 = acc1 * alpha;
        if (readC)
        {
            v0 = MulAdd(beta, Vector256.Load(c), v0);
            v1 = MulAdd(beta, Vector256.Load(c + 4), v1);
        }
        if (bias != null)
        {
            v0 += Vector256.Load(bias);
            v1 += Vector256.Load(bias + 4);
        }
        v0.Store(c);
        v1.Store(c + 4);
    }
}

/// <summary>Scalar write-back of a partial tile (the right and bottom edges of C).</summary>
internal static unsafe class GemmWriteBack
{
    /// <summary>
    /// Asks for the tile's rows of C (first and last element of each, which may sit on two cache lines) while the
    /// k loop runs, so the write-back does not wait on memory.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void PrefetchTile<T>(T* c, long ldc, int rows, int lastColumn)
        where T : unmanaged
    {
        if (!Sse.IsSupported)
        {
            return;
        }
        for (int r = 0; r < rows; r++)
        {
            Sse.Prefetch0(c + (r * ldc));
            Sse.Prefetch0(c + (r * ldc) + lastColumn);
        }
    }

    public static void Partial<T>(T* tile, int tileStride, T* c, long ldc, int rows, int cols, T alpha, T beta, T* bias)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        bool readC = beta != T.Zero;
        for (int r = 0; r < rows; r++)
        {
            T* cRow = c + (r * ldc);
            T* tRow = tile + (r * tileStride);
            for (int j = 0; j < cols; j++)
            {
                T v = alpha * tRow[j];
                if (readC)
                {
                    v += beta * cRow[j];
                }
                if (bias != null)
                {
                    v += bias[j];
                }
                cRow[j] = v;
            }
        }
    }
}
