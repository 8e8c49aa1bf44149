using ILGPU;

namespace Hal.Backends.Cuda.Kernels;

/// <summary>
/// Scaled-dot-product attention. Forward: each group takes <see cref="QueryTile"/> query rows of one (batch, head);
/// key/value rows come through shared memory <see cref="KeyTile"/> at a time, and each thread keeps an online
/// softmax (running max, running sum, rescaled output row) in double, then writes out and the log-sum-exp.
/// Backward (from the saved lse): dq per query row, dk/dv per key row summed over the query heads that share it,
/// both without atomics, so results are deterministic.
/// Legend: q [B, H, Tq, D], k/v [B, Hkv, Tk, D], out [B, H, Tq, D], lse [B, H, Tq]; query i sees key j when
/// causal is off or j ≤ i + (Tk − Tq).
/// </summary>
internal static class AttentionKernels
{
    /// <summary>Largest head size the fused kernels take (longer heads use the composite fallback).</summary>
    public const int MaxHeadDim = 128;

    /// <summary>Query rows per group (one thread each).</summary>
    public const int QueryTile = 32;

    /// <summary>Key rows per shared-memory tile.</summary>
    public const int KeyTile = 16;

    /// <summary>Sizes of one attention call.</summary>
    internal struct AttentionShape
    {
        public int Batch, Heads, KvHeads, QueryLen, KeyLen, HeadDim, Causal;
        public double Scale;
    }

    private static bool Sees(AttentionShape s, long i, long j) => s.Causal == 0 || j <= i + (s.KeyLen - s.QueryLen);

    public static void Forward(DeviceTensor q, DeviceTensor k, DeviceTensor v, DeviceTensor output, DeviceTensor lse, AttentionShape s)
    {
        var keys = SharedMemory.Allocate<double>(KeyTile * MaxHeadDim);
        var values = SharedMemory.Allocate<double>(KeyTile * MaxHeadDim);
        var acc = LocalMemory.Allocate<double>(MaxHeadDim);
        var query = LocalMemory.Allocate<double>(MaxHeadDim);
        int tilesPerHead = (s.QueryLen + QueryTile - 1) / QueryTile;
        long bh = Grid.IdxX / tilesPerHead;
        long i = ((Grid.IdxX % tilesPerHead) * QueryTile) + Group.IdxX;
        long b = bh / s.Heads;
        long h = bh % s.Heads;
        long kvHead = h / (s.Heads / s.KvHeads);
        long kvBase = ((b * s.KvHeads) + kvHead) * s.KeyLen * s.HeadDim;
        bool active = i < s.QueryLen;
        long qRow = ((bh * s.QueryLen) + i) * s.HeadDim;
        int d = s.HeadDim;
        for (int c = 0; c < d; c++)
        {
            acc[c] = 0;
            query[c] = active ? DeviceMath.Load(q, qRow + c) * s.Scale : 0;
        }
        double runningMax = double.NegativeInfinity;
        double runningSum = 0;
        for (long tile = 0; tile < s.KeyLen; tile += KeyTile)
        {
            int count = (int)(s.KeyLen - tile < KeyTile ? s.KeyLen - tile : KeyTile);
            for (int e = Group.IdxX; e < count * d; e += Group.DimX)
            {
                long at = kvBase + ((tile + (e / d)) * d) + (e % d);
                keys[e] = DeviceMath.Load(k, at);
                values[e] = DeviceMath.Load(v, at);
            }
            Group.Barrier();
            if (active)
            {
                for (int jj = 0; jj < count; jj++)
                {
                    if (!Sees(s, i, tile + jj))
                    {
                        continue;
                    }
                    double score = 0;
                    for (int c = 0; c < d; c++)
                    {
                        score += query[c] * keys[(jj * d) + c];
                    }
                    double newMax = score > runningMax ? score : runningMax;
                    double correction = Math.Exp(runningMax - newMax);
                    double p = Math.Exp(score - newMax);
                    runningSum = (runningSum * correction) + p;
                    for (int c = 0; c < d; c++)
                    {
                        acc[c] = (acc[c] * correction) + (p * values[(jj * d) + c]);
                    }
                    runningMax = newMax;
                }
            }
            Group.Barrier();
        }
        if (!active)
        {
            return;
        }
        bool none = runningSum == 0;
        for (int c = 0; c < d; c++)
        {
            DeviceMath.Store(output, qRow + c, none ? 0.0 : acc[c] / runningSum);
        }
        DeviceMath.Store(lse, (bh * s.QueryLen) + i, none ? double.NegativeInfinity : runningMax + Math.Log(runningSum));
    }

    /// <summary>delta[b, h, i] = Σ_d dOut · out (the softmax-backward dot product of each query row).</summary>
    public static void RowDot(Index1D index, DeviceTensor output, DeviceTensor dOutput, DeviceTensor delta, long start, int headDim)
    {
        long row = start + index;
        double dot = 0;
        for (int c = 0; c < headDim; c++)
        {
            dot += DeviceMath.Load(output, (row * headDim) + c) * DeviceMath.Load(dOutput, (row * headDim) + c);
        }
        DeviceMath.Store(delta, row, dot);
    }

