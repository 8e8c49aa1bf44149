using System.Numerics;
using System.Runtime.Intrinsics;

namespace Hal.Backends.Cpu;

// Binary element-wise ops with NumPy broadcasting. The broadcast is planned once: size-1 output axes are dropped,
// adjacent axes that are contiguous for both operands are merged, and what is left is [rows, inner] where each
// operand's inner stride is 1 (full) or 0 (one value repeated). Same-shape, scalar, row ([N,C] op [C]) and column
// ([N,C] op [N,1]) operands all reduce to that inner loop, vectorised for F32/F64.
internal sealed unsafe partial class CpuKernels
{
    public void Binary(BinaryOp op, Tensor a, Tensor b, Tensor y)
    {
        switch (op)
        {
            case BinaryOp.Add: Binary<AddOp>(a, b, y); break;
            case BinaryOp.Sub: Binary<SubOp>(a, b, y); break;
            case BinaryOp.Mul: Binary<MulOp>(a, b, y); break;
            case BinaryOp.Div: Binary<DivOp>(a, b, y); break;
            case BinaryOp.Max: Binary<MaxOp>(a, b, y); break;
            case BinaryOp.Min: Binary<MinOp>(a, b, y); break;
            case BinaryOp.Pow: Binary<PowOp>(a, b, y); break;
            default: throw new ArgumentOutOfRangeException(nameof(op), op, "unknown binary op");
        }
    }

    private void Binary<TOp>(Tensor a, Tensor b, Tensor y)
        where TOp : IBinaryOp
    {
        if (y.ElementCount == 0)
        {
            return;
        }
        var plan = BroadcastPlan.Create(a.Shape, b.Shape, y.Shape);
        switch (a.DType)
        {
            case DType.F32: Binary<TOp, float>(plan, a, b, y); break;
            case DType.F64: Binary<TOp, double>(plan, a, b, y); break;
            case DType.I32: Binary<TOp, int>(plan, a, b, y); break;
            case DType.I64: Binary<TOp, long>(plan, a, b, y); break;
            case DType.I8: Binary<TOp, sbyte>(plan, a, b, y); break;
            case DType.U8: Binary<TOp, byte>(plan, a, b, y); break;
            case DType.F16:
            case DType.BF16: Binary16<TOp>(plan, a, b, y); break;
            default: throw new DTypeNotSupportedException("binary", a.DType, "cpu");
        }
    }

    private void Binary<TOp, T>(BroadcastPlan plan, Tensor a, Tensor b, Tensor y)
        where TOp : IBinaryOp
        where T : unmanaged, INumber<T>
    {
        nint ap = (nint)Ptr(a), bp = (nint)Ptr(b), yp = (nint)Ptr(y);
        plan.Run(Threads, sizeof(T), (aOff, bOff, yOff, n) =>
            BinarySpan<TOp, T>((T*)ap + aOff, plan.AFull, (T*)bp + bOff, plan.BFull, (T*)yp + yOff, n));
    }

    private void Binary16<TOp>(BroadcastPlan plan, Tensor a, Tensor b, Tensor y)
        where TOp : IBinaryOp
    {
        nint ap = (nint)Ptr(a), bp = (nint)Ptr(b), yp = (nint)Ptr(y);
        var dtype = a.DType;
        plan.Run(Threads, 2, (aOff, bOff, yOff, n) =>
        {
            float* ta = stackalloc float[StageBlock];
            float* tb = stackalloc float[StageBlock];
            ushort* pa = (ushort*)ap + aOff, pb = (ushort*)bp + bOff, py = (ushort*)yp + yOff;
            if (!plan.AFull)
            {
                *ta = CpuConvert.Load16(dtype, *pa);
            }
            if (!plan.BFull)
            {
                *tb = CpuConvert.Load16(dtype, *pb);
            }
            for (long i = 0; i < n; i += StageBlock)
            {
                long m = Math.Min(StageBlock, n - i);
                if (plan.AFull)
                {
                    CpuConvert.Load16(dtype, pa + i, ta, m);
                }
                if (plan.BFull)
                {
                    CpuConvert.Load16(dtype, pb + i, tb, m);
                }
                // The result goes into whichever staging block is full-width (ta when both are scalars).
                float* ty = plan.AFull || !plan.BFull ? ta : tb;
                BinarySpan<TOp, float>(ta, plan.AFull, tb, plan.BFull, ty, plan.AFull || plan.BFull ? m : 1);
                if (!plan.AFull && !plan.BFull)
                {
                    new Span<ushort>(py, (int)m).Fill(CpuConvert.Store16(dtype, *ty));
                    continue;
                }
                CpuConvert.Store16(dtype, ty, py + i, m);
            }
        });
    }

    /// <summary>
    /// Whether the vector forms serve this element type: float types always; integers for every op but Div, whose
    /// truncation and zero rule need the scalar form.
    /// </summary>
    private static bool IsVectorElement<TOp, T>()
        where TOp : IBinaryOp
    {
        if (typeof(T) == typeof(float) || typeof(T) == typeof(double))
        {
            return true;
        }
        return typeof(TOp) != typeof(DivOp) && (typeof(T) == typeof(int) || typeof(T) == typeof(long) || typeof(T) == typeof(sbyte) || typeof(T) == typeof(byte));
    }

