using ILGPU;

namespace Hal.Backends.Cuda.Kernels;

/// <summary>
/// Reductions, arg-max, the ILGPU GEMM, index kernels and Philox random numbers.
/// Legend: an axis op sees x as [outer, n, inner]; GEMM c[batch, M, N] = a[batch|1, M, K] · b[batch|1, K, N].
/// </summary>
internal static class TensorKernels
{
    // ---- reductions ----------------------------------------------------------------------------------------

    /// <summary>One thread per output (outer, inner): Sum/Mean accumulate in double (long for integers, wrapping like the type).</summary>
    public static void Reduce(Index1D index, DeviceTensor x, DeviceTensor y, long start, long n, long inner, int op)
    {
        long o = start + index;
        long outerIndex = o / inner;
        long innerIndex = o % inner;
        long first = outerIndex * n * inner + innerIndex;
        if (!DTypeCode.IsFloat(x.DType))
        {
            long acc = op == (int)ReduceOp.Max ? long.MinValue : op == (int)ReduceOp.Min ? long.MaxValue : 0;
            for (long j = 0; j < n; j++)
            {
                long v = DeviceMath.LoadInt(x, first + (j * inner));
                acc = op == (int)ReduceOp.Max ? (v > acc ? v : acc) : op == (int)ReduceOp.Min ? (v < acc ? v : acc) : acc + v;
            }
            // Max/Min of an empty axis saturate to the type's minimum/maximum; sums wrap like the type.
            DeviceMath.StoreInt(y, o, acc, saturate: op != (int)ReduceOp.Sum);
            return;
        }
        double total = op == (int)ReduceOp.Max ? double.NegativeInfinity : op == (int)ReduceOp.Min ? double.PositiveInfinity : 0.0;
        for (long j = 0; j < n; j++)
        {
            double v = DeviceMath.Load(x, first + (j * inner));
            if (op == (int)ReduceOp.Max || op == (int)ReduceOp.Min)
            {
                if (double.IsNaN(v))
                {
                    total = v;
                    break;
                }
                total = op == (int)ReduceOp.Max ? (v > total ? v : total) : (v < total ? v : total);
            }
            else
            {
                total += v;
            }
        }
        DeviceMath.Store(y, o, op == (int)ReduceOp.Mean ? total / n : total);
    }

    /// <summary>First index of the maximum along the axis; the first NaN counts as the maximum.</summary>
    public static void ArgMax(Index1D index, DeviceTensor x, DeviceTensor indices, long start, long n, long inner)
    {
        long o = start + index;
        long first = (o / inner * n * inner) + (o % inner);
        long best = 0;
        if (!DTypeCode.IsFloat(x.DType))
        {
            long bestValue = DeviceMath.LoadInt(x, first);
            for (long j = 1; j < n; j++)
            {
                long v = DeviceMath.LoadInt(x, first + (j * inner));
                if (v > bestValue)
                {
                    bestValue = v;
                    best = j;
                }
            }
        }
        else
        {
            double bestValue = DeviceMath.Load(x, first);
            for (long j = 1; j < n && !double.IsNaN(bestValue); j++)
            {
                double v = DeviceMath.Load(x, first + (j * inner));
                if (v > bestValue || double.IsNaN(v))
                {
                    bestValue = v;
                    best = j;
                }
            }
        }
        DeviceMath.StoreInt(indices, o, best, saturate: false);
    }

    // ---- GEMM ----------------------------------------------------------------------------------------------

    /// <summary>GEMM sizes and flags for the ILGPU kernel.</summary>
    internal struct GemmShape
    {
        public int M, N, K;
        public int TransA, TransB;
        public long BatchStrideA, BatchStrideB;
        public double Alpha, Beta;
        public int HasBias;
    }

