using System.Numerics;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Hal.Models.Optim;

// Shapes: every span is a flat fp32 run [n] of one optimizer-state chunk held in host memory (master weights,
// gradients, Adam moments or momentum buffers of the same n elements, element i of each belonging together).

/// <summary>
/// Optimizer updates on fp32 state chunks that live in host memory (ZeRO offload): the same float results as the
/// device-side update, so a job's loss curve does not depend on where a chunk was placed. SIMD over
/// <see cref="Vector{T}"/> of any width with a scalar tail that computes the same bits; spans of at least
/// <see cref="ParallelThresholdElements"/> elements are split over cores in fixed blocks whose boundaries do not
/// change any result.
/// </summary>
public static class HostOptimizer
{
    /// <summary>Spans at least this long are split over cores; shorter ones run on the calling thread.</summary>
    public const int ParallelThresholdElements = 256 * 1024;

    /// <summary>
    /// Elements per block (a multiple of every vector width): the unit of work of a parallel update and the unit whose
    /// partial sum <see cref="SumOfSquares"/> adds in block order, parallel or not, so the sum never depends on the core count.
    /// </summary>
    public const int BlockElements = 64 * 1024;

    /// <summary>
    /// PyTorch AdamW on fp32 spans of equal length, in place: m = β1·m + (1−β1)·g; v = β2·v + (1−β2)·g²;
    /// p −= lr·(m̂/(√v̂ + eps) + wd·p) with m̂ = m/(1 − β1^step), v̂ = v/(1 − β2^step). The same formula, operation order
    /// and float results as the CPU backend's fused AdamW kernel on F32 tensors.
    /// </summary>
    /// <param name="param">Master weights, updated in place.</param>
    /// <param name="grad">Gradients (already unscaled and clipped).</param>
    /// <param name="m">exp_avg, updated in place.</param>
    /// <param name="v">exp_avg_sq, updated in place.</param>
    /// <param name="config">Hyper-parameters (the weight decay already 0 for a chunk of non-decayed parameters).</param>
    /// <param name="step">Counts from 1 (bias correction).</param>
    /// <exception cref="ArgumentException">spans of different lengths.</exception>
    /// <exception cref="ArgumentOutOfRangeException">step &lt; 1.</exception>
    public static void AdamW(Span<float> param, ReadOnlySpan<float> grad, Span<float> m, Span<float> v, AdamWConfig config, long step)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(step, 1L);
        RequireLength(param.Length, grad.Length, nameof(grad));
        RequireLength(param.Length, m.Length, nameof(m));
        RequireLength(param.Length, v.Length, nameof(v));
        var c = new AdamConstants(config, step);
        int n = param.Length;
        if (n < ParallelThresholdElements)
        {
            AdamWRange(param, grad, m, v, c);
            return;
        }
        unsafe
        {
            fixed (float* pp = param, pg = grad, pm = m, pv = v)
            {
                nint ap = (nint)pp, ag = (nint)pg, am = (nint)pm, av = (nint)pv;
                ForEachBlock(n, (start, length) => AdamWRange(
                    new Span<float>((float*)ap + start, length), new ReadOnlySpan<float>((float*)ag + start, length),
                    new Span<float>((float*)am + start, length), new Span<float>((float*)av + start, length), c));
            }
        }
    }

    /// <summary>
    /// PyTorch SGD with momentum (dampening 0, not Nesterov), in place, with the float operations and their order of
    /// <see cref="Optimizer"/>'s SGD update: buf = μ·buf; buf += g; when wd ≠ 0 buf += wd·p; p −= lr·buf
    /// (μ, wd and lr rounded to float first, every operation rounded to float).
    /// </summary>
    /// <param name="param">Master weights, updated in place.</param>
    /// <param name="grad">Gradients (already unscaled and clipped).</param>
    /// <param name="momentumBuffer">momentum_buffer, updated in place.</param>
    /// <param name="learningRate">lr.</param>
    /// <param name="momentum">μ.</param>
    /// <param name="weightDecay">wd (0 for a chunk of non-decayed parameters: then p does not enter the buffer at all).</param>
    /// <exception cref="ArgumentException">spans of different lengths.</exception>
    public static void SgdMomentum(Span<float> param, ReadOnlySpan<float> grad, Span<float> momentumBuffer, double learningRate, double momentum, double weightDecay)
    {
        RequireLength(param.Length, grad.Length, nameof(grad));
        RequireLength(param.Length, momentumBuffer.Length, nameof(momentumBuffer));
        float lr = (float)learningRate, mu = (float)momentum, wd = (float)weightDecay;
        // The device update skips the decay ops when the double wd is 0; a float wd that rounds to 0 still runs them.
        bool decay = weightDecay != 0;
        int n = param.Length;
        if (n < ParallelThresholdElements)
        {
            SgdRange(param, grad, momentumBuffer, lr, mu, wd, decay);
            return;
        }
        unsafe
        {
            fixed (float* pp = param, pg = grad, pb = momentumBuffer)
            {
                nint ap = (nint)pp, ag = (nint)pg, ab = (nint)pb;
                ForEachBlock(n, (start, length) => SgdRange(
                    new Span<float>((float*)ap + start, length), new ReadOnlySpan<float>((float*)ag + start, length),
                    new Span<float>((float*)ab + start, length), lr, mu, wd, decay));
            }
        }
    }

    /// <summary>
    /// Σ x² accumulated in double (each square is exact in double); NaN and ±Inf propagate. Deterministic: the sums of
    /// fixed blocks of <see cref="BlockElements"/> are added in block order, whether the blocks ran in parallel or not.
    /// </summary>
    public static double SumOfSquares(ReadOnlySpan<float> x)
    {
        int n = x.Length;
        int blocks = BlockCount(n);
        double total = 0;
        if (n < ParallelThresholdElements)
        {
            for (int b = 0; b < blocks; b++)
            {
                int start = b * BlockElements;
                total += SumOfSquaresRange(x.Slice(start, Math.Min(BlockElements, n - start)));
            }
            return total;
        }
        var partials = new double[blocks];
        unsafe
        {
            fixed (float* px = x)
            {
                nint ax = (nint)px;
                System.Threading.Tasks.Parallel.For(0, blocks, b =>
                {
                    int start = b * BlockElements;
                    partials[b] = SumOfSquaresRange(new ReadOnlySpan<float>((float*)ax + start, Math.Min(BlockElements, n - start)));
                });
            }
        }
        foreach (double partial in partials)
        {
            total += partial;
        }
        return total;
    }

    /// <summary>x *= factor, in place (one float multiply per element).</summary>
    public static void Scale(Span<float> x, float factor)
    {
        int n = x.Length;
        if (n < ParallelThresholdElements)
        {
            ScaleRange(x, factor);
            return;
        }
        unsafe
        {
            fixed (float* px = x)
            {
                nint ax = (nint)px;
                ForEachBlock(n, (start, length) => ScaleRange(new Span<float>((float*)ax + start, length), factor));
            }
        }
    }

    /// <summary>dst += src, in place (one float add per element): accumulates a gradient shard over micro-batches.</summary>
    /// <exception cref="ArgumentException">spans of different lengths.</exception>
    public static void Add(ReadOnlySpan<float> src, Span<float> dst)
    {
        RequireLength(dst.Length, src.Length, nameof(src));
        int n = dst.Length;
        if (n < ParallelThresholdElements)
        {
            AddRange(src, dst);
            return;
        }
        unsafe
        {
            fixed (float* ps = src, pd = dst)
            {
                nint asrc = (nint)ps, adst = (nint)pd;
                ForEachBlock(n, (start, length) => AddRange(
                    new ReadOnlySpan<float>((float*)asrc + start, length), new Span<float>((float*)adst + start, length)));
            }
        }
    }

    /// <summary>
    /// AdamW's per-call constants, derived exactly as the CPU kernel derives them: bias corrections 1 − β^step in
    /// double, their reciprocals and the other factors rounded to float once.
    /// </summary>
    private readonly struct AdamConstants
    {
        public AdamConstants(AdamWConfig c, long step)
        {
            Config = c;
            Correction1 = 1 - Math.Pow(c.Beta1, step);
            Correction2 = 1 - Math.Pow(c.Beta2, step);
            Beta1 = (float)c.Beta1;
            OneMinusBeta1 = (float)(1 - c.Beta1);
            Beta2 = (float)c.Beta2;
            OneMinusBeta2 = (float)(1 - c.Beta2);
            Inverse1 = (float)(1 / Correction1);
            Inverse2 = (float)(1 / Correction2);
            Epsilon = (float)c.Epsilon;
            Decay = (float)c.WeightDecay;
            NegativeLearningRate = (float)-c.LearningRate;
            // The CPU kernel computes in float only where 256-bit vectors are accelerated, in double elsewhere.
            InFloat = Vector256.IsHardwareAccelerated;
        }

        public AdamWConfig Config { get; }

        public double Correction1 { get; }

        public double Correction2 { get; }

        public float Beta1 { get; }

        public float OneMinusBeta1 { get; }

        public float Beta2 { get; }

        public float OneMinusBeta2 { get; }

        public float Inverse1 { get; }

        public float Inverse2 { get; }

        public float Epsilon { get; }

        public float Decay { get; }

        public float NegativeLearningRate { get; }

        public bool InFloat { get; }
    }

    private static void AdamWRange(Span<float> p, ReadOnlySpan<float> g, Span<float> m, Span<float> v, in AdamConstants c)
    {
        if (!c.InFloat)
        {
            AdamWRangeInDouble(p, g, m, v, c);
            return;
        }
        int vectorEnd = p.Length - (p.Length % Vector<float>.Count);
        if (vectorEnd > 0)
        {
            var pv = MemoryMarshal.Cast<float, Vector<float>>(p[..vectorEnd]);
            var gv = MemoryMarshal.Cast<float, Vector<float>>(g[..vectorEnd]);
            var mv = MemoryMarshal.Cast<float, Vector<float>>(m[..vectorEnd]);
            var vv = MemoryMarshal.Cast<float, Vector<float>>(v[..vectorEnd]);
            var b1 = new Vector<float>(c.Beta1);
            var oneMinusB1 = new Vector<float>(c.OneMinusBeta1);
            var b2 = new Vector<float>(c.Beta2);
            var oneMinusB2 = new Vector<float>(c.OneMinusBeta2);
            var inverse1 = new Vector<float>(c.Inverse1);
            var inverse2 = new Vector<float>(c.Inverse2);
            var eps = new Vector<float>(c.Epsilon);
            var decay = new Vector<float>(c.Decay);
            var negativeLr = new Vector<float>(c.NegativeLearningRate);
            for (int k = 0; k < pv.Length; k++)
            {
                var gi = gv[k];
                var pi = pv[k];
                // Same grouping as the kernel: (1−β2)·g·g is ((1−β2)·g)·g, the moments and the final step fused.
                var mi = Vector.FusedMultiplyAdd(b1, mv[k], oneMinusB1 * gi);
                var vi = Vector.FusedMultiplyAdd(b2, vv[k], oneMinusB2 * gi * gi);
                mv[k] = mi;
                vv[k] = vi;
                var u = Vector.FusedMultiplyAdd(decay, pi, mi * inverse1 / (Vector.SquareRoot(vi * inverse2) + eps));
                pv[k] = Vector.FusedMultiplyAdd(negativeLr, u, pi);
            }
        }
        for (int i = vectorEnd; i < p.Length; i++)
        {
            float gi = g[i], pi = p[i];
            float mi = MathF.FusedMultiplyAdd(c.Beta1, m[i], c.OneMinusBeta1 * gi);
            float vi = MathF.FusedMultiplyAdd(c.Beta2, v[i], c.OneMinusBeta2 * gi * gi);
            m[i] = mi;
            v[i] = vi;
            float u = MathF.FusedMultiplyAdd(c.Decay, pi, mi * c.Inverse1 / (MathF.Sqrt(vi * c.Inverse2) + c.Epsilon));
            p[i] = MathF.FusedMultiplyAdd(c.NegativeLearningRate, u, pi);
        }
    }

    /// <summary>The CPU kernel's path without 256-bit vectors: each element computed in double, rounded to float on store.</summary>
    private static void AdamWRangeInDouble(Span<float> p, ReadOnlySpan<float> g, Span<float> m, Span<float> v, in AdamConstants c)
    {
        double b1 = c.Config.Beta1, b2 = c.Config.Beta2, eps = c.Config.Epsilon, wd = c.Config.WeightDecay, lr = c.Config.LearningRate;
        for (int i = 0; i < p.Length; i++)
        {
            double gi = g[i], pi = p[i];
            double mi = (b1 * m[i]) + ((1 - b1) * gi);
            double vi = (b2 * v[i]) + ((1 - b2) * gi * gi);
            m[i] = (float)mi;
            v[i] = (float)vi;
            // The update uses the unrounded double moments, as the kernel does.
            double u = ((mi / c.Correction1) / (Math.Sqrt(vi / c.Correction2) + eps)) + (wd * pi);
            p[i] = (float)(pi - (lr * u));
        }
    }

    private static void SgdRange(Span<float> p, ReadOnlySpan<float> g, Span<float> buffer, float lr, float mu, float wd, bool decay)
    {
        int vectorEnd = p.Length - (p.Length % Vector<float>.Count);
        if (vectorEnd > 0)
        {
            var pv = MemoryMarshal.Cast<float, Vector<float>>(p[..vectorEnd]);
            var gv = MemoryMarshal.Cast<float, Vector<float>>(g[..vectorEnd]);
            var bv = MemoryMarshal.Cast<float, Vector<float>>(buffer[..vectorEnd]);
            var muV = new Vector<float>(mu);
            var wdV = new Vector<float>(wd);
            var lrV = new Vector<float>(lr);
            for (int k = 0; k < pv.Length; k++)
            {
                var b = (bv[k] * muV) + gv[k];
                if (decay)
                {
                    b += pv[k] * wdV;
                }
                bv[k] = b;
                pv[k] -= b * lrV;
            }
        }
        for (int i = vectorEnd; i < p.Length; i++)
        {
            float b = (buffer[i] * mu) + g[i];
            if (decay)
            {
                b += p[i] * wd;
            }
            buffer[i] = b;
            p[i] -= b * lr;
        }
    }

    private static double SumOfSquaresRange(ReadOnlySpan<float> x)
    {
        int vectorEnd = x.Length - (x.Length % Vector<float>.Count);
        double sum = 0;
        if (vectorEnd > 0)
        {
            var xv = MemoryMarshal.Cast<float, Vector<float>>(x[..vectorEnd]);
            var low = Vector<double>.Zero;
            var high = Vector<double>.Zero;
            foreach (var xi in xv)
            {
                Vector.Widen(xi, out var lo, out var hi);
                // A float squared is exact in double (24 + 24 bits ≤ 53): only the additions round.
                low += lo * lo;
                high += hi * hi;
            }
            sum = Vector.Sum(low + high);
        }
        for (int i = vectorEnd; i < x.Length; i++)
        {
            double xi = x[i];
            sum += xi * xi;
        }
        return sum;
    }

    private static void ScaleRange(Span<float> x, float factor)
    {
        int vectorEnd = x.Length - (x.Length % Vector<float>.Count);
        if (vectorEnd > 0)
        {
            var xv = MemoryMarshal.Cast<float, Vector<float>>(x[..vectorEnd]);
            var f = new Vector<float>(factor);
            for (int k = 0; k < xv.Length; k++)
            {
                xv[k] *= f;
            }
        }
        for (int i = vectorEnd; i < x.Length; i++)
        {
            x[i] *= factor;
        }
    }

    private static void AddRange(ReadOnlySpan<float> src, Span<float> dst)
    {
        int vectorEnd = dst.Length - (dst.Length % Vector<float>.Count);
        if (vectorEnd > 0)
        {
            var sv = MemoryMarshal.Cast<float, Vector<float>>(src[..vectorEnd]);
            var dv = MemoryMarshal.Cast<float, Vector<float>>(dst[..vectorEnd]);
            for (int k = 0; k < dv.Length; k++)
            {
                dv[k] += sv[k];
            }
        }
        for (int i = vectorEnd; i < dst.Length; i++)
        {
            dst[i] += src[i];
        }
    }

    private static int BlockCount(int n) => (int)(((long)n + BlockElements - 1) / BlockElements);

    /// <summary>Runs body(start, length) over the fixed blocks of [0, n) in parallel.</summary>
    private static void ForEachBlock(int n, Action<int, int> body) =>
        System.Threading.Tasks.Parallel.For(0, BlockCount(n), b =>
        {
            int start = b * BlockElements;
            body(start, Math.Min(BlockElements, n - start));
        });

    private static void RequireLength(int expected, int actual, string name)
    {
        if (actual != expected)
        {
            throw new ArgumentException($"{name} has {actual} elements, expected {expected}", name);
        }
    }
}
