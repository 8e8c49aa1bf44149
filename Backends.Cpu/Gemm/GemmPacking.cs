using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Hal.Numerics;

namespace Hal.Backends.Cpu.Gemm;

// Legend: a logical matrix X[rows, cols] lives at data + r·rowStride + c·colStride (strides in elements), which
// covers both the plain and the transposed layout of a row-major operand.
// Packed A block: ceil(mb/MR) strips, each kb × MR; packed B panel: ceil(nb/NR) strips, each kb × NR.

/// <summary>Reads one element of a stored dtype as the compute type (F16/BF16 widen to F32 here, while packing).</summary>
internal unsafe interface IElementLoader<T>
    where T : unmanaged
{
    static abstract T Load(void* data, long index);
}

internal readonly unsafe struct F32Loader : IElementLoader<float>
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Load(void* data, long index) => ((float*)data)[index];
}

internal readonly unsafe struct F64Loader : IElementLoader<double>
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static double Load(void* data, long index) => ((double*)data)[index];
}

internal readonly unsafe struct F16Loader : IElementLoader<float>
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Load(void* data, long index) => HalfConvert.F16ToFloat(((ushort*)data)[index]);
}

internal readonly unsafe struct Bf16Loader : IElementLoader<float>
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Load(void* data, long index) => HalfConvert.Bf16ToFloat(((ushort*)data)[index]);
}

/// <summary>A logical matrix view over stored elements: element (r, c) at <c>Data + r·RowStride + c·ColStride</c>.</summary>
internal readonly unsafe struct GemmOperand(void* data, long rowStride, long colStride)
{
    public readonly void* Data = data;
    public readonly long RowStride = rowStride;
    public readonly long ColStride = colStride;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public long Index(long r, long c) => (r * RowStride) + (c * ColStride);
}

/// <summary>Packs operand blocks into the strip layouts the micro-kernels read, zero-padding ragged edges.</summary>
internal static unsafe class GemmPacking
{
    /// <summary>Packs A[i0 .. i0+mb, p0 .. p0+kb] into MR-tall strips.</summary>
    public static void PackA<T, TLoad>(GemmOperand a, int i0, int mb, int p0, int kb, int mr, T* dst)
        where T : unmanaged
        where TLoad : IElementLoader<T>
    {
        for (int s = 0; s < mb; s += mr)
        {
            int rows = Math.Min(mr, mb - s);
            T* strip = dst + ((long)s * kb);
            if (rows == 12 && mr == 12 && a.ColStride == 1 && typeof(TLoad) == typeof(F32Loader) && Avx.IsSupported)
            {
                PackRowMajorF32Strip12((float*)a.Data + a.Index(i0 + s, p0), a.RowStride, kb, (float*)strip);
                continue;
            }
            if (rows == 12 && mr == 12 && a.RowStride == 1 && typeof(TLoad) == typeof(F32Loader))
            {
                // Transposed F32 A: each k's 12 values are contiguous in memory, one 8-wide and one 4-wide copy.
                float* src = (float*)a.Data + a.Index(i0 + s, p0);
                float* d = (float*)strip;
                for (int p = 0; p < kb; p++)
                {
                    Vector256.Store(Vector256.Load(src), d);
                    Vector128.Store(Vector128.Load(src + 8), d + 8);
                    src += a.ColStride;
                    d += 12;
                }
                continue;
            }
            // k outer, rows inner: the writes run contiguously through the strip, and the reads walk MR rows of A
            // in step (row-major A) or one contiguous run of MR elements (transposed A).
            for (int p = 0; p < kb; p++)
            {
                long src = a.Index(i0 + s, p0 + p);
                T* d = strip + ((long)p * mr);
                for (int r = 0; r < rows; r++)
                {
                    d[r] = TLoad.Load(a.Data, src + (r * a.RowStride));
                }
                for (int r = rows; r < mr; r++)
                {
                    d[r] = default;
                }
            }
        }
    }

