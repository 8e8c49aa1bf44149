using ILGPU;

namespace Hal.Backends.Cuda.Kernels;

/// <summary>
/// Kernels with one thread group per row (softmax family, layer/RMS norm, cross-entropy): the group's threads stride
/// over the row's C columns and combine partial results in shared memory, in double.
/// Legend: N rows (grid), C columns (the last axis), G threads per group (a power of two ≤ <see cref="MaxGroup"/>).
/// </summary>
internal static class RowKernels
{
    /// <summary>Largest group size the shared reduction buffers hold.</summary>
    public const int MaxGroup = 256;

    /// <summary>Sum of every thread's <paramref name="value"/>, returned to all threads.</summary>
    private static double BlockSum(ArrayView<double> shared, double value)
    {
        int t = Group.IdxX;
        shared[t] = value;
        Group.Barrier();
        for (int s = Group.DimX / 2; s > 0; s >>= 1)
        {
            if (t < s)
            {
                shared[t] += shared[t + s];
            }
            Group.Barrier();
        }
        double total = shared[0];
        Group.Barrier();
        return total;
    }

    /// <summary>Maximum over the group; a NaN anywhere makes the result NaN.</summary>
    private static double BlockMax(ArrayView<double> shared, double value)
    {
        int t = Group.IdxX;
        shared[t] = value;
        Group.Barrier();
        for (int s = Group.DimX / 2; s > 0; s >>= 1)
        {
            if (t < s)
            {
                shared[t] = NaNMax(shared[t], shared[t + s]);
            }
            Group.Barrier();
        }
        double total = shared[0];
        Group.Barrier();
        return total;
    }

    private static double NaNMax(double a, double b) => double.IsNaN(a) || double.IsNaN(b) ? double.NaN : a > b ? a : b;

    /// <summary>y = softmax(x) (log = 0) or log_softmax(x) (log = 1) over each row.</summary>
    public static void Softmax(DeviceTensor x, DeviceTensor y, long cols, int log)
    {
        var shared = SharedMemory.Allocate<double>(MaxGroup);
        long row = Grid.IdxX;
        long first = row * cols;
        double m = double.NegativeInfinity;
        for (long c = Group.IdxX; c < cols; c += Group.DimX)
        {
            m = NaNMax(m, DeviceMath.Load(x, first + c));
        }
        m = BlockMax(shared, m);
        double s = 0;
        for (long c = Group.IdxX; c < cols; c += Group.DimX)
        {
            s += Math.Exp(DeviceMath.Load(x, first + c) - m);
        }
        s = BlockSum(shared, s);
        double logSum = Math.Log(s);
        for (long c = Group.IdxX; c < cols; c += Group.DimX)
        {
            double shifted = DeviceMath.Load(x, first + c) - m;
            DeviceMath.Store(y, first + c, log != 0 ? shifted - logSum : Math.Exp(shifted) / s);
        }
    }

    /// <summary>Softmax backward dx = y ⊙ (dy − Σ dy ⊙ y) (log = 0) or log-softmax backward dx = dy − exp(y) · Σ dy (log = 1).</summary>
    public static void SoftmaxBackward(DeviceTensor y, DeviceTensor dy, DeviceTensor dx, long cols, int log)
    {
        var shared = SharedMemory.Allocate<double>(MaxGroup);
        long first = Grid.IdxX * cols;
        double dot = 0;
        for (long c = Group.IdxX; c < cols; c += Group.DimX)
        {
            double g = DeviceMath.Load(dy, first + c);
            dot += log != 0 ? g : g * DeviceMath.Load(y, first + c);
        }
        dot = BlockSum(shared, dot);
        for (long c = Group.IdxX; c < cols; c += Group.DimX)
        {
            double yv = DeviceMath.Load(y, first + c);
            double g = DeviceMath.Load(dy, first + c);
            DeviceMath.Store(dx, first + c, log != 0 ? g - (Math.Exp(yv) * dot) : yv * (g - dot));
        }
    }

    /// <summary>Layer norm (rms = 0) or RMS norm (rms = 1) of each row; writes y, rstd, and mean for layer norm.</summary>
    public static void Norm(DeviceTensor x, DeviceTensor weight, DeviceTensor bias, int hasBias, double eps, DeviceTensor y, DeviceTensor mean, DeviceTensor rstd, long cols, int rms)
    {
        var shared = SharedMemory.Allocate<double>(MaxGroup);
        long row = Grid.IdxX;
        long first = row * cols;
        double mu = 0;
        if (rms == 0)
        {
            double s = 0;
            for (long c = Group.IdxX; c < cols; c += Group.DimX)
            {
                s += DeviceMath.Load(x, first + c);
            }
            mu = BlockSum(shared, s) / cols;
        }
        double sq = 0;
        for (long c = Group.IdxX; c < cols; c += Group.DimX)
        {
            double d = DeviceMath.Load(x, first + c) - mu;
            sq += d * d;
        }
        double variance = BlockSum(shared, sq) / cols;
        double r = 1.0 / Math.Sqrt(variance + eps);
        for (long c = Group.IdxX; c < cols; c += Group.DimX)
        {
            double v = (DeviceMath.Load(x, first + c) - mu) * r * DeviceMath.Load(weight, c);
            if (hasBias != 0)
            {
                v += DeviceMath.Load(bias, c);
            }
            DeviceMath.Store(y, first + c, v);
        }
        if (Group.IdxX == 0)
        {
            DeviceMath.Store(rstd, row, r);
            if (rms == 0)
            {
                DeviceMath.Store(mean, row, mu);
            }
        }
    }

