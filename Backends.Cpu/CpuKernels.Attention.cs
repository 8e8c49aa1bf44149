using System.Numerics;

namespace Hal.Backends.Cpu;

// Scaled-dot-product attention, flash style: keys in tiles, an online softmax per query row (running max m and
// running sum l, the partial output rescaled by exp(m_old − m_new) when the max grows), so the Tq×Tk score matrix
// is never stored. Returns lse = m + log l per row; the backward recomputes probabilities p = exp(s − lse).
// Legend: B batch, H query heads, Hkv key/value heads (query head h reads kv head h / (H/Hkv)), Tq/Tk query/key
// lengths, D head size. q, out [B, H, Tq, D]; k, v [B, Hkv, Tk, D]; lse [B, H, Tq] F32.
// Causal: query i sees keys j ≤ i + (Tk − Tq) (bottom-right aligned); a row that sees no key: out 0, lse −Inf.
internal sealed partial class CpuKernels
{
    /// <summary>Keys per tile: a tile of K and V (2·64·D floats) stays in L1 while a block of queries reads it.</summary>
    private const int AttentionKeyTile = 64;

    /// <summary>Query rows that share each key tile.</summary>
    private const int AttentionQueryBlock = 8;

    public void Attention(Tensor q, Tensor k, Tensor v, bool causal, double scale, Tensor output, Tensor lse)
    {
        if (q.DType.Is16Bit())
        {
            ViaF32([q, k, v], [output], (i, o) => Attention(i[0]!, i[1]!, i[2]!, causal, scale, o[0]!, lse));
        }
        else if (q.DType == DType.F64)
        {
            AttentionForward<double>(q, k, v, causal, scale, output, lse);
        }
        else if (k.Shape[2] <= AttentionGemmMaxKeys)
        {
            AttentionForwardBlockedF32(q, k, v, causal, (float)scale, output, lse);
        }
        else
        {
            AttentionForward<float>(q, k, v, causal, scale, output, lse);
        }
    }

    public void AttentionBackward(Tensor q, Tensor k, Tensor v, Tensor output, Tensor lse, Tensor dOutput, bool causal, double scale, Tensor dq, Tensor dk, Tensor dv)
    {
        if (q.DType.Is16Bit())
        {
            ViaF32([q, k, v, output, dOutput], [dq, dk, dv],
                (i, o) => AttentionBackward(i[0]!, i[1]!, i[2]!, i[3]!, lse, i[4]!, causal, scale, o[0]!, o[1]!, o[2]!));
        }
        else if (q.DType == DType.F64)
        {
            AttentionBackwardCore<double>(q, k, v, output, lse, dOutput, causal, scale, dq, dk, dv);
        }
        else if (k.Shape[2] <= AttentionGemmMaxKeys)
        {
            AttentionBackwardBlockedF32(q, k, v, output, lse, dOutput, causal, (float)scale, dq, dk, dv);
        }
        else
        {
            AttentionBackwardCore<float>(q, k, v, output, lse, dOutput, causal, scale, dq, dk, dv);
        }
    }

    private readonly record struct AttentionDims(int B, int H, int Hkv, int Tq, int Tk, int D)
    {
        internal static AttentionDims Of(Tensor q, Tensor k) => new(q.Shape[0], q.Shape[1], k.Shape[1], q.Shape[2], k.Shape[2], q.Shape[3]);

        /// <summary>Number of keys query row i sees (keys 0..count−1); ≤ 0 when it sees none.</summary>
        internal int VisibleKeys(int i, bool causal) => causal ? Math.Min(Tk, i + (Tk - Tq) + 1) : Tk;
    }

