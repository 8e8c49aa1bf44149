using Hal.Backends.Cuda.Kernels;
using ILGPU;
using ILGPU.Runtime;

namespace Hal.Backends.Cuda;

// Tier 1: fill, copy, cast, unary, binary (broadcast), reduce, arg-max, index kernels and random numbers.
// Legend: n elements; an axis op sees x as [outer, n, inner].
internal sealed partial class CudaKernels
{
    public void Fill(Tensor dst, double value)
    {
        // Integer and bool targets take the value through the cast rule from double (truncate, saturate, NaN → 0).
        var kernel = Load("fill", a => a.LoadAutoGroupedStreamKernel<Index1D, DeviceTensor, long, double>(ElementwiseKernels.Fill));
        var d = Arg(dst);
        Run(() => Chunked(dst.ElementCount, (n, s) => kernel(n, d, s, value)), "fill");
    }

    public void Copy(Tensor src, Tensor dst)
    {
        if (ReferenceEquals(src.Buffer, dst.Buffer) && src.OffsetBytes == dst.OffsetBytes)
        {
            return;
        }
        _device.CopyDeviceToDevice(src.Buffer, src.OffsetBytes, dst.Buffer, dst.OffsetBytes, src.SizeInBytes);
    }

    public void Cast(Tensor src, Tensor dst)
    {
        if (src.DType == dst.DType)
        {
            Copy(src, dst);
            return;
        }
        var kernel = Load("cast", a => a.LoadAutoGroupedStreamKernel<Index1D, DeviceTensor, DeviceTensor, long>(ElementwiseKernels.Cast));
        var s = Arg(src);
        var d = Arg(dst);
        Run(() => Chunked(src.ElementCount, (n, start) => kernel(n, s, d, start)), "cast");
    }

    public void Unary(UnaryOp op, Tensor x, Tensor y)
    {
        var kernel = Load("unary", a => a.LoadAutoGroupedStreamKernel<Index1D, DeviceTensor, DeviceTensor, long, int>(ElementwiseKernels.Unary));
        var xs = Arg(x);
        var ys = Arg(y);
        Run(() => Chunked(x.ElementCount, (n, s) => kernel(n, xs, ys, s, (int)op)), op.ToString());
    }

    public void Binary(BinaryOp op, Tensor a, Tensor b, Tensor y)
    {
        var kernel = Load("binary", acc => acc.LoadAutoGroupedStreamKernel<Index1D, DeviceTensor, DeviceTensor, DeviceTensor, long, int, BroadcastDims>(ElementwiseKernels.Binary));
        var dims = Broadcast(a.Shape, b.Shape, y.Shape);
        var at = Arg(a);
        var bt = Arg(b);
        var yt = Arg(y);
        Run(() => Chunked(y.ElementCount, (n, s) => kernel(n, at, bt, yt, s, (int)op, dims)), op.ToString());
    }

    /// <summary>
    /// Aligns a and b to y's rank, gives broadcast axes stride 0 and merges neighbouring axes that both operands
    /// walk the same way; the kernel takes up to eight axes after merging.
    /// </summary>
    internal static BroadcastDims Broadcast(Shape a, Shape b, Shape y)
    {
        int rank = y.Rank;
        var extents = new List<long>();
        var sa = new List<long>();
        var sb = new List<long>();
        long strideA = 1, strideB = 1;
        var ea = new long[rank];
        var eb = new long[rank];
        var ta = new long[rank];
        var tb = new long[rank];
        for (int k = rank - 1; k >= 0; k--)
        {
            int ka = k - (rank - a.Rank);
            int kb = k - (rank - b.Rank);
            long da = ka >= 0 ? a[ka] : 1;
            long db = kb >= 0 ? b[kb] : 1;
            ta[k] = da == 1 && y[k] != 1 ? 0 : strideA;
            tb[k] = db == 1 && y[k] != 1 ? 0 : strideB;
            strideA *= da;
            strideB *= db;
            ea[k] = da;
            eb[k] = db;
        }
        for (int k = 0; k < rank; k++)
        {
            if (y[k] == 1)
            {
                continue;
            }
            int last = extents.Count - 1;
            // Merge axis k into the previous one when both operands are contiguous across the pair (or both broadcast).
            if (last >= 0 && sa[last] == ta[k] * y[k] && sb[last] == tb[k] * y[k])
            {
                extents[last] *= y[k];
                sa[last] = ta[k];
                sb[last] = tb[k];
                continue;
            }
            extents.Add(y[k]);
            sa.Add(ta[k]);
            sb.Add(tb[k]);
        }
        if (extents.Count > 8)
        {
            throw new NotSupportedException($"broadcast of {a} and {b} needs {extents.Count} distinct axes; the CUDA kernel takes up to 8");
        }
        var d = new BroadcastDims { Rank = extents.Count };
        long E(int k) => k < extents.Count ? extents[k] : 1;
        long A(int k) => k < sa.Count ? sa[k] : 0;
        long B(int k) => k < sb.Count ? sb[k] : 0;
        d.O0 = E(0); d.O1 = E(1); d.O2 = E(2); d.O3 = E(3); d.O4 = E(4); d.O5 = E(5); d.O6 = E(6); d.O7 = E(7);
        d.A0 = A(0); d.A1 = A(1); d.A2 = A(2); d.A3 = A(3); d.A4 = A(4); d.A5 = A(5); d.A6 = A(6); d.A7 = A(7);
        d.B0 = B(0); d.B1 = B(1); d.B2 = B(2); d.B3 = B(3); d.B4 = B(4); d.B5 = B(5); d.B6 = B(6); d.B7 = B(7);
        return d;
    }

