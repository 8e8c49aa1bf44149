using ILGPU;

namespace Hal.Backends.Cuda.Kernels;

/// <summary>
/// Element-wise fused kernels: activation backward, embedding (and its backward through a
/// host-built row list), rotary embedding, column sums for norm weight gradients, AdamW.
/// Legend: N rows, C columns, V vocabulary, x [B, T, H, D] for rotary with cos/sin [Tmax, D/2].
/// </summary>
internal static class FusedKernels
{
    private const double SqrtTwoOverPi = 0.79788456080286536;
    private const double OneOverSqrtTwoPi = 0.3989422804014327;

    /// <summary>dx = dy · op'(x).</summary>
    public static void ActivationBackward(Index1D index, DeviceTensor x, DeviceTensor dy, DeviceTensor dx, long start, int op)
    {
        long i = start + index;
        double v = DeviceMath.Load(x, i);
        double g = DeviceMath.Load(dy, i);
        double d;
        if (double.IsNaN(v))
        {
            // NaN in, NaN out, for every activation (Relu included: its derivative at NaN is not 0).
            d = v;
        }
        else if (double.IsInfinity(v) && op != (int)UnaryOp.Tanh && op != (int)UnaryOp.Sigmoid)
        {
            // Relu, GELU and SiLU tend to x at +Inf and to 0 at −Inf, so their slopes are 1 and 0 there; the
            // formulas below would form Inf·0.
            d = v > 0 ? 1 : 0;
        }
        else if (op == (int)UnaryOp.Relu)
        {
            d = v > 0 ? 1 : 0;
        }
        else if (op == (int)UnaryOp.Tanh)
        {
            double t = Math.Tanh(v);
            d = 1 - (t * t);
        }
        else if (op == (int)UnaryOp.Sigmoid)
        {
            double s = DeviceMath.Sigmoid(v);
            d = s * (1 - s);
        }
        else if (op == (int)UnaryOp.GeluErf)
        {
            d = DeviceMath.NormalCdf(v) + (v * OneOverSqrtTwoPi * Math.Exp(-0.5 * v * v));
        }
        else if (op == (int)UnaryOp.GeluTanh)
        {
            double u = SqrtTwoOverPi * (v + (0.044715 * v * v * v));
            double t = Math.Tanh(u);
            // Once tanh saturates, sech² = 1 − t² is exactly 0 and the second term is 0 (not 0·Inf for huge |x|).
            double sech2 = 1 - (t * t);
            d = (0.5 * (1 + t)) + (sech2 == 0 ? 0 : 0.5 * v * sech2 * SqrtTwoOverPi * (1 + (3 * 0.044715 * v * v)));
        }
        else
        {
            double s = DeviceMath.Sigmoid(v);
            d = s * (1 + (v * (1 - s)));
        }
        DeviceMath.Store(dx, i, g * d);
    }

    /// <summary>y[n, c] = weight[ids[n], c].</summary>
    public static void Embedding(Index1D index, DeviceTensor weight, DeviceTensor ids, DeviceTensor y, long start, long cols)
    {
        long e = start + index;
        long id = DeviceMath.LoadInt(ids, e / cols);
        DeviceMath.Store(y, e, DeviceMath.Load(weight, (id * cols) + (e % cols)));
    }

    /// <summary>
    /// dweight[v, c] = Σ dy[n, c] over the rows n listed for v: rows[rowStart[v] .. rowStart[v + 1]) (ascending n,
    /// built on the host), so each output is one thread's ordered sum — deterministic, no atomics.
    /// </summary>
    public static void EmbeddingBackward(Index1D index, DeviceTensor dy, DeviceTensor rowStart, DeviceTensor rows, DeviceTensor dweight, long start, long cols)
    {
        long e = start + index;
        long v = e / cols;
        long c = e % cols;
        long from = DeviceMath.LoadInt(rowStart, v);
        long to = DeviceMath.LoadInt(rowStart, v + 1);
        double acc = 0;
        for (long k = from; k < to; k++)
        {
            acc += DeviceMath.Load(dy, (DeviceMath.LoadInt(rows, k) * cols) + c);
        }
        DeviceMath.Store(dweight, e, acc);
    }

    /// <summary>Rotate-half rotary embedding of x [B, T, H, D] at positions offset + t; sinSign −1 gives the backward.</summary>
    public static void Rotary(Index1D index, DeviceTensor x, DeviceTensor cos, DeviceTensor sin, DeviceTensor y, long start, long seqLen, long heads, long headDim, long positionOffset, double sinSign)
    {
        long e = start + index;
        long d = e % headDim;
        long t = e / headDim / heads % seqLen;
        long half = headDim / 2;
        long rowBase = e - d;
        long pos = positionOffset + t;
        long j = d < half ? d : d - half;
        double cv = DeviceMath.Load(cos, (pos * half) + j);
        double sv = sinSign * DeviceMath.Load(sin, (pos * half) + j);
        double value = d < half
            ? (DeviceMath.Load(x, e) * cv) - (DeviceMath.Load(x, rowBase + d + half) * sv)
            : (DeviceMath.Load(x, e) * cv) + (DeviceMath.Load(x, rowBase + j) * sv);
        DeviceMath.Store(y, e, value);
    }

    /// <summary>
    /// Weight gradients of the norms, one thread per column c: dweight[c] = Σₙ dy[n, c]·x̂[n, c] (x̂ = (x − mean)·rstd,
    /// mean 0 for RMS norm) and, when wanted, dbias[c] = Σₙ dy[n, c].
    /// </summary>
    public static void NormWeightGrad(Index1D index, DeviceTensor dy, DeviceTensor x, DeviceTensor mean, DeviceTensor rstd, DeviceTensor dweight, DeviceTensor dbias, long start, long rows, long cols, int rms, int hasBias)
    {
        long c = start + index;
        double dw = 0, db = 0;
        for (long n = 0; n < rows; n++)
        {
            double g = DeviceMath.Load(dy, (n * cols) + c);
            double mu = rms != 0 ? 0 : DeviceMath.Load(mean, n);
            dw += g * (DeviceMath.Load(x, (n * cols) + c) - mu) * DeviceMath.Load(rstd, n);
            db += g;
        }
        DeviceMath.Store(dweight, c, dw);
        if (hasBias != 0)
        {
            DeviceMath.Store(dbias, c, db);
        }
    }

    /// <summary>AdamW hyper-parameters with the step's bias corrections.</summary>
    internal struct AdamArgs
    {
        public double LearningRate, Beta1, Beta2, Epsilon, WeightDecay, Correction1, Correction2;
    }

    /// <summary>One AdamW element: m, v updated; p −= lr·(m̂/(√v̂ + eps) + wd·p), all in double, one rounding per store.</summary>
    public static void AdamW(Index1D index, DeviceTensor param, DeviceTensor grad, DeviceTensor m, DeviceTensor v, long start, AdamArgs a)
    {
        long i = start + index;
        double g = DeviceMath.Load(grad, i);
        double p = DeviceMath.Load(param, i);
        double mi = (a.Beta1 * DeviceMath.Load(m, i)) + ((1 - a.Beta1) * g);
        double vi = (a.Beta2 * DeviceMath.Load(v, i)) + ((1 - a.Beta2) * g * g);
        double mHat = mi / a.Correction1;
        double vHat = vi / a.Correction2;
        double update = (mHat / (Math.Sqrt(vHat) + a.Epsilon)) + (a.WeightDecay * p);
        DeviceMath.Store(m, i, mi);
        DeviceMath.Store(v, i, vi);
        DeviceMath.Store(param, i, p - (a.LearningRate * update));
    }
}