    /// <summary>y[i] = a[i or 0] op b[i or 0] over n elements; the flags say which operands advance.</summary>
    internal static void BinarySpan<TOp, T>(T* a, bool aFull, T* b, bool bFull, T* y, long n)
        where TOp : IBinaryOp
        where T : unmanaged, INumber<T>
    {
        if (!aFull && !bFull)
        {
            T v = TOp.Invoke(*a, *b);
            for (long j = 0; j < n; j++)
            {
                y[j] = v;
            }
            return;
        }
        long i = 0;
        bool vectorized = TOp.IsVectorized && IsVectorElement<TOp, T>();
        if (vectorized && Vector256.IsHardwareAccelerated)
        {
            int w = Vector256<T>.Count;
            if (aFull && bFull)
            {
                for (; i <= n - (2 * w); i += 2 * w)
                {
                    var r0 = TOp.Invoke(Vector256.Load(a + i), Vector256.Load(b + i));
                    var r1 = TOp.Invoke(Vector256.Load(a + i + w), Vector256.Load(b + i + w));
                    Vector256.Store(r0, y + i);
                    Vector256.Store(r1, y + i + w);
                }
                for (; i <= n - w; i += w)
                {
                    Vector256.Store(TOp.Invoke(Vector256.Load(a + i), Vector256.Load(b + i)), y + i);
                }
            }
            else if (aFull)
            {
                var vb = Vector256.Create(*b);
                for (; i <= n - w; i += w)
                {
                    Vector256.Store(TOp.Invoke(Vector256.Load(a + i), vb), y + i);
                }
            }
            else
            {
                var va = Vector256.Create(*a);
                for (; i <= n - w; i += w)
                {
                    Vector256.Store(TOp.Invoke(va, Vector256.Load(b + i)), y + i);
                }
            }
        }
        else if (vectorized && Vector128.IsHardwareAccelerated)
        {
            int w = Vector128<T>.Count;
            var va = Vector128.Create(*a);
            var vb = Vector128.Create(*b);
            for (; i <= n - w; i += w)
            {
                var x0 = aFull ? Vector128.Load(a + i) : va;
                var x1 = bFull ? Vector128.Load(b + i) : vb;
                Vector128.Store(TOp.Invoke(x0, x1), y + i);
            }
        }
        for (; i < n; i++)
        {
            y[i] = TOp.Invoke(aFull ? a[i] : *a, bFull ? b[i] : *b);
        }
    }
}

/// <summary>A broadcast reduced to rows of one inner run: per-row element offsets of a, b and y.</summary>
internal sealed class BroadcastPlan
{
    private readonly int[] _outerDims;
    private readonly long[] _outerStrideA;
    private readonly long[] _outerStrideB;

    private BroadcastPlan(int[] outerDims, long[] strideA, long[] strideB, long inner, bool aFull, bool bFull)
    {
        _outerDims = outerDims;
        _outerStrideA = strideA;
        _outerStrideB = strideB;
        Inner = inner;
        AFull = aFull;
        BFull = bFull;
        Rows = 1;
        foreach (int d in outerDims)
        {
            Rows *= d;
        }
    }

    /// <summary>Elements per row (the merged innermost axes).</summary>
    public long Inner { get; }

    /// <summary>Product of the outer axes.</summary>
    public long Rows { get; }

    /// <summary>True when a advances along the inner run (stride 1), false when one value repeats (stride 0).</summary>
    public bool AFull { get; }

    public bool BFull { get; }

    /// <summary>A row kernel: offsets (elements) of a, b, y and the run length.</summary>
    public delegate void RowBody(long aOffset, long bOffset, long yOffset, long count);

    public static BroadcastPlan Create(Shape a, Shape b, Shape y)
    {
        int rank = y.Rank;
        var dims = new List<int>();
        var sa = new List<long>();
        var sb = new List<long>();
        long[] stridesA = a.Strides(), stridesB = b.Strides();
        for (int i = 0; i < rank; i++)
        {
            if (y[i] == 1)
            {
                continue;
            }
            int ia = i - (rank - a.Rank), ib = i - (rank - b.Rank);
            dims.Add(y[i]);
            sa.Add(ia >= 0 && a[ia] != 1 ? stridesA[ia] : 0);
            sb.Add(ib >= 0 && b[ib] != 1 ? stridesB[ib] : 0);
        }
        if (dims.Count == 0)
        {
            dims.Add(1);
            sa.Add(1);
            sb.Add(1);
        }
        // Merge axis i into i+1 when both operands step through them as one contiguous (or one repeated) axis.
        for (int i = dims.Count - 2; i >= 0; i--)
        {
            if (sa[i] == sa[i + 1] * dims[i + 1] && sb[i] == sb[i + 1] * dims[i + 1])
            {
                dims[i + 1] *= dims[i];
                dims.RemoveAt(i);
                sa.RemoveAt(i);
                sb.RemoveAt(i);
            }
        }
        int last = dims.Count - 1;
        return new BroadcastPlan(
            [.. dims.Take(last)], [.. sa.Take(last)], [.. sb.Take(last)], dims[last], sa[last] != 0, sb[last] != 0);
    }

    /// <summary>Runs <paramref name="body"/> over every row, in parallel when the work is large.</summary>
    public void Run(int threads, int elementBytes, RowBody body)
    {
        if (Rows == 1)
        {
            bool af = AFull, bf = BFull;
            CpuParallel.For(threads, Inner, (s, e) => body(af ? s : 0, bf ? s : 0, s, e - s),
                alignItems: CpuParallel.LineItems(elementBytes));
            return;
        }
        long inner = Inner;
        CpuParallel.For(threads, Rows, (s, e) =>
        {
            for (long r = s; r < e; r++)
            {
                long rem = r, offA = 0, offB = 0;
                for (int d = _outerDims.Length - 1; d >= 0; d--)
                {
                    long idx = rem % _outerDims[d];
                    rem /= _outerDims[d];
                    offA += idx * _outerStrideA[d];
                    offB += idx * _outerStrideB[d];
                }
                body(offA, offB, r * inner, inner);
            }
        }, elementsPerItem: inner);
    }
}
