using System.Runtime.Intrinsics;

namespace Hal.Backends.Cpu;

// Optimizer steps, in place, element-wise over a parameter tensor of any shape (one tensor = one LAMB/LARS
// trust-ratio group). States (m, v, momentum buffer) are F32 (F64 accepted); 16-bit parameters are widened to F32,
// updated and rounded back. Each element's update is computed in double, then rounded to the storage dtype once.
// Norms for LAMB/LARS are reduced in double per chunk and combined in chunk order (the same bits on every run).
internal sealed partial class CpuKernels
{
    public void AdamW(Tensor param, Tensor grad, Tensor m, Tensor v, AdamWConfig config, long step) =>
        OptimizerDispatch(param, grad, [m, v], (p, g, s) => AdamCore(p, g, s[0], s[1], config, step, lamb: false));

    public void Lamb(Tensor param, Tensor grad, Tensor m, Tensor v, AdamWConfig config, long step) =>
        OptimizerDispatch(param, grad, [m, v], (p, g, s) => AdamCore(p, g, s[0], s[1], config, step, lamb: true));

    public void Lars(Tensor param, Tensor grad, Tensor momentumBuffer, LarsConfig config) =>
        OptimizerDispatch(param, grad, [momentumBuffer], (p, g, s) => LarsCore(p, g, s[0], config));

    private void OptimizerDispatch(Tensor param, Tensor grad, Tensor[] states, Action<Tensor, Tensor, Tensor[]> body)
    {
        if (param.DType.Is16Bit() || grad.DType.Is16Bit())
        {
            ViaF32([grad], [param], (i, o) => body(o[0]!, i[0]!, states));
        }
        else
        {
            body(param, grad, states);
        }
    }

    /// <summary>Reads element i of an F32 or F64 tensor given its address.</summary>
    private static unsafe double Load(nint p, bool isDouble, long i) => isDouble ? ((double*)p)[i] : ((float*)p)[i];

    /// <summary>Writes element i of an F32 or F64 tensor given its address.</summary>
    private static unsafe void Store(nint p, bool isDouble, long i, double value)
    {
        if (isDouble)
        {
            ((double*)p)[i] = value;
        }
        else
        {
            ((float*)p)[i] = (float)value;
        }
    }

    /// <summary>
    /// AdamW (lamb false) or LAMB (lamb true). u = m̂/(√v̂ + eps) + wd·p with m̂ = m/(1 − β1^t), v̂ = v/(1 − β2^t);
    /// AdamW: p −= lr·u. LAMB: a first pass updates m, v and reduces ‖p‖, ‖u‖; the second recomputes u and applies
    /// p −= lr·(‖p‖/‖u‖)·u (ratio 1 when either norm is 0).
    /// </summary>
    private unsafe void AdamCore(Tensor param, Tensor grad, Tensor m, Tensor v, AdamWConfig c, long step, bool lamb)
    {
        long n = param.ElementCount;
        nint pp = (nint)Ptr(param), pg = (nint)Ptr(grad), pm = (nint)Ptr(m), pv = (nint)Ptr(v);
        bool pd = param.DType == DType.F64, gd = grad.DType == DType.F64, md = m.DType == DType.F64, vd = v.DType == DType.F64;
        double b1 = c.Beta1, b2 = c.Beta2;
        double correction1 = 1 - Math.Pow(b1, step), correction2 = 1 - Math.Pow(b2, step);
        if (!lamb && !pd && !gd && !md && !vd && Vector256.IsHardwareAccelerated)
        {
            AdamWF32(n, pp, pg, pm, pv, c, correction1, correction2);
            return;
        }
        int chunks = ChunkCount(n, 16);
        var paramSquares = new double[Math.Max(1, chunks)];
        var updateSquares = new double[Math.Max(1, chunks)];
        ParallelForChunks(n, 16, (chunk, start, end) =>
        {
            double ps = 0, us = 0;
            for (long i = start; i < end; i++)
            {
                double g = Load(pg, gd, i), p = Load(pp, pd, i);
                double mi = (b1 * Load(pm, md, i)) + ((1 - b1) * g);
                double vi = (b2 * Load(pv, vd, i)) + ((1 - b2) * g * g);
                Store(pm, md, i, mi);
                Store(pv, vd, i, vi);
                double u = ((mi / correction1) / (Math.Sqrt(vi / correction2) + c.Epsilon)) + (c.WeightDecay * p);
                if (lamb)
                {
                    ps += p * p;
                    us += u * u;
                }
                else
                {
                    Store(pp, pd, i, p - (c.LearningRate * u));
                }
            }
            paramSquares[chunk] = ps;
            updateSquares[chunk] = us;
        });
        if (!lamb)
        {
            return;
        }
        double paramNorm = Math.Sqrt(paramSquares.Sum()), updateNorm = Math.Sqrt(updateSquares.Sum());
        double ratio = paramNorm > 0 && updateNorm > 0 ? paramNorm / updateNorm : 1;
        // The stored m and v are what the first pass computed (F32-rounded), so u is recomputed from them as stored.
        ParallelFor(n, 16, (start, end) =>
        {
            for (long i = start; i < end; i++)
            {
                double p = Load(pp, pd, i);
                double u = ((Load(pm, md, i) / correction1) / (Math.Sqrt(Load(pv, vd, i) / correction2) + c.Epsilon)) + (c.WeightDecay * p);
                Store(pp, pd, i, p - (c.LearningRate * ratio * u));
            }
        });
    }

