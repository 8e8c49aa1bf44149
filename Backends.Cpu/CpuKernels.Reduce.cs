using System.Numerics;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Hal.Backends.Cpu;

// Reductions along one axis, seen as x[outer, axis, inner] → y[outer, 1, inner].
// inner == 1: each output is a contiguous run, reduced with four vector accumulators.
// inner > 1: each output row accumulates whole input rows (a vectorised element-wise op per axis step).
// Sum/Max/Min accumulate in the element type (integers wrap like the type); 16-bit types accumulate in F32.
internal sealed unsafe partial class CpuKernels
{
    /// <summary>Output elements of one work item on the inner > 1 path (fits the stack as F32 for 16-bit types).</summary>
    private const int ReduceTile = 512;

    public void Reduce(ReduceOp op, Tensor x, int axis, Tensor y)
    {
        switch (op)
        {
            case ReduceOp.Sum: Reduce<AddOp>(x, axis, y, mean: false); break;
            case ReduceOp.Mean: Reduce<AddOp>(x, axis, y, mean: true); break;
            case ReduceOp.Max: Reduce<MaxOp>(x, axis, y, mean: false); break;
            case ReduceOp.Min: Reduce<MinOp>(x, axis, y, mean: false); break;
            default: throw new ArgumentOutOfRangeException(nameof(op), op, "unknown reduce op");
        }
    }

    private void Reduce<TOp>(Tensor x, int axis, Tensor y, bool mean)
        where TOp : IBinaryOp
    {
        if (y.ElementCount == 0)
        {
            return;
        }
        var (outer, n, inner) = Split(x.Shape, axis);
        nint xp = (nint)Ptr(x), yp = (nint)Ptr(y);
        switch (x.DType)
        {
            case DType.F32: Reduce<TOp, float>((float*)xp, (float*)yp, outer, n, inner, mean); break;
            case DType.F64: Reduce<TOp, double>((double*)xp, (double*)yp, outer, n, inner, mean); break;
            case DType.I32: Reduce<TOp, int>((int*)xp, (int*)yp, outer, n, inner, mean); break;
            case DType.I64: Reduce<TOp, long>((long*)xp, (long*)yp, outer, n, inner, mean); break;
            case DType.I8: Reduce<TOp, sbyte>((sbyte*)xp, (sbyte*)yp, outer, n, inner, mean); break;
            case DType.U8: Reduce<TOp, byte>((byte*)xp, (byte*)yp, outer, n, inner, mean); break;
            case DType.F16:
            case DType.BF16: Reduce16<TOp>(x.DType, (ushort*)xp, (ushort*)yp, outer, n, inner, mean); break;
            default: throw new DTypeNotSupportedException("reduce", x.DType, "cpu");
        }
    }

    /// <summary>The op's identity: 0 for Sum, −Inf (the type's minimum) for Max, +Inf (maximum) for Min.</summary>
    private static T Identity<TOp, T>()
        where TOp : IBinaryOp
        where T : unmanaged, INumber<T>
    {
        if (typeof(TOp) == typeof(MaxOp))
        {
            return T.CreateSaturating(double.NegativeInfinity);
        }
        if (typeof(TOp) == typeof(MinOp))
        {
            return T.CreateSaturating(double.PositiveInfinity);
        }
        return T.Zero;
    }

    private void Reduce<TOp, T>(T* x, T* y, long outer, long n, long inner, bool mean)
        where TOp : IBinaryOp
        where T : unmanaged, INumber<T>
    {
        nint xp = (nint)x, yp = (nint)y;
        T identity = Identity<TOp, T>();
        T count = T.CreateTruncating(n);
        if (inner == 1)
        {
            if (outer == 1)
            {
                T total = ReduceLong<TOp, T>(x, n, identity);
                *y = mean ? total / count : total;
                return;
            }
            CpuParallel.For(Threads, outer, (s, e) =>
            {
                for (long o = s; o < e; o++)
                {
                    T r = ReduceContiguous<TOp, T>((T*)xp + (o * n), n, identity);
                    ((T*)yp)[o] = mean ? r / count : r;
                }
            }, elementsPerItem: Math.Max(1, n));
            return;
        }
        long tiles = (inner + ReduceTile - 1) / ReduceTile;
        CpuParallel.For(Threads, outer * tiles, (s, e) =>
        {
            for (long item = s; item < e; item++)
            {
                long o = item / tiles, j0 = item % tiles * ReduceTile;
                long m = Math.Min(ReduceTile, inner - j0);
                T* acc = (T*)yp + (o * inner) + j0;
                new Span<T>(acc, (int)m).Fill(identity);
                T* row = (T*)xp + (o * n * inner) + j0;
                for (long k = 0; k < n; k++)
                {
                    BinarySpan<TOp, T>(acc, true, row + (k * inner), true, acc, m);
                }
                if (mean)
                {
                    for (long j = 0; j < m; j++)
                    {
                        acc[j] /= count;
                    }
                }
            }
        }, elementsPerItem: Math.Max(1, n) * Math.Min(inner, ReduceTile));
    }