    /// <summary>
    /// The log-sum-exp of each query row recomputed in double (the saved one is F32), so F64 gradients keep F64
    /// accuracy; a row the forward marked −Inf (no visible key) stays −Inf.
    /// </summary>
    public static void RefineLse(Index1D index, DeviceTensor q, DeviceTensor k, DeviceTensor savedLse, DeviceTensor lse, long start, AttentionShape s)
    {
        long row = start + index;
        long bh = row / s.QueryLen;
        long i = row % s.QueryLen;
        long b = bh / s.Heads;
        long h = bh % s.Heads;
        long kvBase = ((b * s.KvHeads) + (h / (s.Heads / s.KvHeads))) * s.KeyLen * s.HeadDim;
        int d = s.HeadDim;
        double m = double.NegativeInfinity;
        double sum = 0;
        for (long j = 0; j < s.KeyLen; j++)
        {
            if (!Sees(s, i, j))
            {
                continue;
            }
            double score = 0;
            for (int c = 0; c < d; c++)
            {
                score += DeviceMath.Load(q, (row * d) + c) * DeviceMath.Load(k, kvBase + (j * d) + c);
            }
            score *= s.Scale;
            if (score > m)
            {
                sum = (sum * Math.Exp(m - score)) + 1;
                m = score;
            }
            else
            {
                sum += Math.Exp(score - m);
            }
        }
        double saved = DeviceMath.Load(savedLse, row);
        DeviceMath.Store(lse, row, double.IsNegativeInfinity(saved) || sum == 0 ? double.NegativeInfinity : m + Math.Log(sum));
    }

    /// <summary>dq[b, h, i] = scale · Σ_j p_ij (dOut_i·v_j − delta_i) k_j with p_ij = exp(scale q_i·k_j − lse_i).</summary>
    public static void QueryGrad(Index1D index, DeviceTensor q, DeviceTensor k, DeviceTensor v, DeviceTensor lse, DeviceTensor dOutput, DeviceTensor delta, DeviceTensor dq, long start, AttentionShape s)
    {
        var grad = LocalMemory.Allocate<double>(MaxHeadDim);
        long row = start + index;
        long bh = row / s.QueryLen;
        long i = row % s.QueryLen;
        long b = bh / s.Heads;
        long h = bh % s.Heads;
        long kvBase = ((b * s.KvHeads) + (h / (s.Heads / s.KvHeads))) * s.KeyLen * s.HeadDim;
        int d = s.HeadDim;
        long qRow = row * d;
        for (int c = 0; c < d; c++)
        {
            grad[c] = 0;
        }
        double l = DeviceMath.Load(lse, row);
        double dlt = DeviceMath.Load(delta, row);
        if (!double.IsNegativeInfinity(l))
        {
            for (long j = 0; j < s.KeyLen; j++)
            {
                if (!Sees(s, i, j))
                {
                    continue;
                }
                double score = 0, dp = 0;
                for (int c = 0; c < d; c++)
                {
                    score += DeviceMath.Load(q, qRow + c) * DeviceMath.Load(k, kvBase + (j * d) + c);
                    dp += DeviceMath.Load(dOutput, qRow + c) * DeviceMath.Load(v, kvBase + (j * d) + c);
                }
                double p = Math.Exp((score * s.Scale) - l);
                double ds = p * (dp - dlt) * s.Scale;
                for (int c = 0; c < d; c++)
                {
                    grad[c] += ds * DeviceMath.Load(k, kvBase + (j * d) + c);
                }
            }
        }
        for (int c = 0; c < d; c++)
        {
            DeviceMath.Store(dq, qRow + c, grad[c]);
        }
    }

    /// <summary>dk/dv of key row j of one key/value head, summed over the query heads that use it and the queries that see j.</summary>
    public static void KeyValueGrad(Index1D index, DeviceTensor q, DeviceTensor k, DeviceTensor v, DeviceTensor lse, DeviceTensor dOutput, DeviceTensor delta, DeviceTensor dk, DeviceTensor dv, long start, AttentionShape s)
    {
        var gk = LocalMemory.Allocate<double>(MaxHeadDim);
        var gv = LocalMemory.Allocate<double>(MaxHeadDim);
        long row = start + index;
        long bkv = row / s.KeyLen;
        long j = row % s.KeyLen;
        long b = bkv / s.KvHeads;
        long kvHead = bkv % s.KvHeads;
        int group = s.Heads / s.KvHeads;
        int d = s.HeadDim;
        long kRow = row * d;
        for (int c = 0; c < d; c++)
        {
            gk[c] = 0;
            gv[c] = 0;
        }
        for (int g = 0; g < group; g++)
        {
            long bh = (b * s.Heads) + (kvHead * group) + g;
            for (long i = 0; i < s.QueryLen; i++)
            {
                if (!Sees(s, i, j))
                {
                    continue;
                }
                long qRow = ((bh * s.QueryLen) + i) * d;
                double l = DeviceMath.Load(lse, (bh * s.QueryLen) + i);
                if (double.IsNegativeInfinity(l))
                {
                    continue;
                }
                double score = 0, dp = 0;
                for (int c = 0; c < d; c++)
                {
                    score += DeviceMath.Load(q, qRow + c) * DeviceMath.Load(k, kRow + c);
                    dp += DeviceMath.Load(dOutput, qRow + c) * DeviceMath.Load(v, kRow + c);
                }
                double p = Math.Exp((score * s.Scale) - l);
                double ds = p * (dp - DeviceMath.Load(delta, (bh * s.QueryLen) + i)) * s.Scale;
                for (int c = 0; c < d; c++)
                {
                    gv[c] += p * DeviceMath.Load(dOutput, qRow + c);
                    gk[c] += ds * DeviceMath.Load(q, qRow + c);
                }
            }
        }
        for (int c = 0; c < d; c++)
        {
            DeviceMath.Store(dk, kRow + c, gk[c]);
            DeviceMath.Store(dv, kRow + c, gv[c]);
        }
    }
}
