using System.Numerics;
using System.Runtime.Intrinsics;

namespace Hal.Backends.Cpu;

// Token embedding (row lookup) and its backward (row scatter-add), rotary position embedding and its backward.
// Legend: V vocabulary, C channels, N tokens; weight [V, C], ids [N], y [N, C].
// Rotary: x [B, T, H, D], cos/sin [Tmax, D/2] F32, position of time step t = positionOffset + t; rotate-half pairs
// element i with element i + D/2.
internal sealed partial class CpuKernels
{
    public unsafe void Embedding(Tensor weight, Tensor ids, Tensor y)
    {
        // A lookup copies bytes, so every dtype takes the same path and 16-bit values stay bit-exact.
        CheckIndices("embedding", ids, weight.Shape[0], negativeIgnored: false);
        int c = weight.Shape[weight.Rank - 1];
        long rowBytes = (long)c * weight.DType.SizeInBytes();
        long n = ids.ElementCount;
        nint pw = (nint)Ptr(weight), py = (nint)Ptr(y);
        ParallelFor(n, c, (start, end) =>
        {
            for (long t = start; t < end; t++)
            {
                long id = ReadIndex(ids, t);
                Buffer.MemoryCopy((byte*)pw + (id * rowBytes), (byte*)py + (t * rowBytes), rowBytes, rowBytes);
            }
        });
    }

    public void EmbeddingBackward(Tensor dy, Tensor ids, Tensor dweight)
    {
        CheckIndices("embedding-backward", ids, dweight.Shape[0], negativeIgnored: false);
        if (dy.DType.Is16Bit())
        {
            ViaF32([dy], [dweight], (i, o) => EmbeddingBackward(i[0]!, ids, o[0]!));
        }
        else if (dy.DType == DType.F64)
        {
            EmbeddingBackwardCore<double>(dy, ids, dweight);
        }
        else
        {
            EmbeddingBackwardCore<float>(dy, ids, dweight);
        }
    }

    public void Rotary(Tensor x, Tensor cos, Tensor sin, int positionOffset, Tensor y) => RotaryDispatch(x, cos, sin, positionOffset, y, inverse: false);

    public void RotaryBackward(Tensor dy, Tensor cos, Tensor sin, int positionOffset, Tensor dx) => RotaryDispatch(dy, cos, sin, positionOffset, dx, inverse: true);

    /// <summary>
    /// Each worker owns a range of columns and walks the tokens in order, so no two threads write one element and
    /// the sums come out in the same order on every run.
    /// </summary>
    private unsafe void EmbeddingBackwardCore<T>(Tensor dy, Tensor ids, Tensor dweight)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int c = dweight.Shape[dweight.Rank - 1];
        long n = ids.ElementCount;
        new Span<T>(Ptr(dweight), checked((int)dweight.ElementCount)).Clear();
        nint pdy = (nint)Ptr(dy), pdw = (nint)Ptr(dweight);
        // Columns go in blocks of 16 so that workers do not share cache lines of dweight.
        const int block = 16;
        long blocks = (c + block - 1) / block;
        ParallelFor(blocks, n * block, (start, end) =>
        {
            int c0 = (int)(start * block);
            int c1 = (int)Math.Min(c, end * block);
            for (long t = 0; t < n; t++)
            {
                long id = ReadIndex(ids, t);
                T* src = (T*)pdy + (t * c);
                T* dst = (T*)pdw + (id * c);
                for (int j = c0; j < c1; j++)
                {
                    dst[j] += src[j];
                }
            }
        });
    }

    private void RotaryDispatch(Tensor x, Tensor cos, Tensor sin, int positionOffset, Tensor y, bool inverse)
    {
        if (x.DType.Is16Bit())
        {
            ViaF32([x], [y], (i, o) => RotaryDispatch(i[0]!, cos, sin, positionOffset, o[0]!, inverse));
        }
        else if (x.DType == DType.F64)
        {
            RotaryCore<double>(x, cos, sin, positionOffset, y, inverse);
        }
        else
        {
            RotaryCore<float>(x, cos, sin, positionOffset, y, inverse);
        }
    }

    /// <summary>Rotates each pair (x[i], x[i+D/2]) by the position's angle; the backward rotates by minus that angle.</summary>
    private unsafe void RotaryCore<T>(Tensor x, Tensor cos, Tensor sin, int positionOffset, Tensor y, bool inverse)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int t = x.Shape[1], h = x.Shape[2], d = x.Shape[3];
        int half = d / 2;
        long rows = (long)x.Shape[0] * t * h;
        int tableHalf = cos.Shape[cos.Rank - 1];
        nint px = (nint)Ptr(x), py = (nint)Ptr(y), pc = (nint)Ptr(cos), ps = (nint)Ptr(sin);
        ParallelFor(rows, d, (start, end) =>
        {
            for (long r = start; r < end; r++)
            {
                long position = positionOffset + ((r / h) % t);
                float* cr = (float*)pc + (position * tableHalf);
                float* sr = (float*)ps + (position * tableHalf);
                T* xr = (T*)px + (r * d);
                T* yr = (T*)py + (r * d);
                int i = 0;
                if (typeof(T) == typeof(float) && Vector256.IsHardwareAccelerated)
                {
                    for (; i <= half - Vector256<float>.Count; i += Vector256<float>.Count)
                    {
                        var a = Vector256.Load((float*)xr + i);
                        var b = Vector256.Load((float*)xr + i + half);
                        var c = Vector256.Load(cr + i);
                        var s = Vector256.Load(sr + i);
                        if (inverse)
                        {
                            s = -s;
                        }
                        Vector256.FusedMultiplyAdd(a, c, -(b * s)).Store((float*)yr + i);
                        Vector256.FusedMultiplyAdd(b, c, a * s).Store((float*)yr + i + half);
                    }
                }
                for (; i < half; i++)
                {
                    T c = T.CreateTruncating(cr[i]);
                    T s = T.CreateTruncating(inverse ? -sr[i] : sr[i]);
                    T a = xr[i], b = xr[i + half];
                    yr[i] = (a * c) - (b * s);
                    yr[i + half] = (b * c) + (a * s);
                }
            }
        });
    }
}
