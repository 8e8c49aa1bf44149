using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Hal.Backends.Cpu.Gemm;

namespace Hal.Backends.Cpu;

// F32 attention forward and backward as small GEMMs per block of query rows, instead of one dot product per
// (query, key). Legend: as CpuKernels.Attention.cs; per query block of R rows [i0, i0 + R) that together see keys
// [0, n): S, P, dP, dS [R, n] scratch; Q, O, dO, dQ rows [R, D]; K, V, dK, dV rows [n, D].
// Forward: S = scale·Q·Kᵀ, per row m = max, p = exp(s − m) on visible keys (0 elsewhere), l = Σp, O = (P·V)/l,
// lse = m + log l.
// S = scale·Q·Kᵀ, P = exp(S − lse) on visible keys (0 elsewhere), dP = dO·Vᵀ, dS = scale·P∘(dP − rowsum(dO∘O)),
// dQ = dS·K, dV += Pᵀ·dO, dK += dSᵀ·Q.
internal sealed partial class CpuKernels
{
    /// <summary>Query rows per block: with causal masking the block's keys stop at its last row, so smaller blocks skip more.</summary>
    private const int AttentionGemmRows = 64;

    /// <summary>Above this many keys the [R, Tk] scratch (4 of them) grows past a few MiB; the row-wise kernel runs instead.</summary>
    private const int AttentionGemmMaxKeys = 8192;

    /// <summary>C[m, n] = alpha · op(A) · op(B) + beta · C for row-major F32 matrices with leading dimensions lda/ldb/ldc.</summary>
    private unsafe void GemmF32(float* a, long lda, bool transA, float* b, long ldb, bool transB, float* c, long ldc, int m, int n, int k, float alpha, float beta, int threads)
    {
        var opA = transA ? new GemmOperand(a, 1, lda) : new GemmOperand(a, lda, 1);
        var opB = transB ? new GemmOperand(b, 1, ldb) : new GemmOperand(b, ldb, 1);
        if (GemmVectorBits == 512)
        {
            CpuGemm.Run<float, Avx512Kernel12x2V<float>, F32Loader>(opA, opB, c, ldc, m, n, k, alpha, beta, null, threads, F32Blocking512);
        }
        else
        {
            CpuGemm.Run<float, F32Kernel6x16, F32Loader>(opA, opB, c, ldc, m, n, k, alpha, beta, null, threads, F32Blocking);
        }
    }