    /// <summary>
    /// One full 12-row strip of row-major F32 A: eight k at a time, the 12 × 8 block is loaded as twelve row vectors and
    /// transposed in registers (an 8 × 8 and a 4 × 8 transpose), so each k's 12 values are written with two stores.
    /// </summary>
    private static void PackRowMajorF32Strip12(float* src, long lda, int kb, float* dst)
    {
        int p = 0;
        for (; p + 8 <= kb; p += 8)
        {
            float* s = src + p;
            float* d = dst + ((long)p * 12);
            // Rows 0..7: row k of the transposed 8 × 8 block (A's rows at column p + k) goes to d + 12k.
            Transpose8x8F32(s, lda, d, 12);

            // Rows 8..11: a 4 × 8 transpose; each 128-bit half of v0..v3 holds one k's four values.
            var r8 = Avx.LoadVector256(s + (8 * lda));
            var r9 = Avx.LoadVector256(s + (9 * lda));
            var r10 = Avx.LoadVector256(s + (10 * lda));
            var r11 = Avx.LoadVector256(s + (11 * lda));
            var w0 = Avx.UnpackLow(r8, r9);
            var w1 = Avx.UnpackHigh(r8, r9);
            var w2 = Avx.UnpackLow(r10, r11);
            var w3 = Avx.UnpackHigh(r10, r11);
            var v0 = Avx.Shuffle(w0, w2, 0x44);
            var v1 = Avx.Shuffle(w0, w2, 0xEE);
            var v2 = Avx.Shuffle(w1, w3, 0x44);
            var v3 = Avx.Shuffle(w1, w3, 0xEE);
            Sse.Store(d + 8, v0.GetLower());
            Sse.Store(d + 20, v1.GetLower());
            Sse.Store(d + 32, v2.GetLower());
            Sse.Store(d + 44, v3.GetLower());
            Sse.Store(d + 56, v0.GetUpper());
            Sse.Store(d + 68, v1.GetUpper());
            Sse.Store(d + 80, v2.GetUpper());
            Sse.Store(d + 92, v3.GetUpper());
        }
        for (; p < kb; p++)
        {
            float* d = dst + ((long)p * 12);
            for (int r = 0; r < 12; r++)
            {
                d[r] = src[(r * lda) + p];
            }
        }
    }

    /// <summary>dst[j·dstStride + i] = src[i·srcStride + j] for an 8 × 8 F32 block, through registers.</summary>
    private static void Transpose8x8F32(float* src, long srcStride, float* dst, long dstStride)
    {
        var r0 = Avx.LoadVector256(src);
        var r1 = Avx.LoadVector256(src + srcStride);
        var r2 = Avx.LoadVector256(src + (2 * srcStride));
        var r3 = Avx.LoadVector256(src + (3 * srcStride));
        var r4 = Avx.LoadVector256(src + (4 * srcStride));
        var r5 = Avx.LoadVector256(src + (5 * srcStride));
        var r6 = Avx.LoadVector256(src + (6 * srcStride));
        var r7 = Avx.LoadVector256(src + (7 * srcStride));
        var t0 = Avx.UnpackLow(r0, r1);
        var t1 = Avx.UnpackHigh(r0, r1);
        var t2 = Avx.UnpackLow(r2, r3);
        var t3 = Avx.UnpackHigh(r2, r3);
        var t4 = Avx.UnpackLow(r4, r5);
        var t5 = Avx.UnpackHigh(r4, r5);
        var t6 = Avx.UnpackLow(r6, r7);
        var t7 = Avx.UnpackHigh(r6, r7);
        var u0 = Avx.Shuffle(t0, t2, 0x44);
        var u1 = Avx.Shuffle(t0, t2, 0xEE);
        var u2 = Avx.Shuffle(t1, t3, 0x44);
        var u3 = Avx.Shuffle(t1, t3, 0xEE);
        var u4 = Avx.Shuffle(t4, t6, 0x44);
        var u5 = Avx.Shuffle(t4, t6, 0xEE);
        var u6 = Avx.Shuffle(t5, t7, 0x44);
        var u7 = Avx.Shuffle(t5, t7, 0xEE);
        Avx.Store(dst, Avx.Permute2x128(u0, u4, 0x20));
        Avx.Store(dst + dstStride, Avx.Permute2x128(u1, u5, 0x20));
        Avx.Store(dst + (2 * dstStride), Avx.Permute2x128(u2, u6, 0x20));
        Avx.Store(dst + (3 * dstStride), Avx.Permute2x128(u3, u7, 0x20));
        Avx.Store(dst + (4 * dstStride), Avx.Permute2x128(u0, u4, 0x31));
        Avx.Store(dst + (5 * dstStride), Avx.Permute2x128(u1, u5, 0x31));
        Avx.Store(dst + (6 * dstStride), Avx.Permute2x128(u2, u6, 0x31));
        Avx.Store(dst + (7 * dstStride), Avx.Permute2x128(u3, u7, 0x31));
    }