    /// <summary>
    /// One thread per element of c. F64 accumulates in F64, every other dtype in F32 (as cuBLAS does with
    /// CUBLAS_COMPUTE_32F); alpha, beta and the bias apply in double, then one rounding to c's dtype.
    /// </summary>
    public static void Gemm(Index1D index, DeviceTensor a, DeviceTensor b, DeviceTensor c, DeviceTensor bias, long start, GemmShape s)
    {
        long e = start + index;
        long mn = (long)s.M * s.N;
        long batch = e / mn;
        long within = e % mn;
        long row = within / s.N;
        long col = within % s.N;
        long baseA = batch * s.BatchStrideA;
        long baseB = batch * s.BatchStrideB;
        double product;
        if (a.DType == DTypeCode.F64)
        {
            double acc = 0;
            for (int k = 0; k < s.K; k++)
            {
                long ia = baseA + (s.TransA != 0 ? ((long)k * s.M) + row : (row * s.K) + k);
                long ib = baseB + (s.TransB != 0 ? (col * s.K) + k : ((long)k * s.N) + col);
                acc += DeviceMath.Load(a, ia) * DeviceMath.Load(b, ib);
            }
            product = acc;
        }
        else
        {
            float acc = 0;
            for (int k = 0; k < s.K; k++)
            {
                long ia = baseA + (s.TransA != 0 ? ((long)k * s.M) + row : (row * s.K) + k);
                long ib = baseB + (s.TransB != 0 ? (col * s.K) + k : ((long)k * s.N) + col);
                acc += (float)DeviceMath.Load(a, ia) * (float)DeviceMath.Load(b, ib);
            }
            product = acc;
        }
        double result = s.Alpha * product;
        if (s.Beta != 0)
        {
            result += s.Beta * DeviceMath.Load(c, e);
        }
        if (s.HasBias != 0)
        {
            result += DeviceMath.Load(bias, col);
        }
        DeviceMath.Store(c, e, result);
    }

    /// <summary>c[..., n] += bias[n] after a cuBLAS GEMM (one rounding to c's dtype).</summary>
    public static void AddBias(Index1D index, DeviceTensor c, DeviceTensor bias, long start, long n)
    {
        long e = start + index;
        DeviceMath.Store(c, e, DeviceMath.Load(c, e) + DeviceMath.Load(bias, e % n));
    }

    // ---- index kernels -------------------------------------------------------------------------------------

    /// <summary>Copies one element exactly (through long for integer dtypes, double for float dtypes).</summary>
    public static void CopyElement(DeviceTensor src, long si, DeviceTensor dst, long di)
    {
        if (DTypeCode.IsFloat(src.DType))
        {
            DeviceMath.Store(dst, di, DeviceMath.Load(src, si));
        }
        else
        {
            DeviceMath.StoreInt(dst, di, DeviceMath.LoadInt(src, si), saturate: false);
        }
    }

    /// <summary>dst[o, l, i] = src[o, index[l], i]; src axis length <paramref name="srcAxis"/>, index length <paramref name="count"/>.</summary>
    public static void IndexSelect(Index1D index, DeviceTensor src, DeviceTensor idx, DeviceTensor dst, long start, long srcAxis, long count, long inner)
    {
        long e = start + index;
        long i = e % inner;
        long l = e / inner % count;
        long o = e / inner / count;
        long s = DeviceMath.LoadInt(idx, l);
        CopyElement(src, ((o * srcAxis) + s) * inner + i, dst, e);
    }

    /// <summary>dst[o, s, i] += Σ over l with index[l] = s of src[o, l, i], in l order (deterministic, no atomics).</summary>
    public static void IndexAdd(Index1D index, DeviceTensor src, DeviceTensor idx, DeviceTensor dst, long start, long dstAxis, long count, long inner)
    {
        long e = start + index;
        long i = e % inner;
        long s = e / inner % dstAxis;
        long o = e / inner / dstAxis;
        bool isFloat = DTypeCode.IsFloat(dst.DType);
        double accF = isFloat ? DeviceMath.Load(dst, e) : 0;
        long accI = isFloat ? 0 : DeviceMath.LoadInt(dst, e);
        for (long l = 0; l < count; l++)
        {
            if (DeviceMath.LoadInt(idx, l) == s)
            {
                long at = ((o * count) + l) * inner + i;
                if (isFloat)
                {
                    accF += DeviceMath.Load(src, at);
                }
                else
                {
                    accI += DeviceMath.LoadInt(src, at);
                }
            }
        }
        if (isFloat)
        {
            DeviceMath.Store(dst, e, accF);
        }
        else
        {
            DeviceMath.StoreInt(dst, e, accI, saturate: false);
        }
    }