    private unsafe void AttentionForward<T>(Tensor q, Tensor k, Tensor v, bool causal, double scale, Tensor output, Tensor lse)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var dims = AttentionDims.Of(q, k);
        int d = dims.D;
        int blocksPerHead = (dims.Tq + AttentionQueryBlock - 1) / AttentionQueryBlock;
        long blocks = (long)dims.B * dims.H * blocksPerHead;
        nint pq = (nint)Ptr(q), pk = (nint)Ptr(k), pv = (nint)Ptr(v), po = (nint)Ptr(output), pz = (nint)Ptr(lse);
        T scaleT = T.CreateTruncating(scale);
        ParallelFor(blocks, (long)AttentionQueryBlock * dims.Tk * d, (start, end) =>
        {
            var accArray = new T[AttentionQueryBlock * Math.Max(d, 1)];
            var scoreArray = new T[AttentionKeyTile];
            var runMax = new T[AttentionQueryBlock];
            var runSum = new T[AttentionQueryBlock];
            fixed (T* acc = accArray, scores = scoreArray)
            {
                for (long blk = start; blk < end; blk++)
                {
                    int bh = (int)(blk / blocksPerHead);
                    int i0 = (int)(blk % blocksPerHead) * AttentionQueryBlock;
                    int rowsInBlock = Math.Min(AttentionQueryBlock, dims.Tq - i0);
                    int b = bh / dims.H, h = bh % dims.H;
                    int kvHead = h / (dims.H / dims.Hkv);
                    T* qHead = (T*)pq + ((long)bh * dims.Tq * d);
                    T* oHead = (T*)po + ((long)bh * dims.Tq * d);
                    T* kHead = (T*)pk + ((((long)b * dims.Hkv) + kvHead) * dims.Tk * d);
                    T* vHead = (T*)pv + ((((long)b * dims.Hkv) + kvHead) * dims.Tk * d);
                    new Span<T>(acc, rowsInBlock * d).Clear();
                    Array.Fill(runMax, T.NegativeInfinity);
                    Array.Fill(runSum, T.Zero);
                    // The block's last row sees the most keys: tiles past it are fully masked for every row and skipped.
                    int blockKeys = dims.VisibleKeys(i0 + rowsInBlock - 1, causal);
                    for (int j0 = 0; j0 < blockKeys; j0 += AttentionKeyTile)
                    {
                        for (int r = 0; r < rowsInBlock; r++)
                        {
                            int keys = Math.Min(AttentionKeyTile, dims.VisibleKeys(i0 + r, causal) - j0);
                            if (keys <= 0)
                            {
                                continue;
                            }
                            T* qRow = qHead + ((long)(i0 + r) * d);
                            T* kTile = kHead + ((long)j0 * d);
                            int jj = 0;
                            for (; jj <= keys - 4; jj += 4)
                            {
                                T* k0 = kTile + ((long)jj * d);
                                CpuRowMath.Dot4(qRow, k0, k0 + d, k0 + (2 * d), k0 + (3 * d), d, out T s0, out T s1, out T s2, out T s3);
                                scores[jj] = scaleT * s0;
                                scores[jj + 1] = scaleT * s1;
                                scores[jj + 2] = scaleT * s2;
                                scores[jj + 3] = scaleT * s3;
                            }
                            for (; jj < keys; jj++)
                            {
                                scores[jj] = scaleT * CpuRowMath.Dot(qRow, kTile + ((long)jj * d), d);
                            }
                            T tileMax = CpuRowMath.Max(scores, keys);
                            T newMax = T.Max(runMax[r], tileMax);
                            T* accRow = acc + (r * d);
                            if (runMax[r] != newMax)
                            {
                                T correction = T.Exp(runMax[r] - newMax);
                                runSum[r] *= correction;
                                CpuRowMath.Scale(accRow, correction, accRow, d);
                            }
                            runSum[r] += CpuRowMath.ExpShiftSum(scores, newMax, scores, keys);
                            runMax[r] = newMax;
                            T* vTile = vHead + ((long)j0 * d);
                            for (jj = 0; jj <= keys - 4; jj += 4)
                            {
                                T* v0 = vTile + ((long)jj * d);
                                CpuRowMath.Axpy4(scores[jj], v0, scores[jj + 1], v0 + d, scores[jj + 2], v0 + (2 * d), scores[jj + 3], v0 + (3 * d), accRow, d);
                            }
                            for (; jj < keys; jj++)
                            {
                                CpuRowMath.Axpy(scores[jj], vTile + ((long)jj * d), accRow, d);
                            }
                        }
                    }
                    for (int r = 0; r < rowsInBlock; r++)
                    {
                        T* oRow = oHead + ((long)(i0 + r) * d);
                        long lseIndex = ((long)bh * dims.Tq) + i0 + r;
                        if (dims.VisibleKeys(i0 + r, causal) <= 0)
                        {
                            new Span<T>(oRow, d).Clear();
                            ((float*)pz)[lseIndex] = float.NegativeInfinity;
                            continue;
                        }
                        CpuRowMath.Scale(acc + (r * d), T.One / runSum[r], oRow, d);
                        ((float*)pz)[lseIndex] = float.CreateTruncating(runMax[r] + T.Log(runSum[r]));
                    }
                }
            }
        });
    }

    /// <summary>
    /// One work item per (batch, kv head): it owns dk and dv of that head and dq of the query heads that read it.
    /// Per visible (i, j): p = exp(s − lse_i); dv_j += p·dO_i; ds = p·(dO_i·v_j − D_i) with D_i = dO_i·O_i;
    /// dq_i += scale·ds·k_j; dk_j += scale·ds·q_i.
    /// </summary>
    private unsafe void AttentionBackwardCore<T>(Tensor q, Tensor k, Tensor v, Tensor output, Tensor lse, Tensor dOutput, bool causal, double scale, Tensor dq, Tensor dk, Tensor dv)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var dims = AttentionDims.Of(q, k);
        int d = dims.D;
        int group = dims.H / dims.Hkv;
        nint pq = (nint)Ptr(q), pk = (nint)Ptr(k), pv = (nint)Ptr(v), po = (nint)Ptr(output), pz = (nint)Ptr(lse);
        nint pdo = (nint)Ptr(dOutput), pdq = (nint)Ptr(dq), pdk = (nint)Ptr(dk), pdv = (nint)Ptr(dv);
        T scaleT = T.CreateTruncating(scale);
        ParallelFor((long)dims.B * dims.Hkv, (long)group * dims.Tq * dims.Tk * d, (start, end) =>
        {
            var rowLse = new T[dims.Tq];
            var rowD = new T[dims.Tq];
            for (long bkv = start; bkv < end; bkv++)
            {
                long kvOffset = bkv * dims.Tk * d;
                T* kHead = (T*)pk + kvOffset, vHead = (T*)pv + kvOffset, dkHead = (T*)pdk + kvOffset, dvHead = (T*)pdv + kvOffset;
                new Span<T>(dkHead, dims.Tk * d).Clear();
                new Span<T>(dvHead, dims.Tk * d).Clear();
                int b = (int)(bkv / dims.Hkv), kvHead = (int)(bkv % dims.Hkv);
                for (int h = kvHead * group; h < (kvHead + 1) * group; h++)
                {
                    long qOffset = (((long)b * dims.H) + h) * dims.Tq * d;
                    T* qHead = (T*)pq + qOffset, oHead = (T*)po + qOffset, doHead = (T*)pdo + qOffset, dqHead = (T*)pdq + qOffset;
                    new Span<T>(dqHead, dims.Tq * d).Clear();
                    for (int i = 0; i < dims.Tq; i++)
                    {
                        int keys = dims.VisibleKeys(i, causal);
                        rowD[i] = CpuRowMath.Dot(doHead + ((long)i * d), oHead + ((long)i * d), d);
                        // The saved lse is F32; F64 recomputes it so its gradients keep F64 accuracy.
                        rowLse[i] = keys <= 0 ? T.NegativeInfinity
                            : typeof(T) == typeof(double) ? RowScoresLogSumExp(qHead + ((long)i * d), kHead, keys, d, scaleT)
                            : T.CreateTruncating(((float*)pz)[(((long)b * dims.H + h) * dims.Tq) + i]);
                    }
                    // Key tiles outside, queries inside: a tile of k, v, dk, dv stays in cache while every query visits it.
                    for (int j0 = 0; j0 < dims.Tk; j0 += AttentionKeyTile)
                    {
                        int tileEnd = Math.Min(dims.Tk, j0 + AttentionKeyTile);
                        for (int i = 0; i < dims.Tq; i++)
                        {
                            int keys = Math.Min(tileEnd, dims.VisibleKeys(i, causal));
                            if (keys <= j0)
                            {
                                continue;
                            }
                            T* qRow = qHead + ((long)i * d), doRow = doHead + ((long)i * d), dqRow = dqHead + ((long)i * d);
                            int j = j0;
                            // Four keys at a time: q·k and dO·v as four-way dot products, dq as one four-row update.
                            for (; j <= keys - 4; j += 4)
                            {
                                T* k0 = kHead + ((long)j * d);
                                T* v0 = vHead + ((long)j * d);
                                CpuRowMath.Dot4(qRow, k0, k0 + d, k0 + (2 * d), k0 + (3 * d), d, out T s0, out T s1, out T s2, out T s3);
                                CpuRowMath.Dot4(doRow, v0, v0 + d, v0 + (2 * d), v0 + (3 * d), d, out T dp0, out T dp1, out T dp2, out T dp3);
                                T p0 = T.Exp((scaleT * s0) - rowLse[i]), p1 = T.Exp((scaleT * s1) - rowLse[i]);
                                T p2 = T.Exp((scaleT * s2) - rowLse[i]), p3 = T.Exp((scaleT * s3) - rowLse[i]);
                                T ds0 = scaleT * p0 * (dp0 - rowD[i]), ds1 = scaleT * p1 * (dp1 - rowD[i]);
                                T ds2 = scaleT * p2 * (dp2 - rowD[i]), ds3 = scaleT * p3 * (dp3 - rowD[i]);
                                CpuRowMath.Axpy4(ds0, k0, ds1, k0 + d, ds2, k0 + (2 * d), ds3, k0 + (3 * d), dqRow, d);
                                T* dk0 = dkHead + ((long)j * d);
                                T* dv0 = dvHead + ((long)j * d);
                                CpuRowMath.Axpy(p0, doRow, dv0, d);
                                CpuRowMath.Axpy(p1, doRow, dv0 + d, d);
                                CpuRowMath.Axpy(p2, doRow, dv0 + (2 * d), d);
                                CpuRowMath.Axpy(p3, doRow, dv0 + (3 * d), d);
                                CpuRowMath.Axpy(ds0, qRow, dk0, d);
                                CpuRowMath.Axpy(ds1, qRow, dk0 + d, d);
                                CpuRowMath.Axpy(ds2, qRow, dk0 + (2 * d), d);
                                CpuRowMath.Axpy(ds3, qRow, dk0 + (3 * d), d);
                            }
                            for (; j < keys; j++)
                            {
                                T* kRow = kHead + ((long)j * d);
                                T p = T.Exp((scaleT * CpuRowMath.Dot(qRow, kRow, d)) - rowLse[i]);
                                CpuRowMath.Axpy(p, doRow, dvHead + ((long)j * d), d);
                                T ds = scaleT * p * (CpuRowMath.Dot(doRow, vHead + ((long)j * d), d) - rowD[i]);
                                CpuRowMath.Axpy(ds, kRow, dqRow, d);
                                CpuRowMath.Axpy(ds, qRow, dkHead + ((long)j * d), d);
                            }
                        }
                    }
                }
            }
        });
    }

    /// <summary>log Σ_j exp(scale·q·k_j) over keys 0..keys−1, stable.</summary>
    private static unsafe T RowScoresLogSumExp<T>(T* qRow, T* kHead, int keys, int d, T scale)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        T max = T.NegativeInfinity;
        for (int j = 0; j < keys; j++)
        {
            max = T.Max(max, scale * CpuRowMath.Dot(qRow, kHead + ((long)j * d), d));
        }
        T sum = T.Zero;
        for (int j = 0; j < keys; j++)
        {
            sum += T.Exp((scale * CpuRowMath.Dot(qRow, kHead + ((long)j * d), d)) - max);
        }
        return max + T.Log(sum);
    }
}
