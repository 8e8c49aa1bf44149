namespace Hal.Backends.Cpu;

// Index kernels. Shape legend: data is [outer, axis, inner] around the indexed axis; L is the index length (1-D
// index) and J the index's extent along the axis (gather/scatter). Index values are checked before any write, since
// only the kernel sees them.
internal sealed unsafe partial class CpuKernels
{
    public void IndexSelect(Tensor src, int axis, Tensor index, Tensor dst)
    {
        var (outer, n, inner) = Split(src.Shape, axis);
        long length = index.ElementCount;
        CheckIndices("index-select", index, n, negativeIgnored: false, axis);
        long rowBytes = inner * src.DType.SizeInBytes();
        nint sp = (nint)Ptr(src), dp = (nint)Ptr(dst), ip = (nint)Ptr(index);
        var indexType = index.DType;
        // dst[o, i, :] = src[o, index[i], :]
        CpuParallel.For(Threads, outer * length, (s, e) =>
        {
            for (long item = s; item < e; item++)
            {
                long o = item / length, i = item % length;
                long k = LoadIndex((byte*)ip, indexType, i);
                Buffer.MemoryCopy((byte*)sp + (((o * n) + k) * rowBytes), (byte*)dp + (item * rowBytes), rowBytes, rowBytes);
            }
        }, elementsPerItem: Math.Max(1, inner));
    }

    public void IndexAdd(Tensor src, int axis, Tensor index, Tensor dst)
    {
        var (outer, n, inner) = Split(dst.Shape, axis);
        long length = index.ElementCount;
        CheckIndices("index-add", index, n, negativeIgnored: false, axis);
        var dtype = dst.DType;
        int size = dtype.SizeInBytes();
        nint sp = (nint)Ptr(src), dp = (nint)Ptr(dst), ip = (nint)Ptr(index);
        var indexType = index.DType;
        if (dtype.Is16Bit())
        {
            // The contract: 16-bit types accumulate in F32 and round once, so repeated indices sum in F32.
            Accumulate16(dtype, outer, n * inner, length * inner, dp, (o, add) =>
            {
                for (long i = 0; i < length; i++)
                {
                    long k = LoadIndex((byte*)ip, indexType, i);
                    for (long c = 0; c < inner; c++)
                    {
                        add((k * inner) + c, ((o * length) + i) * inner + c);
                    }
                }
            }, sp);
            return;
        }
        // dst[o, index[i], :] += src[o, i, :]; repeated indices touch one row, so only outer splits across threads.
        CpuParallel.For(Threads, outer, (s, e) =>
        {
            for (long o = s; o < e; o++)
            {
                for (long i = 0; i < length; i++)
                {
                    long k = LoadIndex((byte*)ip, indexType, i);
                    AddRun(dtype, (byte*)dp + ((((o * n) + k) * inner) * size), (byte*)sp + ((((o * length) + i) * inner) * size), inner);
                }
            }
        }, elementsPerItem: Math.Max(1, length * inner));
    }

    public void Gather(Tensor src, int axis, Tensor index, Tensor dst)
    {
        var (outer, n, inner) = Split(src.Shape, axis);
        long j = index.Shape[axis];
        CheckIndices("gather", index, n, negativeIgnored: false, axis);
        int size = src.DType.SizeInBytes();
        nint sp = (nint)Ptr(src), dp = (nint)Ptr(dst), ip = (nint)Ptr(index);
        var indexType = index.DType;
        // dst[o, j, i] = src[o, index[o, j, i], i]
        CpuParallel.For(Threads, index.ElementCount, (s, e) =>
        {
            for (long item = s; item < e; item++)
            {
                long i = item % inner, o = item / inner / j;
                long k = LoadIndex((byte*)ip, indexType, item);
                Buffer.MemoryCopy((byte*)sp + ((((o * n) + k) * inner) + i) * size, (byte*)dp + (item * size), size, size);
            }
        });
    }