    /// <summary>dst[o, j, i] = src[o, index[o, j, i], i].</summary>
    public static void Gather(Index1D index, DeviceTensor src, DeviceTensor idx, DeviceTensor dst, long start, long srcAxis, long count, long inner)
    {
        long e = start + index;
        long i = e % inner;
        long o = e / inner / count;
        long s = DeviceMath.LoadInt(idx, e);
        CopyElement(src, ((o * srcAxis) + s) * inner + i, dst, e);
    }

    /// <summary>dst[o, s, i] += Σ over j with index[o, j, i] = s of src[o, j, i], in j order.</summary>
    public static void ScatterAdd(Index1D index, DeviceTensor src, DeviceTensor idx, DeviceTensor dst, long start, long dstAxis, long count, long inner)
    {
        long e = start + index;
        long i = e % inner;
        long s = e / inner % dstAxis;
        long o = e / inner / dstAxis;
        bool isFloat = DTypeCode.IsFloat(dst.DType);
        double accF = isFloat ? DeviceMath.Load(dst, e) : 0;
        long accI = isFloat ? 0 : DeviceMath.LoadInt(dst, e);
        for (long j = 0; j < count; j++)
        {
            long at = ((o * count) + j) * inner + i;
            if (DeviceMath.LoadInt(idx, at) == s)
            {
                if (isFloat)
                {
                    accF += DeviceMath.Load(src, at);
                }
                else
                {
                    accI += DeviceMath.LoadInt(src, at);
                }
            }
        }
        if (isFloat)
        {
            DeviceMath.Store(dst, e, accF);
        }
        else
        {
            DeviceMath.StoreInt(dst, e, accI, saturate: false);
        }
    }

    // ---- random numbers ------------------------------------------------------------------------------------

    /// <summary>Element i = Philox4x32-10 lane (offset + i) % 4 of block (offset + i) / 4, as Numerics.Philox specifies.</summary>
    public static void Random(Index1D index, DeviceTensor dst, long start, ulong seed, ulong offset, double a, double b, int normal)
    {
        long i = start + index;
        ulong g = offset + (ulong)i;
        ulong block = g / 4;
        int lane = (int)(g % 4);
        uint c0 = (uint)block, c1 = (uint)(block >> 32), c2 = 0, c3 = 0;
        uint k0 = (uint)seed, k1 = (uint)(seed >> 32);
        for (int round = 0; round < 10; round++)
        {
            if (round > 0)
            {
                k0 += 0x9E3779B9;
                k1 += 0xBB67AE85;
            }
            ulong p0 = 0xD2511F53UL * c0;
            ulong p1 = 0xCD9E8D57UL * c2;
            uint hi0 = (uint)(p0 >> 32), lo0 = (uint)p0;
            uint hi1 = (uint)(p1 >> 32), lo1 = (uint)p1;
            c0 = hi1 ^ c1 ^ k0;
            c1 = lo1;
            c2 = hi0 ^ c3 ^ k1;
            c3 = lo0;
        }
        const float unitScale = 1.0f / 16777216.0f;
        if (normal == 0)
        {
            uint x = lane == 0 ? c0 : lane == 1 ? c1 : lane == 2 ? c2 : c3;
            float u = (x >> 8) * unitScale;
            if (dst.DType == DTypeCode.F64)
            {
                DeviceMath.Store(dst, i, a + ((b - a) * u));
                return;
            }
            // The spec's two F32 roundings, kept apart so no fused multiply-add joins them.
            float span = (float)b - (float)a;
            float scaled = span * u;
            DeviceMath.Store(dst, i, (float)a + scaled);
            return;
        }
        uint first = lane < 2 ? c0 : c2;
        uint second = lane < 2 ? c1 : c3;
        double u1 = ((first >> 8) + 1) * (double)unitScale;
        double u2 = (second >> 8) * (double)unitScale;
        double r = Math.Sqrt(-2.0 * Math.Log(u1));
        double theta = 2.0 * Math.PI * u2;
        double z = (lane & 1) == 0 ? r * Math.Cos(theta) : r * Math.Sin(theta);
        DeviceMath.Store(dst, i, a + (b * z));
    }
}
