using System.Numerics;
using System.Runtime.Intrinsics;

namespace Hal.Backends.Cpu;

// Softmax, log-softmax and softmax cross-entropy over the last axis, forward and backward.
// Legend: N rows (all axes but the last), C the last axis (V for cross-entropy logits).
// Each row: max (so exp never overflows), Σ exp(x − max) in several lanes, then one scaling pass.
internal sealed partial class CpuKernels
{
    public void Softmax(Tensor x, Tensor y)
    {
        if (x.DType.Is16Bit())
        {
            ViaF32Rows([], [x, y], [false, true], RowsCols(x).Rows, (_, r) => Softmax(r[0], r[1]));
        }
        else if (x.DType == DType.F64)
        {
            SoftmaxRows<double>(x, y, log: false);
        }
        else
        {
            SoftmaxRows<float>(x, y, log: false);
        }
    }

    public void LogSoftmax(Tensor x, Tensor y)
    {
        if (x.DType.Is16Bit())
        {
            ViaF32Rows([], [x, y], [false, true], RowsCols(x).Rows, (_, r) => LogSoftmax(r[0], r[1]));
        }
        else if (x.DType == DType.F64)
        {
            SoftmaxRows<double>(x, y, log: true);
        }
        else
        {
            SoftmaxRows<float>(x, y, log: true);
        }
    }

    public void SoftmaxBackward(Tensor y, Tensor dy, Tensor dx)
    {
        if (y.DType.Is16Bit())
        {
            ViaF32Rows([], [y, dy, dx], [false, false, true], RowsCols(y).Rows, (_, r) => SoftmaxBackward(r[0], r[1], r[2]));
        }
        else if (y.DType == DType.F64)
        {
            SoftmaxBackwardRows<double>(y, dy, dx, log: false);
        }
        else
        {
            SoftmaxBackwardRows<float>(y, dy, dx, log: false);
        }
    }

    public void LogSoftmaxBackward(Tensor y, Tensor dy, Tensor dx)
    {
        if (y.DType.Is16Bit())
        {
            ViaF32Rows([], [y, dy, dx], [false, false, true], RowsCols(y).Rows, (_, r) => LogSoftmaxBackward(r[0], r[1], r[2]));
        }
        else if (y.DType == DType.F64)
        {
            SoftmaxBackwardRows<double>(y, dy, dx, log: true);
        }
        else
        {
            SoftmaxBackwardRows<float>(y, dy, dx, log: true);
        }
    }

    public void CrossEntropy(Tensor logits, Tensor targets, Tensor losses, Tensor lse)
    {
        CheckIndices("cross-entropy", targets, RowsCols(logits).Cols, negativeIgnored: true);
        if (logits.DType.Is16Bit())
        {
            ViaF32Rows([], [logits, targets, losses, lse], [false, false, true, true], RowsCols(logits).Rows, (_, r) => CrossEntropy(r[0], r[1], r[2], r[3]));
        }
        else if (logits.DType == DType.F64)
        {
            CrossEntropyRows<double>(logits, targets, losses, lse);
        }
        else
        {
            CrossEntropyRows<float>(logits, targets, losses, lse);
        }
    }

    public void CrossEntropyBackward(Tensor logits, Tensor targets, Tensor lse, Tensor dlosses, Tensor dlogits)
    {
        CheckIndices("cross-entropy-backward", targets, RowsCols(logits).Cols, negativeIgnored: true);
        if (logits.DType.Is16Bit())
        {
            ViaF32Rows([], [logits, targets, lse, dlosses, dlogits], [false, false, false, false, true], RowsCols(logits).Rows, (_, r) => CrossEntropyBackward(r[0], r[1], r[2], r[3], r[4]));
        }
        else if (logits.DType == DType.F64)
        {
            CrossEntropyBackwardRows<double>(logits, targets, lse, dlosses, dlogits);
        }
        else
        {
            CrossEntropyBackwardRows<float>(logits, targets, lse, dlosses, dlogits);
        }
    }

