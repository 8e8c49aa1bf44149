using System.Numerics;
using System.Runtime.CompilerServices;
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
