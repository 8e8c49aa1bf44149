using System.Numerics;
using System.Runtime.InteropServices;
using Hal.Backends.Cpu.Gemm;
using Hal.Numerics;

namespace Hal.Backends.Cpu;

// Legend: a [batchA, M, K] ([batchA, K, M] when transA), b [batchB, K, N] ([batchB, N, K] when transB),
// c [batch, M, N], bias [N]; batchA and batchB are batch or 1 (broadcast).

internal sealed partial class CpuKernels
{
    // 256-bit kernels. kc = 384 keeps a kc × 16 B strip (24 KiB) within a 32–48 KiB L1 and a 144 × kc A block
    // (216 KiB) within L2; the K × 2048 B panel sits in L3. Measured on 1024³ and 2048³ (docs/performance.md): 256,
    // 512 and 768 for kc and 96–288 for mc were within a few percent of each other.
    private static readonly GemmBlocking F32Blocking = new(Kc: 384, Mc: 144, Nc: 2048);

    // Doubles are twice as wide: the same cache budgets with half the depth.
    private static readonly GemmBlocking F64Blocking = new(Kc: 256, Mc: 72, Nc: 2048);

    // AVX-512 12 × 32 (F32) / 12 × 16 (F64) tiles: a B strip is 128 bytes per k, so kc = 256 (F32) keeps it at
    // 32 KiB within the 48 KiB L1 next to the 12 KiB A strip, and kc = 192 (F64: 24 KiB B + 18 KiB A) does the same;
    // the 192 × kc A block sits in the 2 MiB L2 and the K × 2048 B panel in L3. kc 192–768, mc 96–576 and nc
    // 256–2048 measured alike at 1024³ (docs/performance.md).
    private static readonly GemmBlocking F32Blocking512 = new(Kc: 256, Mc: 192, Nc: 2048);
    private static readonly GemmBlocking F64Blocking512 = new(Kc: 192, Mc: 192, Nc: 2048);

    /// <summary>Vector width of the GEMM micro-kernels this instance runs: 512 (AVX-512F) or 256.</summary>
    internal int GemmVectorBits { get; }

    public unsafe void Gemm(Tensor a, Tensor b, Tensor c, bool transA, bool transB, double alpha, double beta, Tensor? bias)
    {
        var shape = new GemmShape(a, b, c, transA, transB);
        byte* pa = ElementPointer(a);
        byte* pb = ElementPointer(b);
        byte* pc = ElementPointer(c);
        byte* pbias = bias is null ? null : ElementPointer(bias);
        switch (c.DType)
        {
            case DType.F32 when GemmVectorBits == 512:
                RunBatches<float, Avx512Kernel12x2V<float>, F32Loader>(shape, pa, pb, (float*)pc, (float)alpha, (float)beta, (float*)pbias, F32Blocking512);
                break;
            case DType.F32:
                RunBatches<float, F32Kernel6x16, F32Loader>(shape, pa, pb, (float*)pc, (float)alpha, (float)beta, (float*)pbias, F32Blocking);
                break;
            case DType.F64 when GemmVectorBits == 512:
                RunBatches<double, Avx512Kernel12x2V<double>, F64Loader>(shape, pa, pb, (double*)pc, alpha, beta, (double*)pbias, F64Blocking512);
                break;
            case DType.F64:
                RunBatches<double, F64Kernel6x8, F64Loader>(shape, pa, pb, (double*)pc, alpha, beta, (double*)pbias, F64Blocking);
                break;
            case DType.F16:
                RunBatches16<F16Loader>(shape, pa, pb, (ushort*)pc, (float)alpha, (float)beta, (ushort*)pbias, HalfConvert.FloatToF16);
                break;
            case DType.BF16:
                RunBatches16<Bf16Loader>(shape, pa, pb, (ushort*)pc, (float)alpha, (float)beta, (ushort*)pbias, HalfConvert.FloatToBf16);
                break;
            default:
                throw new DTypeNotSupportedException("gemm", c.DType, "cpu", "GEMM supports F32, F64, F16 and BF16");
        }
    }

    private static unsafe byte* ElementPointer(Tensor t) => (byte*)((HostBuffer)t.Buffer).Pointer + t.OffsetBytes;