    public void Reduce(ReduceOp op, Tensor x, int axis, Tensor y)
    {
        var kernel = Load("reduce", a => a.LoadAutoGroupedStreamKernel<Index1D, DeviceTensor, DeviceTensor, long, long, long, int>(TensorKernels.Reduce));
        var (_, n, inner) = Split(x.Shape, axis);
        var xs = Arg(x);
        var ys = Arg(y);
        Run(() => Chunked(y.ElementCount, (count, s) => kernel(count, xs, ys, s, n, Math.Max(inner, 1), (int)op)), "reduce");
    }

    public void ArgMax(Tensor x, int axis, Tensor indices)
    {
        var kernel = Load("argmax", a => a.LoadAutoGroupedStreamKernel<Index1D, DeviceTensor, DeviceTensor, long, long, long>(TensorKernels.ArgMax));
        var (_, n, inner) = Split(x.Shape, axis);
        var xs = Arg(x);
        var ys = Arg(indices);
        Run(() => Chunked(indices.ElementCount, (count, s) => kernel(count, xs, ys, s, n, Math.Max(inner, 1))), "argmax");
    }

    public void IndexSelect(Tensor src, int axis, Tensor index, Tensor dst)
    {
        var (_, srcAxis, inner) = Split(src.Shape, axis);
        CheckIndices("index_select", DownloadIndices(index), srcAxis);
        var kernel = Load("index_select", a => a.LoadAutoGroupedStreamKernel<Index1D, DeviceTensor, DeviceTensor, DeviceTensor, long, long, long, long>(TensorKernels.IndexSelect));
        var s = Arg(src);
        var i = Arg(index);
        var d = Arg(dst);
        long count = index.ElementCount;
        Run(() => Chunked(dst.ElementCount, (n, start) => kernel(n, s, i, d, start, srcAxis, Math.Max(count, 1), Math.Max(inner, 1))), "index_select");
    }

    public void IndexAdd(Tensor src, int axis, Tensor index, Tensor dst)
    {
        var (_, dstAxis, inner) = Split(dst.Shape, axis);
        CheckIndices("index_add", DownloadIndices(index), dstAxis);
        var kernel = Load("index_add", a => a.LoadAutoGroupedStreamKernel<Index1D, DeviceTensor, DeviceTensor, DeviceTensor, long, long, long, long>(TensorKernels.IndexAdd));
        var s = Arg(src);
        var i = Arg(index);
        var d = Arg(dst);
        long count = index.ElementCount;
        Run(() => Chunked(dst.ElementCount, (n, start) => kernel(n, s, i, d, start, dstAxis, count, Math.Max(inner, 1))), "index_add");
    }

    public void Gather(Tensor src, int axis, Tensor index, Tensor dst)
    {
        var (_, srcAxis, inner) = Split(src.Shape, axis);
        CheckIndices("gather", DownloadIndices(index), srcAxis);
        var kernel = Load("gather", a => a.LoadAutoGroupedStreamKernel<Index1D, DeviceTensor, DeviceTensor, DeviceTensor, long, long, long, long>(TensorKernels.Gather));
        var s = Arg(src);
        var i = Arg(index);
        var d = Arg(dst);
        long count = index.Shape[axis];
        long innerIndex = index.Shape.Product(axis + 1, index.Rank);
        if (innerIndex != inner)
        {
            throw new ShapeMismatchException("gather", src.Shape, index.Shape, "the CUDA gather needs index to match src after the axis");
        }
        Run(() => Chunked(dst.ElementCount, (n, start) => kernel(n, s, i, d, start, srcAxis, Math.Max(count, 1), Math.Max(inner, 1))), "gather");
    }

    public void ScatterAdd(Tensor src, int axis, Tensor index, Tensor dst)
    {
        var (_, dstAxis, inner) = Split(dst.Shape, axis);
        CheckIndices("scatter_add", DownloadIndices(index), dstAxis);
        long count = index.Shape[axis];
        long innerIndex = index.Shape.Product(axis + 1, index.Rank);
        if (innerIndex != inner)
        {
            throw new ShapeMismatchException("scatter_add", dst.Shape, index.Shape, "the CUDA scatter_add needs index to match dst after the axis");
        }
        var kernel = Load("scatter_add", a => a.LoadAutoGroupedStreamKernel<Index1D, DeviceTensor, DeviceTensor, DeviceTensor, long, long, long, long>(TensorKernels.ScatterAdd));
        var s = Arg(src);
        var i = Arg(index);
        var d = Arg(dst);
        Run(() => Chunked(dst.ElementCount, (n, start) => kernel(n, s, i, d, start, dstAxis, count, Math.Max(inner, 1))), "scatter_add");
    }

    public void Random(RandomDistribution distribution, Tensor dst, ulong seed, ulong offset, double a, double b)
    {
        var kernel = Load("random", acc => acc.LoadAutoGroupedStreamKernel<Index1D, DeviceTensor, long, ulong, ulong, double, double, int>(TensorKernels.Random));
        var d = Arg(dst);
        int normal = distribution == RandomDistribution.Normal ? 1 : 0;
        Run(() => Chunked(dst.ElementCount, (n, s) => kernel(n, d, s, seed, offset, a, b, normal)), "random");
    }
}