    public void ScatterAdd(Tensor src, int axis, Tensor index, Tensor dst)
    {
        var (outer, n, inner) = Split(dst.Shape, axis);
        long j = index.Shape[axis];
        CheckIndices("scatter-add", index, n, negativeIgnored: false, axis);
        var dtype = dst.DType;
        int size = dtype.SizeInBytes();
        nint sp = (nint)Ptr(src), dp = (nint)Ptr(dst), ip = (nint)Ptr(index);
        var indexType = index.DType;
        if (dtype.Is16Bit())
        {
            Accumulate16(dtype, outer, n * inner, j * inner, dp, (o, add) =>
            {
                for (long item = o * j * inner; item < (o + 1) * j * inner; item++)
                {
                    long k = LoadIndex((byte*)ip, indexType, item);
                    add((k * inner) + (item % inner), item);
                }
            }, sp);
            return;
        }
        // dst[o, index[o, j, i], i] += src[o, j, i]; different o never meet, so outer splits across threads.
        CpuParallel.For(Threads, outer, (s, e) =>
        {
            for (long o = s; o < e; o++)
            {
                for (long item = o * j * inner; item < (o + 1) * j * inner; item++)
                {
                    long i = item % inner;
                    long k = LoadIndex((byte*)ip, indexType, item);
                    AddRun(dtype, (byte*)dp + ((((o * n) + k) * inner) + i) * size, (byte*)sp + (item * size), 1);
                }
            }
        }, elementsPerItem: Math.Max(1, j * inner));
    }

    /// <summary>
    /// 16-bit accumulation for index-add and scatter-add: per outer slab o, the slab of dst (slabLength elements) is
    /// loaded into F32, <paramref name="visit"/> calls add(dstIndexInSlab, srcIndex) for every addition, and each
    /// element that was added to is rounded back once.
    /// </summary>
    private void Accumulate16(DType dtype, long outer, long slabLength, long workPerSlab, nint dp, Action<long, Action<long, long>> visit, nint sp)
    {
        CpuParallel.For(Threads, outer, (s, e) =>
        {
            var acc = new float[slabLength];
            var touched = new bool[slabLength];
            for (long o = s; o < e; o++)
            {
                ushort* d = (ushort*)dp + (o * slabLength);
                for (long t = 0; t < slabLength; t++)
                {
                    acc[t] = CpuConvert.Load16(dtype, d[t]);
                    touched[t] = false;
                }
                visit(o, (at, from) =>
                {
                    acc[at] += CpuConvert.Load16(dtype, ((ushort*)sp)[from]);
                    touched[at] = true;
                });
                for (long t = 0; t < slabLength; t++)
                {
                    if (touched[t])
                    {
                        d[t] = CpuConvert.Store16(dtype, acc[t]);
                    }
                }
            }
        }, elementsPerItem: Math.Max(1, workPerSlab));
    }

    internal static long LoadIndex(byte* p, DType dtype, long i) => dtype == DType.I32 ? ((int*)p)[i] : ((long*)p)[i];

    /// <summary>dst[0..m) += src[0..m) in the dtype (16-bit in F32 then rounded; Bool is logical or).</summary>
    private static void AddRun(DType dtype, byte* dst, byte* src, long m)
    {
        switch (dtype)
        {
            case DType.F32: BinarySpan<AddOp, float>((float*)dst, true, (float*)src, true, (float*)dst, m); break;
            case DType.F64: BinarySpan<AddOp, double>((double*)dst, true, (double*)src, true, (double*)dst, m); break;
            case DType.I32: BinarySpan<AddOp, int>((int*)dst, true, (int*)src, true, (int*)dst, m); break;
            case DType.I64: BinarySpan<AddOp, long>((long*)dst, true, (long*)src, true, (long*)dst, m); break;
            case DType.I8: BinarySpan<AddOp, sbyte>((sbyte*)dst, true, (sbyte*)src, true, (sbyte*)dst, m); break;
            case DType.U8: BinarySpan<AddOp, byte>(dst, true, src, true, dst, m); break;
            case DType.F16:
            case DType.BF16:
                for (long i = 0; i < m; i++)
                {
                    ushort* d = (ushort*)dst + i;
                    *d = CpuConvert.Store16(dtype, CpuConvert.Load16(dtype, *d) + CpuConvert.Load16(dtype, ((ushort*)src)[i]));
                }
                break;
            default:
                for (long i = 0; i < m; i++)
                {
                    dst[i] = (byte)(dst[i] != 0 || src[i] != 0 ? 1 : 0);
                }
                break;
        }
    }
}