    /// <summary>Packs strips [s0, s1) of B[p0 .. p0+kb, j0 .. j0+nb] (NR columns each) into the panel at <paramref name="dst"/>.</summary>
    public static void PackB<T, TLoad>(GemmOperand b, int p0, int kb, int j0, int nb, int nr, int s0, int s1, T* dst)
        where T : unmanaged
        where TLoad : IElementLoader<T>
    {
        for (int s = s0; s < s1; s++)
        {
            int jj = s * nr;
            int cols = Math.Min(nr, nb - jj);
            T* strip = dst + ((long)jj * kb);
            if (cols == nr && b.ColStride == 1 && (typeof(TLoad) == typeof(F32Loader) || typeof(TLoad) == typeof(F64Loader)))
            {
                // Row-major F32/F64 B: each k contributes NR contiguous elements, copied as one block.
                T* src = (T*)b.Data + b.Index(p0, j0 + jj);
                T* d = strip;
                uint bytes = (uint)(nr * sizeof(T));
                for (int p = 0; p < kb; p++)
                {
                    Unsafe.CopyBlockUnaligned(d, src, bytes);
                    src += b.RowStride;
                    d += nr;
                }
                continue;
            }
            if (b.ColStride == 1)
            {
                for (int p = 0; p < kb; p++)
                {
                    long src = b.Index(p0 + p, j0 + jj);
                    T* d = strip + ((long)p * nr);
                    for (int c = 0; c < cols; c++)
                    {
                        d[c] = TLoad.Load(b.Data, src + c);
                    }
                    for (int c = cols; c < nr; c++)
                    {
                        d[c] = default;
                    }
                }
                continue;
            }
            if (cols == nr && b.RowStride == 1 && nr % 8 == 0 && typeof(TLoad) == typeof(F32Loader) && Avx.IsSupported)
            {
                // Transposed F32 B: each column runs contiguously along k; 8 columns × 8 k at a time are transposed
                // in registers so that both the reads and the writes are whole vectors.
                float* src = (float*)b.Data + b.Index(p0, j0 + jj);
                float* d = (float*)strip;
                int p = 0;
                for (; p + 8 <= kb; p += 8)
                {
                    for (int c0 = 0; c0 < nr; c0 += 8)
                    {
                        Transpose8x8F32(src + (c0 * b.ColStride) + p, b.ColStride, d + ((long)p * nr) + c0, nr);
                    }
                }
                for (; p < kb; p++)
                {
                    for (int c = 0; c < nr; c++)
                    {
                        d[((long)p * nr) + c] = src[(c * b.ColStride) + p];
                    }
                }
                continue;
            }
            // Transposed B: walk each column along k so reads stay contiguous.
            for (int c = 0; c < cols; c++)
            {
                long src = b.Index(p0, j0 + jj + c);
                T* d = strip + c;
                for (int p = 0; p < kb; p++)
                {
                    d[(long)p * nr] = TLoad.Load(b.Data, src + (p * b.RowStride));
                }
            }
            for (int c = cols; c < nr; c++)
            {
                T* d = strip + c;
                for (int p = 0; p < kb; p++)
                {
                    d[(long)p * nr] = default;
                }
            }
        }
    }
}