    /// <summary>
    /// dx of layer norm (rms = 0): rstd·(dŷ − mean(dŷ) − x̂·mean(dŷ·x̂)) with dŷ = dy·w, x̂ = (x − mean)·rstd;
    /// of RMS norm (rms = 1): rstd·(dŷ − x̂·mean(dŷ·x̂)) with x̂ = x·rstd.
    /// </summary>
    public static void NormBackward(DeviceTensor dy, DeviceTensor x, DeviceTensor weight, DeviceTensor mean, DeviceTensor rstd, DeviceTensor dx, long cols, int rms)
    {
        var shared = SharedMemory.Allocate<double>(MaxGroup);
        long row = Grid.IdxX;
        long first = row * cols;
        double mu = rms != 0 ? 0 : DeviceMath.Load(mean, row);
        double r = DeviceMath.Load(rstd, row);
        double sumG = 0, sumGx = 0;
        for (long c = Group.IdxX; c < cols; c += Group.DimX)
        {
            double g = DeviceMath.Load(dy, first + c) * DeviceMath.Load(weight, c);
            double xh = (DeviceMath.Load(x, first + c) - mu) * r;
            sumG += g;
            sumGx += g * xh;
        }
        double meanG = rms != 0 ? 0 : BlockSum(shared, sumG) / cols;
        double meanGx = BlockSum(shared, sumGx) / cols;
        for (long c = Group.IdxX; c < cols; c += Group.DimX)
        {
            double g = DeviceMath.Load(dy, first + c) * DeviceMath.Load(weight, c);
            double xh = (DeviceMath.Load(x, first + c) - mu) * r;
            DeviceMath.Store(dx, first + c, r * (g - meanG - (xh * meanGx)));
        }
    }

    /// <summary>losses[n] = lse − logits[target] (0 for a negative target), lse[n] = logsumexp of the row.</summary>
    public static void CrossEntropy(DeviceTensor logits, DeviceTensor targets, DeviceTensor losses, DeviceTensor lse, long cols)
    {
        var shared = SharedMemory.Allocate<double>(MaxGroup);
        long row = Grid.IdxX;
        long first = row * cols;
        double m = double.NegativeInfinity;
        for (long c = Group.IdxX; c < cols; c += Group.DimX)
        {
            m = NaNMax(m, DeviceMath.Load(logits, first + c));
        }
        m = BlockMax(shared, m);
        // A row of −Inf logits has max −Inf; shifting by 0 instead gives Σ = 0 and lse = log 0 = −Inf, not −Inf − (−Inf).
        m = double.IsNegativeInfinity(m) ? 0 : m;
        double s = 0;
        for (long c = Group.IdxX; c < cols; c += Group.DimX)
        {
            s += Math.Exp(DeviceMath.Load(logits, first + c) - m);
        }
        s = BlockSum(shared, s);
        if (Group.IdxX == 0)
        {
            double l = m + Math.Log(s);
            long target = DeviceMath.LoadInt(targets, row);
            DeviceMath.Store(lse, row, l);
            DeviceMath.Store(losses, row, target < 0 ? 0.0 : l - DeviceMath.Load(logits, first + target));
        }
    }

    /// <summary>
    /// dlogits[n, c] = (softmax(logits)[c] − [c = target]) · dlosses[n], zero rows for negative targets. The row's
    /// log-sum-exp is recomputed in double rather than read from the F32 lse, so F64 logits keep F64 accuracy.
    /// </summary>
    public static void CrossEntropyBackward(DeviceTensor logits, DeviceTensor targets, DeviceTensor dlosses, DeviceTensor dlogits, long cols)
    {
        var shared = SharedMemory.Allocate<double>(MaxGroup);
        long row = Grid.IdxX;
        long first = row * cols;
        long target = DeviceMath.LoadInt(targets, row);
        double m = double.NegativeInfinity;
        for (long c = Group.IdxX; c < cols; c += Group.DimX)
        {
            m = NaNMax(m, DeviceMath.Load(logits, first + c));
        }
        m = BlockMax(shared, m);
        double s = 0;
        for (long c = Group.IdxX; c < cols; c += Group.DimX)
        {
            s += Math.Exp(DeviceMath.Load(logits, first + c) - m);
        }
        s = BlockSum(shared, s);
        double scale = target < 0 ? 0 : DeviceMath.Load(dlosses, row);
        for (long c = Group.IdxX; c < cols; c += Group.DimX)
        {
            double p = Math.Exp(DeviceMath.Load(logits, first + c) - m) / s;
            DeviceMath.Store(dlogits, first + c, target < 0 ? 0.0 : (p - (c == target ? 1.0 : 0.0)) * scale);
        }
    }
}