    private unsafe void SoftmaxRows<T>(Tensor x, Tensor y, bool log)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var (rows, c) = RowsCols(x);
        nint px = (nint)Ptr(x), py = (nint)Ptr(y);
        ParallelFor(rows, c, (start, end) =>
        {
            for (long r = start; r < end; r++)
            {
                T* xr = (T*)px + (r * c);
                T* yr = (T*)py + (r * c);
                T max = CpuRowMath.Max(xr, c);
                if (log)
                {
                    T sum = CpuRowMath.ExpShiftSum<T>(xr, max, null, c);
                    CpuRowMath.AddScalar(xr, -(max + T.Log(sum)), yr, c);
                }
                else
                {
                    T sum = CpuRowMath.ExpShiftSum(xr, max, yr, c);
                    CpuRowMath.Scale(yr, T.One / sum, yr, c);
                }
            }
        });
    }

    private unsafe void SoftmaxBackwardRows<T>(Tensor y, Tensor dy, Tensor dx, bool log)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var (rows, c) = RowsCols(y);
        nint py = (nint)Ptr(y), pdy = (nint)Ptr(dy), pdx = (nint)Ptr(dx);
        ParallelFor(rows, c, (start, end) =>
        {
            for (long r = start; r < end; r++)
            {
                T* yr = (T*)py + (r * c);
                T* dyr = (T*)pdy + (r * c);
                T* dxr = (T*)pdx + (r * c);
                if (log)
                {
                    CpuRowMath.SubExpScaled(yr, dyr, CpuRowMath.Sum(dyr, c), dxr, c);
                }
                else
                {
                    CpuRowMath.MulShifted(yr, dyr, CpuRowMath.Dot(dyr, yr, c), dxr, c);
                }
            }
        });
    }

    private unsafe void CrossEntropyRows<T>(Tensor logits, Tensor targets, Tensor losses, Tensor lse)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var (rows, v) = RowsCols(logits);
        nint px = (nint)Ptr(logits), pl = (nint)Ptr(losses), pz = (nint)Ptr(lse);
        ParallelFor(rows, v, (start, end) =>
        {
            for (long r = start; r < end; r++)
            {
                T* xr = (T*)px + (r * v);
                T logSumExp = RowLogSumExp(xr, v);
                long target = ReadIndex(targets, r);
                ((float*)pz)[r] = float.CreateTruncating(logSumExp);
                ((float*)pl)[r] = target < 0 ? 0f : float.CreateTruncating(logSumExp - xr[target]);
            }
        });
    }

    private unsafe void CrossEntropyBackwardRows<T>(Tensor logits, Tensor targets, Tensor lse, Tensor dlosses, Tensor dlogits)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var (rows, v) = RowsCols(logits);
        nint px = (nint)Ptr(logits), pz = (nint)Ptr(lse), pdl = (nint)Ptr(dlosses), pd = (nint)Ptr(dlogits);
        ParallelFor(rows, v, (start, end) =>
        {
            for (long r = start; r < end; r++)
            {
                T* xr = (T*)px + (r * v);
                T* dr = (T*)pd + (r * v);
                long target = ReadIndex(targets, r);
                if (target < 0)
                {
                    new Span<T>(dr, v).Clear();
                    continue;
                }
                // The saved lse is F32; an F64 row recomputes it so its gradient keeps F64 accuracy.
                T logSumExp = typeof(T) == typeof(double) ? RowLogSumExp(xr, v) : T.CreateTruncating(((float*)pz)[r]);
                T g = T.CreateTruncating(((float*)pdl)[r]);
                ExpShiftScale(xr, logSumExp, g, dr, v);
                dr[target] -= g;
            }
        });
    }

    /// <summary>
    /// y = exp(x − shift) · g in one pass over the row (the vocabulary row of the LM head is 200 KB: a second pass
    /// over y cost as much as the first). Rounds exactly as exp then scale: the exp result is rounded, then the product.
    /// </summary>
    private static unsafe void ExpShiftScale<T>(T* x, T shift, T g, T* y, int n)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int i = 0;
        if (typeof(T) == typeof(float) && Vector512.IsHardwareAccelerated)
        {
            var vs = Vector512.Create(float.CreateTruncating(shift));
            var vg = Vector512.Create(float.CreateTruncating(g));
            float* xf = (float*)x, yf = (float*)y;
            for (; i <= n - 16; i += 16)
            {
                (CpuExp.Exp(Vector512.Load(xf + i) - vs) * vg).Store(yf + i);
            }
        }
        if (typeof(T) == typeof(float) && Vector256.IsHardwareAccelerated)
        {
            var vs = Vector256.Create(shift);
            var vg = Vector256.Create(g);
            for (; i <= n - Vector256<T>.Count; i += Vector256<T>.Count)
            {
                (CpuExp.Exp(Vector256.Load(x + i) - vs) * vg).Store(y + i);
            }
        }
        for (; i < n; i++)
        {
            y[i] = T.Exp(x[i] - shift) * g;
        }
    }

    /// <summary>log Σ exp(x) of one row, stable: max + log Σ exp(x − max).</summary>
    private static unsafe T RowLogSumExp<T>(T* x, int n)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        T max = CpuRowMath.Max(x, n);
        if (T.IsNegativeInfinity(max))
        {
            return max;
        }
        return max + T.Log(CpuRowMath.ExpShiftSum<T>(x, max, null, n));
    }
}