    /// <summary>One long contiguous run: partial results per chunk, combined in chunk order.</summary>
    private T ReduceLong<TOp, T>(T* x, long n, T identity)
        where TOp : IBinaryOp
        where T : unmanaged, INumber<T>
    {
        long chunk = Math.Max(CpuParallel.MinElementsPerThread, (n + Threads - 1) / Threads);
        chunk = (chunk + 63) / 64 * 64;
        long chunks = Math.Max(1, (n + chunk - 1) / chunk);
        if (chunks == 1)
        {
            return ReduceContiguous<TOp, T>(x, n, identity);
        }
        var partial = new T[chunks];
        nint xp = (nint)x;
        CpuParallel.For(Threads, chunks, (s, e) =>
        {
            for (long c = s; c < e; c++)
            {
                long start = c * chunk;
                partial[c] = ReduceContiguous<TOp, T>((T*)xp + start, Math.Min(chunk, n - start), identity);
            }
        }, elementsPerItem: chunk);
        T r = identity;
        foreach (T p in partial)
        {
            r = TOp.Invoke(r, p);
        }
        return r;
    }

    /// <summary>Reduces x[0..n) with four vector accumulators (F32/F64) or a scalar loop.</summary>
    internal static T ReduceContiguous<TOp, T>(T* x, long n, T identity)
        where TOp : IBinaryOp
        where T : unmanaged, INumber<T>
    {
        long i = 0;
        T acc = identity;
        // Integer sums wrap, and wrapping addition is associative, so lanes give the scalar loop's result.
        bool vectorized = TOp.IsVectorized && IsVectorElement<TOp, T>();
        if (vectorized && Vector256.IsHardwareAccelerated && n >= 4 * Vector256<T>.Count)
        {
            int w = Vector256<T>.Count;
            var a0 = Vector256.Create(identity);
            var a1 = a0;
            var a2 = a0;
            var a3 = a0;
            for (; i <= n - (4 * w); i += 4 * w)
            {
                a0 = TOp.Invoke(a0, Vector256.Load(x + i));
                a1 = TOp.Invoke(a1, Vector256.Load(x + i + w));
                a2 = TOp.Invoke(a2, Vector256.Load(x + i + (2 * w)));
                a3 = TOp.Invoke(a3, Vector256.Load(x + i + (3 * w)));
            }
            var v = TOp.Invoke(TOp.Invoke(a0, a1), TOp.Invoke(a2, a3));
            for (; i <= n - w; i += w)
            {
                v = TOp.Invoke(v, Vector256.Load(x + i));
            }
            for (int j = 0; j < w; j++)
            {
                acc = TOp.Invoke(acc, v.GetElement(j));
            }
        }
        else if (vectorized && Vector128.IsHardwareAccelerated && n >= 2 * Vector128<T>.Count)
        {
            int w = Vector128<T>.Count;
            var a0 = Vector128.Create(identity);
            var a1 = a0;
            for (; i <= n - (2 * w); i += 2 * w)
            {
                a0 = TOp.Invoke(a0, Vector128.Load(x + i));
                a1 = TOp.Invoke(a1, Vector128.Load(x + i + w));
            }
            var v = TOp.Invoke(a0, a1);
            for (int j = 0; j < w; j++)
            {
                acc = TOp.Invoke(acc, v.GetElement(j));
            }
        }
        for (; i < n; i++)
        {
            acc = TOp.Invoke(acc, x[i]);
        }
        return acc;
    }

