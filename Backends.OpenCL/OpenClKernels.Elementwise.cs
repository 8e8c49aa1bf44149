using Hal.Numerics;

namespace Hal.Backends.OpenCL;

// Fill, copy, cast, unary, binary (with broadcasting) and random. Legend: n elements; broadcast shapes are merged
// into at most 8 dims of the output with per-operand element strides (0 where an operand is broadcast).
internal sealed unsafe partial class OpenClKernels
{
    private const string ElementwiseFile = "elementwise.cl";

    public void Fill(Tensor dst, double value)
    {
        if (dst.ElementCount == 0)
        {
            return;
        }
        // The pattern is the value cast on the host with the contract's rules, then replicated by clEnqueueFillBuffer.
        int size = dst.DType.SizeInBytes();
        long pattern = 0;
        HostConvert.FromDoubles([value], dst.DType, new Span<byte>(&pattern, size));
        OpenClException.Check(
            _device.Api.EnqueueFillBuffer(_device.Queue, ((OpenClBuffer)dst.Buffer).Memory, &pattern, (nuint)size, (nuint)dst.OffsetBytes, (nuint)dst.SizeInBytes, 0, null, null),
            $"filling {dst.SizeInBytes} bytes on {_device.Id}");
    }

    public void Copy(Tensor src, Tensor dst)
    {
        if (src.SizeInBytes == 0)
        {
            return;
        }
        _device.CopyBytes(((OpenClBuffer)src.Buffer).Memory, src.OffsetBytes, ((OpenClBuffer)dst.Buffer).Memory, dst.OffsetBytes, src.SizeInBytes);
    }

    public void Cast(Tensor src, Tensor dst)
    {
        if (src.DType == dst.DType)
        {
            Copy(src, dst);
            return;
        }
        Launch1D("cast.cl", Options(DType.F32), $"cast_{CastName(src.DType)}_{CastName(dst.DType)}", src.ElementCount,
            Mem(src), Off(src), Mem(dst), Off(dst), KArg.I64(src.ElementCount));
    }

    private static string CastName(DType d) => d == DType.Bool ? "BOOL" : d.ToString();

    public void Unary(UnaryOp op, Tensor x, Tensor y) =>
        Launch1D(ElementwiseFile, Options(x.DType), "unary", x.ElementCount, KArg.I32((int)op), Mem(x), Off(x), Mem(y), Off(y), KArg.I64(x.ElementCount));

    public void Binary(BinaryOp op, Tensor a, Tensor b, Tensor y)
    {
        long n = y.ElementCount;
        if (n == 0)
        {
            return;
        }
        string options = Options(a.DType);
        if (a.Shape == y.Shape && b.Shape == y.Shape)
        {
            Launch1D(ElementwiseFile, options, "binary_same", n, KArg.I32((int)op), Mem(a), Off(a), Mem(b), Off(b), Mem(y), Off(y), KArg.I64(n));
            return;
        }
        var (dims, sa, sb) = MergeBroadcast(a.Shape, b.Shape, y.Shape);
        Launch1D(ElementwiseFile, options, "binary_broadcast", n, KArg.I32((int)op), Mem(a), Off(a), Mem(b), Off(b), Mem(y), Off(y), KArg.I64(n),
            KArg.Long8(dims), KArg.Long8(sa), KArg.Long8(sb));
    }

    /// <summary>
    /// The output's dims (size-1 dims dropped, neighbours with the same broadcast pattern merged) right-aligned in 8
    /// slots, with a's and b's element strides per slot (0 where the operand is broadcast).
    /// </summary>
    internal static (long[] Dims, long[] StridesA, long[] StridesB) MergeBroadcast(Shape a, Shape b, Shape y)
    {
        int r = y.Rank;
        var dims = new List<long>();
        var kinds = new List<int>();
        for (int i = 0; i < r; i++)
        {
            int d = y[i];
            if (d == 1)
            {
                continue;
            }
            int ai = i - (r - a.Rank), bi = i - (r - b.Rank);
            bool aFull = ai >= 0 && a[ai] == d, bFull = bi >= 0 && b[bi] == d;
            int kind = (aFull ? 1 : 0) | (bFull ? 2 : 0);
            if (kinds.Count > 0 && kinds[^1] == kind)
            {
                dims[^1] *= d;
            }
            else
            {
                dims.Add(d);
                kinds.Add(kind);
            }
        }
        if (dims.Count > 8)
        {
            throw new NotSupportedException($"broadcast of {a} with {b} alternates between broadcast and full dimensions more than 8 times");
        }
        var outDims = new long[8];
        var sa = new long[8];
        var sb = new long[8];
        Array.Fill(outDims, 1L);
        long strideA = 1, strideB = 1;
        for (int k = dims.Count - 1, slot = 7; k >= 0; k--, slot--)
        {
            outDims[slot] = dims[k];
            if ((kinds[k] & 1) != 0)
            {
                sa[slot] = strideA;
                strideA *= dims[k];
            }
            if ((kinds[k] & 2) != 0)
            {
                sb[slot] = strideB;
                strideB *= dims[k];
            }
        }
        return (outDims, sa, sb);
    }

    public void Random(RandomDistribution distribution, Tensor dst, ulong seed, ulong offset, double a, double b)
    {
        long n = dst.ElementCount;
        if (dst.DType == DType.F64)
        {
            Launch1D("random.cl", Options(DType.F64), "random_f64", n, KArg.I32((int)distribution), Mem(dst), Off(dst), KArg.I64(n),
                KArg.U64(seed), KArg.U64(offset), KArg.F64(a), KArg.F64(b));
            return;
        }
        Launch1D("random.cl", Options(dst.DType), "random_f32", n, KArg.I32((int)distribution), Mem(dst), Off(dst), KArg.I64(n),
            KArg.U64(seed), KArg.U64(offset), KArg.F32((float)a), KArg.F32((float)b));
    }
}