    /// <summary>
    /// AdamW with everything F32, eight lanes at a time: the update is computed in F32 (a few ULP of u, far below the
    /// rounding of the stored parameter), the bias corrections folded into multipliers once per call.
    /// </summary>
    private unsafe void AdamWF32(long n, nint pp, nint pg, nint pm, nint pv, AdamWConfig c, double correction1, double correction2)
    {
        var b1 = Vector256.Create((float)c.Beta1);
        var oneMinusB1 = Vector256.Create((float)(1 - c.Beta1));
        var b2 = Vector256.Create((float)c.Beta2);
        var oneMinusB2 = Vector256.Create((float)(1 - c.Beta2));
        var inverse1 = Vector256.Create((float)(1 / correction1));
        var inverse2 = Vector256.Create((float)(1 / correction2));
        var eps = Vector256.Create((float)c.Epsilon);
        var decay = Vector256.Create((float)c.WeightDecay);
        var negativeLr = Vector256.Create((float)-c.LearningRate);
        ParallelFor(n, 16, (start, end) =>
        {
            float* p = (float*)pp, g = (float*)pg, m = (float*)pm, v = (float*)pv;
            long i = start;
            for (; i <= end - 8; i += 8)
            {
                var gi = Vector256.Load(g + i);
                var pi = Vector256.Load(p + i);
                var mi = Vector256.FusedMultiplyAdd(b1, Vector256.Load(m + i), oneMinusB1 * gi);
                var vi = Vector256.FusedMultiplyAdd(b2, Vector256.Load(v + i), oneMinusB2 * gi * gi);
                mi.Store(m + i);
                vi.Store(v + i);
                var u = Vector256.FusedMultiplyAdd(decay, pi, mi * inverse1 / (Vector256.Sqrt(vi * inverse2) + eps));
                Vector256.FusedMultiplyAdd(negativeLr, u, pi).Store(p + i);
            }
            for (; i < end; i++)
            {
                float gi = g[i], pi = p[i];
                float mi = MathF.FusedMultiplyAdd(b1[0], m[i], oneMinusB1[0] * gi);
                float vi = MathF.FusedMultiplyAdd(b2[0], v[i], oneMinusB2[0] * gi * gi);
                m[i] = mi;
                v[i] = vi;
                float u = MathF.FusedMultiplyAdd(decay[0], pi, mi * inverse1[0] / (MathF.Sqrt(vi * inverse2[0]) + eps[0]));
                p[i] = MathF.FusedMultiplyAdd(negativeLr[0], u, pi);
            }
        });
    }

    /// <summary>
    /// LARS: local_lr = trust·‖p‖/(‖g‖ + wd·‖p‖ + eps) (1 when either norm is 0); buf = momentum·buf + local_lr·(g + wd·p);
    /// p −= lr·buf.
    /// </summary>
    private unsafe void LarsCore(Tensor param, Tensor grad, Tensor buffer, LarsConfig c)
    {
        long n = param.ElementCount;
        nint pp = (nint)Ptr(param), pg = (nint)Ptr(grad), pb = (nint)Ptr(buffer);
        bool pd = param.DType == DType.F64, gd = grad.DType == DType.F64, bd = buffer.DType == DType.F64;
        int chunks = ChunkCount(n, 4);
        var paramSquares = new double[Math.Max(1, chunks)];
        var gradSquares = new double[Math.Max(1, chunks)];
        ParallelForChunks(n, 4, (chunk, start, end) =>
        {
            double ps = 0, gs = 0;
            for (long i = start; i < end; i++)
            {
                double p = Load(pp, pd, i), g = Load(pg, gd, i);
                ps += p * p;
                gs += g * g;
            }
            paramSquares[chunk] = ps;
            gradSquares[chunk] = gs;
        });
        double paramNorm = Math.Sqrt(paramSquares.Sum()), gradNorm = Math.Sqrt(gradSquares.Sum());
        double localLr = paramNorm > 0 && gradNorm > 0
            ? c.TrustCoefficient * paramNorm / (gradNorm + (c.WeightDecay * paramNorm) + c.Epsilon)
            : 1;
        ParallelFor(n, 16, (start, end) =>
        {
            for (long i = start; i < end; i++)
            {
                double p = Load(pp, pd, i), g = Load(pg, gd, i);
                double b = (c.Momentum * Load(pb, bd, i)) + (localLr * (g + (c.WeightDecay * p)));
                Store(pb, bd, i, b);
                Store(pp, pd, i, p - (c.LearningRate * b));
            }
        });
    }
}
