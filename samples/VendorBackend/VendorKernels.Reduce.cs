using Hal;

namespace Hal.Samples.VendorBackend;

// Shapes: a reduction sees x as [outer, n, inner] around its axis and writes y [outer, 1, inner];
// a GEMM sees a [batch, M, K] (or [batch, K, M] transposed), b [batch, K, N] (or [batch, N, K]), c [batch, M, N].
internal sealed partial class VendorKernels
{
    /// <inheritdoc />
    public void Reduce(ReduceOp op, Tensor x, int axis, Tensor y)
    {
        var xs = new View(x);
        var ys = new View(y);
        var (outer, n, inner) = Layout.Around(x.Shape, axis);
        bool isFloat = x.DType.IsFloatingPoint();
        for (long o = 0; o < outer; o++)
        {
            for (long r = 0; r < inner; r++)
            {
                long first = (o * n * inner) + r;
                long at = (o * inner) + r;
                if (isFloat)
                {
                    ys.Set(at, ReduceFloat(op, xs, first, n, inner));
                }
                else if (op == ReduceOp.Sum)
                {
                    long sum = 0;
                    for (long k = 0; k < n; k++)
                    {
                        sum = unchecked(sum + xs.GetInt(first + (k * inner)));
                    }
                    ys.SetWrapped(at, sum);
                }
                else
                {
                    // Max/Min of an empty axis: the dtype's extreme, as −Inf/+Inf saturate to it.
                    long best = op == ReduceOp.Max ? long.MinValue : long.MaxValue;
                    for (long k = 0; k < n; k++)
                    {
                        long v = xs.GetInt(first + (k * inner));
                        best = op == ReduceOp.Max ? Math.Max(best, v) : Math.Min(best, v);
                    }
                    ys.SetSaturated(at, best);
                }
            }
        }
    }

    private static double ReduceFloat(ReduceOp op, View xs, long first, int n, long inner)
    {
        double acc = op switch
        {
            ReduceOp.Max => double.NegativeInfinity,
            ReduceOp.Min => double.PositiveInfinity,
            _ => 0,
        };
        for (long k = 0; k < n; k++)
        {
            double v = xs.Get(first + (k * inner));
            acc = op switch
            {
                ReduceOp.Max => double.IsNaN(v) || double.IsNaN(acc) ? double.NaN : Math.Max(acc, v),
                ReduceOp.Min => double.IsNaN(v) || double.IsNaN(acc) ? double.NaN : Math.Min(acc, v),
                _ => acc + v,
            };
        }
        // Mean of an empty axis is 0/0 = NaN, as the contract says.
        return op == ReduceOp.Mean ? acc / n : acc;
    }

    /// <inheritdoc />
    public void ArgMax(Tensor x, int axis, Tensor indices)
    {
        var xs = new View(x);
        var ids = new View(indices);
        var (outer, n, inner) = Layout.Around(x.Shape, axis);
        bool isFloat = x.DType.IsFloatingPoint();
        for (long o = 0; o < outer; o++)
        {
            for (long r = 0; r < inner; r++)
            {
                long first = (o * n * inner) + r;
                long best = 0;
                for (long k = 1; k < n; k++)
                {
                    long at = first + (k * inner);
                    long bestAt = first + (best * inner);
                    bool better = isFloat
                        ? !double.IsNaN(xs.Get(bestAt)) && (double.IsNaN(xs.Get(at)) || xs.Get(at) > xs.Get(bestAt))
                        : xs.GetInt(at) > xs.GetInt(bestAt);
                    if (better)
                    {
                        best = k;
                    }
                }
                ids.SetWrapped((o * inner) + r, best);
            }
        }
    }

    /// <inheritdoc />
    public void Gemm(Tensor a, Tensor b, Tensor c, bool transA, bool transB, double alpha, double beta, Tensor? bias)
    {
        var av = new View(a);
        var bv = new View(b);
        var cv = new View(c);
        View? biasView = bias is null ? null : new View(bias);
        int m = c.Shape[^2];
        int n = c.Shape[^1];
        int k = transA ? a.Shape[^2] : a.Shape[^1];
        long batch = c.Shape.Product(0, c.Rank - 2);
        long aBatch = a.Shape.Product(0, a.Rank - 2);
        long bBatch = b.Shape.Product(0, b.Rank - 2);
        for (long t = 0; t < batch; t++)
        {
            long aBase = (aBatch == 1 ? 0 : t) * m * k;
            long bBase = (bBatch == 1 ? 0 : t) * k * n;
            long cBase = t * m * n;
            for (int i = 0; i < m; i++)
            {
                for (int j = 0; j < n; j++)
                {
                    double dot = 0;
                    for (int p = 0; p < k; p++)
                    {
                        double aij = av.Get(aBase + (transA ? ((long)p * m) + i : ((long)i * k) + p));
                        double bij = bv.Get(bBase + (transB ? ((long)j * k) + p : ((long)p * n) + j));
                        dot += aij * bij;
                    }
                    long at = cBase + ((long)i * n) + j;
                    // beta = 0 ignores c's old contents, NaN included.
                    double value = (alpha * dot) + (beta == 0 ? 0 : beta * cv.Get(at));
                    if (biasView is { } bs)
                    {
                        value += bs.Get(j);
                    }
                    cv.Set(at, value);
                }
            }
        }
    }
}