    /// <summary>The blocked F32 forward; one work item per (batch, query head).</summary>
    private unsafe void AttentionForwardBlockedF32(Tensor q, Tensor k, Tensor v, bool causal, float scale, Tensor output, Tensor lse)
    {
        var dims = AttentionDims.Of(q, k);
        int d = dims.D;
        int group = dims.H / dims.Hkv;
        nint pq = (nint)Ptr(q), pk = (nint)Ptr(k), pv = (nint)Ptr(v), po = (nint)Ptr(output), pz = (nint)Ptr(lse);
        int items = dims.B * dims.H;
        int gemmThreads = items >= Threads ? 1 : Threads;
        void RunItem(int bh, float* s)
        {
            int b = bh / dims.H, h = bh % dims.H;
            long kvOffset = (((long)b * dims.Hkv) + (h / group)) * dims.Tk * d;
            float* kHead = (float*)pk + kvOffset, vHead = (float*)pv + kvOffset;
            float* qHead = (float*)pq + ((long)bh * dims.Tq * d), oHead = (float*)po + ((long)bh * dims.Tq * d);
            float* lseHead = (float*)pz + ((long)bh * dims.Tq);
            float* inverseSum = stackalloc float[AttentionGemmRows];
            for (int i0 = 0; i0 < dims.Tq; i0 += AttentionGemmRows)
            {
                int rows = Math.Min(AttentionGemmRows, dims.Tq - i0);
                int n = Math.Min(dims.Tk, dims.VisibleKeys(i0 + rows - 1, causal));
                float* oRows = oHead + ((long)i0 * d);
                if (n <= 0)
                {
                    new Span<float>(oRows, rows * d).Clear();
                    new Span<float>(lseHead + i0, rows).Fill(float.NegativeInfinity);
                    continue;
                }
                GemmF32(qHead + ((long)i0 * d), d, false, kHead, d, true, s, n, rows, n, d, scale, 0f, gemmThreads);
                for (int r = 0; r < rows; r++)
                {
                    int keys = Math.Max(0, Math.Min(n, dims.VisibleKeys(i0 + r, causal)));
                    float* sRow = s + ((long)r * n);
                    if (keys <= 0)
                    {
                        inverseSum[r] = 0f;
                        lseHead[i0 + r] = float.NegativeInfinity;
                    }
                    else
                    {
                        float max = CpuRowMath.Max(sRow, keys);
                        float sum = CpuRowMath.ExpShiftSum(sRow, max, sRow, keys);
                        inverseSum[r] = 1f / sum;
                        lseHead[i0 + r] = max + MathF.Log(sum);
                    }
                    new Span<float>(sRow + keys, n - keys).Clear();
                }
                GemmF32(s, n, false, vHead, d, false, oRows, d, rows, d, n, 1f, 0f, gemmThreads);
                for (int r = 0; r < rows; r++)
                {
                    float* oRow = oRows + ((long)r * d);
                    if (inverseSum[r] == 0f)
                    {
                        // A row that sees no key: output 0 (its P row is all 0 already; this also clears −0).
                        new Span<float>(oRow, d).Clear();
                    }
                    else
                    {
                        CpuRowMath.Scale(oRow, inverseSum[r], oRow, d);
                    }
                }
            }
        }
        long scratch = (long)AttentionGemmRows * Math.Max(1, dims.Tk);
        void RunRange(int start, int end)
        {
            float* s = (float*)NativeMemory.AlignedAlloc((nuint)(scratch * sizeof(float)), 64);
            try
            {
                for (int item = start; item < end; item++)
                {
                    RunItem(item, s);
                }
            }
            finally
            {
                NativeMemory.AlignedFree(s);
            }
        }
        if (gemmThreads > 1 || items <= 1)
        {
            RunRange(0, items);
            return;
        }
        int workers = Math.Min(Threads, items);
        Parallel.For(0, workers, new ParallelOptions { MaxDegreeOfParallelism = workers }, w =>
            RunRange((int)((long)items * w / workers), (int)((long)items * (w + 1) / workers)));
    }