    /// <summary>Runs every matrix of the batch: matrices in parallel when each is small, else one after another with a parallel engine.</summary>
    private unsafe void RunBatches<T, TKernel, TLoad>(GemmShape s, byte* a, byte* b, T* c, T alpha, T beta, T* bias, GemmBlocking blocking)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
        where TKernel : IGemmMicroKernel<T>
        where TLoad : IElementLoader<T>
    {
        int size = sizeof(T);
        void RunOne(long i, int threads) =>
            CpuGemm.Run<T, TKernel, TLoad>(
                s.OperandA(a + (s.BatchStrideA * i * size)), s.OperandB(b + (s.BatchStrideB * i * size)),
                c + (s.BatchStrideC * i), s.N, s.M, s.N, s.K, alpha, beta, bias, threads, blocking);
        RunBatchLoop(s, RunOne);
    }

    /// <summary>F16/BF16: widen while packing, accumulate in an F32 scratch matrix, then c = round(acc + beta·c) (RNE).</summary>
    private unsafe void RunBatches16<TLoad>(GemmShape s, byte* a, byte* b, ushort* c, float alpha, float beta, ushort* bias, Func<float, ushort> round)
        where TLoad : IElementLoader<float>
    {
        float[]? biasF32 = null;
        if (bias != null)
        {
            biasF32 = new float[s.N];
            for (int j = 0; j < s.N; j++)
            {
                biasF32[j] = TLoad.Load(bias, j);
            }
        }
        void RunOne(long i, int threads)
        {
            float* acc = (float*)NativeMemory.Alloc((nuint)Math.Max(1, s.BatchStrideC), sizeof(float));
            try
            {
                fixed (float* pbias = biasF32)
                {
                    var opA = s.OperandA(a + (s.BatchStrideA * i * 2));
                    var opB = s.OperandB(b + (s.BatchStrideB * i * 2));
                    if (GemmVectorBits == 512)
                    {
                        CpuGemm.Run<float, Avx512Kernel12x2V<float>, TLoad>(opA, opB, acc, s.N, s.M, s.N, s.K, alpha, 0f, pbias, threads, F32Blocking512);
                    }
                    else
                    {
                        CpuGemm.Run<float, F32Kernel6x16, TLoad>(opA, opB, acc, s.N, s.M, s.N, s.K, alpha, 0f, pbias, threads, F32Blocking);
                    }
                }
                ushort* dst = c + (s.BatchStrideC * i);
                for (long e = 0; e < s.BatchStrideC; e++)
                {
                    float v = acc[e];
                    if (beta != 0)
                    {
                        v += beta * TLoad.Load(dst, e);
                    }
                    dst[e] = round(v);
                }
            }
            finally
            {
                NativeMemory.Free(acc);
            }
        }
        RunBatchLoop(s, RunOne);
    }

    private void RunBatchLoop(GemmShape s, Action<long, int> runOne)
    {
        long work = (long)s.M * s.N * s.K;
        if (s.Batch > 1 && Threads > 1 && work <= CpuGemm.SerialWork)
        {
            Parallel.For(0L, s.Batch, new ParallelOptions { MaxDegreeOfParallelism = Threads }, i => runOne(i, 1));
            return;
        }
        for (long i = 0; i < s.Batch; i++)
        {
            runOne(i, Threads);
        }
    }

    /// <summary>Sizes, batch strides (elements) and operand layouts of one validated GEMM call.</summary>
    private readonly struct GemmShape
    {
        public GemmShape(Tensor a, Tensor b, Tensor c, bool transA, bool transB)
        {
            M = c.Shape[-2];
            N = c.Shape[-1];
            K = transA ? a.Shape[-2] : a.Shape[-1];
            TransA = transA;
            TransB = transB;
            Batch = c.Shape.Product(0, c.Rank - 2);
            long matrixA = (long)M * K;
            long matrixB = (long)K * N;
            BatchStrideA = a.Shape.Product(0, a.Rank - 2) == 1 ? 0 : matrixA;
            BatchStrideB = b.Shape.Product(0, b.Rank - 2) == 1 ? 0 : matrixB;
            BatchStrideC = (long)M * N;
        }

        public int M { get; }

        public int N { get; }

        public int K { get; }

        public bool TransA { get; }

        public bool TransB { get; }

        public long Batch { get; }

        public long BatchStrideA { get; }

        public long BatchStrideB { get; }

        public long BatchStrideC { get; }

        /// <summary>op(A) as a logical [M, K] matrix.</summary>
        public unsafe GemmOperand OperandA(byte* data) => TransA ? new GemmOperand(data, 1, M) : new GemmOperand(data, K, 1);

        /// <summary>op(B) as a logical [K, N] matrix.</summary>
        public unsafe GemmOperand OperandB(byte* data) => TransB ? new GemmOperand(data, 1, K) : new GemmOperand(data, N, 1);
    }
}