    private void Reduce16<TOp>(DType dtype, ushort* x, ushort* y, long outer, long n, long inner, bool mean)
        where TOp : IBinaryOp
    {
        nint xp = (nint)x, yp = (nint)y;
        float identity = Identity<TOp, float>();
        float count = n;
        long tiles = (inner + ReduceTile - 1) / ReduceTile;
        CpuParallel.For(Threads, outer * tiles, (s, e) =>
        {
            float* acc = stackalloc float[ReduceTile];
            float* tmp = stackalloc float[ReduceTile];
            for (long item = s; item < e; item++)
            {
                long o = item / tiles, j0 = item % tiles * ReduceTile;
                long m = Math.Min(ReduceTile, inner - j0);
                ushort* row = (ushort*)xp + (o * n * inner) + j0;
                if (inner == 1)
                {
                    // One contiguous run: reduce it a block at a time.
                    float r = identity;
                    for (long k = 0; k < n; k += ReduceTile)
                    {
                        long b = Math.Min(ReduceTile, n - k);
                        CpuConvert.Load16(dtype, row + k, tmp, b);
                        r = TOp.Invoke(r, ReduceContiguous<TOp, float>(tmp, b, identity));
                    }
                    *acc = r;
                }
                else
                {
                    new Span<float>(acc, (int)m).Fill(identity);
                    for (long k = 0; k < n; k++)
                    {
                        CpuConvert.Load16(dtype, row + (k * inner), tmp, m);
                        BinarySpan<TOp, float>(acc, true, tmp, true, acc, m);
                    }
                }
                if (mean)
                {
                    for (long j = 0; j < m; j++)
                    {
                        acc[j] /= count;
                    }
                }
                CpuConvert.Store16(dtype, acc, (ushort*)yp + (o * inner) + j0, m);
            }
        }, elementsPerItem: Math.Max(1, n) * Math.Min(inner, ReduceTile));
    }

    public void ArgMax(Tensor x, int axis, Tensor indices)
    {
        if (indices.ElementCount == 0)
        {
            return;
        }
        var (outer, n, inner) = Split(x.Shape, axis);
        nint xp = (nint)Ptr(x), ip = (nint)Ptr(indices);
        switch (x.DType)
        {
            case DType.F32: ArgMax((float*)xp, (long*)ip, outer, n, inner); break;
            case DType.F64: ArgMax((double*)xp, (long*)ip, outer, n, inner); break;
            case DType.I32: ArgMax((int*)xp, (long*)ip, outer, n, inner); break;
            case DType.I64: ArgMax((long*)xp, (long*)ip, outer, n, inner); break;
            case DType.I8: ArgMax((sbyte*)xp, (long*)ip, outer, n, inner); break;
            case DType.U8: ArgMax((byte*)xp, (long*)ip, outer, n, inner); break;
            case DType.F16:
            case DType.BF16:
                {
                    // Widening to F32 is exact, so the comparison (and the first maximum) is unchanged.
                    long count = x.ElementCount;
                    float* wide = (float*)NativeMemory.Alloc((nuint)count, sizeof(float));
                    try
                    {
                        CpuConvert.Load16(x.DType, (ushort*)xp, wide, count);
                        ArgMax(wide, (long*)ip, outer, n, inner);
                    }
                    finally
                    {
                        NativeMemory.Free(wide);
                    }
                    break;
                }
            default: throw new DTypeNotSupportedException("argmax", x.DType, "cpu");
        }
    }

    private void ArgMax<T>(T* x, long* indices, long outer, long n, long inner)
        where T : unmanaged, INumber<T>
    {
        nint xp = (nint)x, ip = (nint)indices;
        CpuParallel.For(Threads, outer * inner, (s, e) =>
        {
            for (long item = s; item < e; item++)
            {
                long o = item / inner, j = item % inner;
                T* p = (T*)xp + (o * n * inner) + j;
                T best = p[0];
                long bestK = 0;
                if (!T.IsNaN(best))
                {
                    for (long k = 1; k < n; k++)
                    {
                        T v = p[k * inner];
                        if (T.IsNaN(v))
                        {
                            bestK = k;
                            break;
                        }
                        if (v > best)
                        {
                            best = v;
                            bestK = k;
                        }
                    }
                }
                ((long*)ip)[item] = bestK;
            }
        }, elementsPerItem: n);
    }
}