    /// <summary>The blocked F32 backward; one work item per (batch, kv head), as the row-wise kernel.</summary>
    private unsafe void AttentionBackwardBlockedF32(Tensor q, Tensor k, Tensor v, Tensor output, Tensor lse, Tensor dOutput, bool causal, float scale, Tensor dq, Tensor dk, Tensor dv)
    {
        var dims = AttentionDims.Of(q, k);
        int d = dims.D;
        int group = dims.H / dims.Hkv;
        nint pq = (nint)Ptr(q), pk = (nint)Ptr(k), pv = (nint)Ptr(v), po = (nint)Ptr(output), pz = (nint)Ptr(lse);
        nint pdo = (nint)Ptr(dOutput), pdq = (nint)Ptr(dq), pdk = (nint)Ptr(dk), pdv = (nint)Ptr(dv);
        int items = dims.B * dims.Hkv;
        // Enough items: one per worker, each GEMM on one thread; otherwise items one after another, GEMMs threaded.
        int gemmThreads = items >= Threads ? 1 : Threads;
        void RunItem(int bkv, float* p, float* ds)
        {
            long kvOffset = (long)bkv * dims.Tk * d;
            float* kHead = (float*)pk + kvOffset, vHead = (float*)pv + kvOffset, dkHead = (float*)pdk + kvOffset, dvHead = (float*)pdv + kvOffset;
            new Span<float>(dkHead, dims.Tk * d).Clear();
            new Span<float>(dvHead, dims.Tk * d).Clear();
            int b = bkv / dims.Hkv, kvHead = bkv % dims.Hkv;
            for (int h = kvHead * group; h < (kvHead + 1) * group; h++)
            {
                long qOffset = (((long)b * dims.H) + h) * dims.Tq * d;
                float* qHead = (float*)pq + qOffset, oHead = (float*)po + qOffset, doHead = (float*)pdo + qOffset, dqHead = (float*)pdq + qOffset;
                float* lseHead = (float*)pz + ((((long)b * dims.H) + h) * dims.Tq);
                for (int i0 = 0; i0 < dims.Tq; i0 += AttentionGemmRows)
                {
                    int rows = Math.Min(AttentionGemmRows, dims.Tq - i0);
                    int n = Math.Min(dims.Tk, dims.VisibleKeys(i0 + rows - 1, causal));
                    float* qRows = qHead + ((long)i0 * d), doRows = doHead + ((long)i0 * d), dqRows = dqHead + ((long)i0 * d);
                    if (n <= 0)
                    {
                        new Span<float>(dqRows, rows * d).Clear();
                        continue;
                    }
                    GemmF32(qRows, d, false, kHead, d, true, p, n, rows, n, d, scale, 0f, gemmThreads);
                    GemmF32(doRows, d, false, vHead, d, true, ds, n, rows, n, d, 1f, 0f, gemmThreads);
                    for (int r = 0; r < rows; r++)
                    {
                        int i = i0 + r;
                        int keys = Math.Max(0, Math.Min(n, dims.VisibleKeys(i, causal)));
                        float rowD = CpuRowMath.Dot(doHead + ((long)i * d), oHead + ((long)i * d), d);
                        ProbabilitiesAndScoreGradients(p + ((long)r * n), ds + ((long)r * n), n, keys, lseHead[i], rowD, scale);
                    }
                    GemmF32(ds, n, false, kHead, d, false, dqRows, d, rows, d, n, 1f, 0f, gemmThreads);
                    GemmF32(p, n, true, doRows, d, false, dvHead, d, n, d, rows, 1f, 1f, gemmThreads);
                    GemmF32(ds, n, true, qRows, d, false, dkHead, d, n, d, rows, 1f, 1f, gemmThreads);
                }
            }
        }
        long scratch = (long)AttentionGemmRows * Math.Max(1, dims.Tk);
        void RunRange(int start, int end)
        {
            float* p = (float*)NativeMemory.AlignedAlloc((nuint)(2 * scratch * sizeof(float)), 64);
            try
            {
                for (int item = start; item < end; item++)
                {
                    RunItem(item, p, p + scratch);
                }
            }
            finally
            {
                NativeMemory.AlignedFree(p);
            }
        }
        if (gemmThreads > 1 || items <= 1)
        {
            RunRange(0, items);
            return;
        }
        int workers = Math.Min(Threads, items);
        Parallel.For(0, workers, new ParallelOptions { MaxDegreeOfParallelism = workers }, w =>
            RunRange((int)((long)items * w / workers), (int)((long)items * (w + 1) / workers)));
    }

    /// <summary>
    /// One row: p_j = exp(s_j − lse) and ds_j = scale·p_j·(dp_j − rowD) for the visible keys j &lt; keys; both 0 for
    /// j in [keys, n), so masked keys add nothing to the GEMMs that follow. s arrives in p, dp in ds.
    /// </summary>
    private static unsafe void ProbabilitiesAndScoreGradients(float* p, float* ds, int n, int keys, float lse, float rowD, float scale)
    {
        int j = 0;
        if (keys > 0)
        {
            var vLse = Vector256.Create(lse);
            var vD = Vector256.Create(rowD);
            var vScale = Vector256.Create(scale);
            for (; j + 8 <= keys; j += 8)
            {
                var pj = CpuExp.Exp(Vector256.Load(p + j) - vLse);
                pj.Store(p + j);
                (vScale * pj * (Vector256.Load(ds + j) - vD)).Store(ds + j);
            }
            for (; j < keys; j++)
            {
                float pj = MathF.Exp(p[j] - lse);
                p[j] = pj;
                ds[j] = scale * pj * (ds[j] - rowD);
            }
        }
        for (; j < n; j++)
        {
            p[j] = 0f;
            ds[j] = 0f;
        }
    }
}
