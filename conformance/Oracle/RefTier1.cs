using Hal.Conformance.Kernels;

namespace Hal.Conformance.Oracle;

/// <summary>
/// fp64 definitions of the tier-1 kernels that move or combine elements: broadcasting binary ops, reductions,
/// argmax, the index ops and casts, as plain loops over row-major index arithmetic. Inputs are the exact values
/// the device holds (as doubles). Shape legend: outer × axis × inner, the row-major split of a shape at an axis.
/// </summary>
public static class RefTier1
{
    /// <summary>(outer, length, inner) of <paramref name="shape"/> split at <paramref name="axis"/>.</summary>
    public static (long Outer, int Length, long Inner) Split(Shape shape, int axis)
    {
        ArgumentNullException.ThrowIfNull(shape);
        long outer = 1;
        for (int d = 0; d < axis; d++)
        {
            outer *= shape[d];
        }
        long inner = 1;
        for (int d = axis + 1; d < shape.Rank; d++)
        {
            inner *= shape[d];
        }
        return (outer, shape[axis], inner);
    }

    /// <summary>NumPy broadcast shape of a and b (dimensions aligned from the right; 1 stretches), or null.</summary>
    public static int[]? BroadcastShape(int[] a, int[] b)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        int rank = Math.Max(a.Length, b.Length);
        var y = new int[rank];
        for (int i = 0; i < rank; i++)
        {
            int da = i < rank - a.Length ? 1 : a[i - (rank - a.Length)];
            int db = i < rank - b.Length ? 1 : b[i - (rank - b.Length)];
            if (da != db && da != 1 && db != 1)
            {
                return null;
            }
            y[i] = da == 1 ? db : da;
        }
        return y;
    }

    /// <summary>Flat index into an operand of <paramref name="dims"/> for the output coordinate <paramref name="coord"/> (broadcast dims read index 0).</summary>
    private static long SourceIndex(int[] dims, int[] coord)
    {
        int shift = coord.Length - dims.Length;
        long index = 0;
        for (int d = 0; d < dims.Length; d++)
        {
            int c = dims[d] == 1 ? 0 : coord[d + shift];
            index = index * dims[d] + c;
        }
        return index;
    }

    /// <summary>y = f(a, b) with NumPy broadcasting, y in row-major order of the broadcast shape.</summary>
    public static double[] Broadcast(double[] a, int[] aDims, double[] b, int[] bDims, Func<double, double, double> f)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        ArgumentNullException.ThrowIfNull(f);
        int[] yDims = BroadcastShape(aDims, bDims) ?? throw new ArgumentException("shapes do not broadcast");
        long count = 1;
        foreach (int d in yDims)
        {
            count *= d;
        }
        var y = new double[count];
        var coord = new int[yDims.Length];
        for (long i = 0; i < count; i++)
        {
            // coord = the row-major coordinate of flat index i.
            long rest = i;
            for (int d = yDims.Length - 1; d >= 0; d--)
            {
                coord[d] = (int)(rest % yDims[d]);
                rest /= yDims[d];
            }
            y[i] = f(a[SourceIndex(aDims, coord)], b[SourceIndex(bDims, coord)]);
        }
        return y;
    }

    /// <summary>
    /// The contract's binary op on values of <paramref name="dtype"/>: floats per <see cref="RefScalar.Binary"/>;
    /// integers exactly in 64-bit integer arithmetic, Div truncating toward zero and x/0 = 0.
    /// </summary>
    public static double Binary(BinaryOp op, DType dtype, double a, double b)
    {
        if (dtype.IsFloatingPoint())
        {
            return RefScalar.Binary(op, a, b);
        }
        long x = (long)a, z = (long)b;
        return op switch
        {
            BinaryOp.Add => x + z,
            BinaryOp.Sub => x - z,
            BinaryOp.Mul => x * z,
            BinaryOp.Div => z == 0 ? 0 : x / z,
            BinaryOp.Max => Math.Max(x, z),
            BinaryOp.Min => Math.Min(x, z),
            _ => throw new ArgumentOutOfRangeException(nameof(op), op, "not an integer op"),
        };
    }

    /// <summary>
    /// Reduce along <paramref name="axis"/>: Sum (0 when empty), Mean (NaN when empty), Max/Min propagating NaN
    /// (−Inf/+Inf when empty). <paramref name="sumAbs"/> gets Σ|x| per output (the γ term's scale).
    /// </summary>
    public static double[] Reduce(ReduceOp op, double[] x, Shape shape, int axis, out double[] sumAbs)
    {
        ArgumentNullException.ThrowIfNull(x);
        var (outer, length, inner) = Split(shape, axis);
        var y = new double[outer * inner];
        sumAbs = new double[outer * inner];
        for (long o = 0; o < outer; o++)
        {
            for (long j = 0; j < inner; j++)
            {
                double acc = op switch { ReduceOp.Max => double.NegativeInfinity, ReduceOp.Min => double.PositiveInfinity, _ => 0 };
                double abs = 0;
                bool nan = false;
                for (int k = 0; k < length; k++)
                {
                    double v = x[(o * length + k) * inner + j];
                    abs += Math.Abs(v);
                    nan |= double.IsNaN(v);
                    acc = op switch
                    {
                        ReduceOp.Max => Math.Max(acc, v),
                        ReduceOp.Min => Math.Min(acc, v),
                        _ => acc + v,
                    };
                }
                if (op == ReduceOp.Mean)
                {
                    acc = length == 0 ? double.NaN : acc / length;
                    abs = length == 0 ? 0 : abs / length;
                }
                y[o * inner + j] = nan ? double.NaN : acc;
                sumAbs[o * inner + j] = abs;
            }
        }
        return y;
    }

    /// <summary>Index of the first maximum along the axis; the first NaN wins over every number.</summary>
    public static double[] ArgMax(double[] x, Shape shape, int axis)
    {
        ArgumentNullException.ThrowIfNull(x);
        var (outer, length, inner) = Split(shape, axis);
        var y = new double[outer * inner];
        for (long o = 0; o < outer; o++)
        {
            for (long j = 0; j < inner; j++)
            {
                int best = 0;
                double bestValue = x[o * length * inner + j];
                for (int k = 1; k < length && !double.IsNaN(bestValue); k++)
                {
                    double v = x[(o * length + k) * inner + j];
                    if (double.IsNaN(v) || v > bestValue)
                    {
                        best = k;
                        bestValue = v;
                    }
                }
                y[o * inner + j] = best;
            }
        }
        return y;
    }

    /// <summary>dst = src.index_select(axis, index); dst's axis has index.Length entries.</summary>
    public static double[] IndexSelect(double[] src, Shape shape, int axis, long[] index)
    {
        ArgumentNullException.ThrowIfNull(src);
        ArgumentNullException.ThrowIfNull(index);
        var (outer, length, inner) = Split(shape, axis);
        var dst = new double[outer * index.Length * inner];
        for (long o = 0; o < outer; o++)
        {
            for (int i = 0; i < index.Length; i++)
            {
                for (long j = 0; j < inner; j++)
                {
                    dst[(o * index.Length + i) * inner + j] = src[(o * length + index[i]) * inner + j];
                }
            }
        }
        return dst;
    }

    /// <summary>
    /// dst.index_add_(axis, index, src) on a copy of <paramref name="dst"/>. <paramref name="scale"/> gets
    /// |dst initial| + Σ|added terms| per element, <paramref name="maxTerms"/> the most terms any element sums
    /// (its initial value included), for the γ bound.
    /// </summary>
    public static double[] IndexAdd(double[] dst, Shape dstShape, int axis, long[] index, double[] src, out double[] scale, out int maxTerms)
    {
        ArgumentNullException.ThrowIfNull(dst);
        ArgumentNullException.ThrowIfNull(index);
        ArgumentNullException.ThrowIfNull(src);
        var (outer, length, inner) = Split(dstShape, axis);
        var y = (double[])dst.Clone();
        scale = Array.ConvertAll(dst, Math.Abs);
        var terms = new int[dst.Length];
        for (long o = 0; o < outer; o++)
        {
            for (int i = 0; i < index.Length; i++)
            {
                for (long j = 0; j < inner; j++)
                {
                    long to = (o * length + index[i]) * inner + j;
                    double v = src[(o * index.Length + i) * inner + j];
                    y[to] += v;
                    scale[to] += Math.Abs(v);
                    terms[to]++;
                }
            }
        }
        maxTerms = terms.Length == 0 ? 1 : terms.Max() + 1;
        return y;
    }

    /// <summary>Row-major coordinates of every flat index of <paramref name="dims"/>, calling <paramref name="visit"/>(flat, coord).</summary>
    private static void ForEach(int[] dims, Action<long, int[]> visit)
    {
        long count = 1;
        foreach (int d in dims)
        {
            count *= d;
        }
        var coord = new int[dims.Length];
        for (long i = 0; i < count; i++)
        {
            long rest = i;
            for (int d = dims.Length - 1; d >= 0; d--)
            {
                coord[d] = (int)(rest % dims[d]);
                rest /= dims[d];
            }
            visit(i, coord);
        }
    }

    /// <summary>Flat row-major index of <paramref name="coord"/> in <paramref name="dims"/>, with the axis coordinate replaced.</summary>
    private static long FlatWith(int[] dims, int[] coord, int axis, long axisValue)
    {
        long index = 0;
        for (int d = 0; d < dims.Length; d++)
        {
            index = index * dims[d] + (d == axis ? axisValue : coord[d]);
        }
        return index;
    }

    /// <summary>dst = src.gather(axis, index): dst[c] = src[c with c[axis] = index[c]], dst of index's shape.</summary>
    public static double[] Gather(double[] src, Shape srcShape, int axis, long[] index, Shape indexShape)
    {
        ArgumentNullException.ThrowIfNull(src);
        ArgumentNullException.ThrowIfNull(index);
        ArgumentNullException.ThrowIfNull(srcShape);
        ArgumentNullException.ThrowIfNull(indexShape);
        int[] srcDims = srcShape.ToArray();
        var dst = new double[index.Length];
        ForEach(indexShape.ToArray(), (i, c) => dst[i] = src[FlatWith(srcDims, c, axis, index[i])]);
        return dst;
    }

    /// <summary>dst.scatter_add_(axis, index, src) on a copy of <paramref name="dst"/>; scale and maxTerms as <see cref="IndexAdd"/>.</summary>
    public static double[] ScatterAdd(double[] dst, Shape dstShape, int axis, long[] index, Shape indexShape, double[] src, out double[] scale, out int maxTerms)
    {
        ArgumentNullException.ThrowIfNull(dst);
        ArgumentNullException.ThrowIfNull(index);
        ArgumentNullException.ThrowIfNull(src);
        ArgumentNullException.ThrowIfNull(dstShape);
        ArgumentNullException.ThrowIfNull(indexShape);
        int[] dstDims = dstShape.ToArray();
        var y = (double[])dst.Clone();
        double[] s = Array.ConvertAll(dst, Math.Abs);
        var terms = new int[dst.Length];
        ForEach(indexShape.ToArray(), (i, c) =>
        {
            long to = FlatWith(dstDims, c, axis, index[i]);
            y[to] += src[i];
            s[to] += Math.Abs(src[i]);
            terms[to]++;
        });
        scale = s;
        maxTerms = terms.Length == 0 ? 1 : terms.Max() + 1;
        return y;
    }

    /// <summary>
    /// The contract's cast of a stored value to <paramref name="target"/>: floats round to nearest even with overflow
    /// to ±Inf; integers truncate toward zero and saturate, NaN → 0; Bool is (x ≠ 0); Bool sources are 0 or 1.
    /// (Values held by a double are exact for every source dtype except I64 beyond 2⁵³: use <see cref="CastInt64"/> for those.)
    /// </summary>
    public static double Cast(double value, DType target) => FloatFormat.Round(target, value);

    /// <summary>
    /// An I64 value cast to <paramref name="target"/> without passing through a double (which would round twice):
    /// float targets keep the top p bits of |v| and round the rest to nearest even with integer arithmetic.
    /// </summary>
    public static double CastInt64(long value, DType target)
    {
        if (!target.IsFloatingPoint())
        {
            if (target == DType.Bool)
            {
                return value != 0 ? 1 : 0;
            }
            var (min, max) = FloatFormat.IntegerRange(target);
            // Every integer range here but I64's own is exact in a double; I64 → I64 is the identity.
            return target == DType.I64 ? value : Math.Clamp(value, (long)min, (long)max);
        }
        int precision = target switch { DType.F64 => 53, DType.F32 => 24, DType.F16 => 11, _ => 8 };
        bool negative = value < 0;
        // |long.MinValue| = 2⁶³ fits in a ulong.
        ulong magnitude = negative ? (ulong)(-(value + 1)) + 1 : (ulong)value;
        int bits = 64 - System.Numerics.BitOperations.LeadingZeroCount(magnitude);
        if (bits > precision)
        {
            int drop = bits - precision;
            ulong kept = magnitude >> drop;
            ulong remainder = magnitude & ((1UL << drop) - 1);
            ulong half = 1UL << (drop - 1);
            if (remainder > half || (remainder == half && (kept & 1) == 1))
            {
                kept++;
            }
            // kept ≤ 2^precision, so the product is exact in a double; overflow past the format's range gives ±Inf.
            double rounded = Math.ScaleB(kept, drop);
            double signed = negative ? -rounded : rounded;
            return FloatFormat.Round(target, signed);
        }
        return FloatFormat.Round(target, negative ? -(double)magnitude : magnitude);
    }
}
