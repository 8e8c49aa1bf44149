using Hal.Backends.Cuda.Kernels;
using Hal.Backends.Cuda.Native;
using ILGPU;
using ILGPU.Runtime;

namespace Hal.Backends.Cuda;

// Batched GEMM. With cuBLAS: row-major c = op(a)·op(b) is column-major cᵀ = op(b)ᵀ·op(a)ᵀ, so the operands swap
// (b first) and M/N swap, with no data movement; a broadcast operand gets batch stride 0. Without cuBLAS (the
// emulator, or a machine without the library) the ILGPU kernel computes one element per thread.
// Legend: a [batch|1, M, K] ([.., K, M] when transA), b [batch|1, K, N] ([.., N, K] when transB), c [batch, M, N].
internal sealed partial class CudaKernels
{
    public void Gemm(Tensor a, Tensor b, Tensor c, bool transA, bool transB, double alpha, double beta, Tensor? bias)
    {
        int m = c.Shape[-2];
        int n = c.Shape[-1];
        int k = transA ? a.Shape[-2] : a.Shape[-1];
        long batch = c.Shape.Product(0, c.Rank - 2);
        long batchA = a.Shape.Product(0, a.Rank - 2);
        long batchB = b.Shape.Product(0, b.Rank - 2);
        long strideA = batchA == 1 ? 0 : (long)m * k;
        long strideB = batchB == 1 ? 0 : (long)k * n;
        if (c.ElementCount == 0)
        {
            return;
        }
        if (_cublas is not null && batch <= int.MaxValue)
        {
            GemmCublas(a, b, c, transA, transB, alpha, beta, m, n, k, (int)batch, strideA, strideB);
            if (bias is not null)
            {
                var add = Load("add_bias", acc => acc.LoadAutoGroupedStreamKernel<Index1D, DeviceTensor, DeviceTensor, long, long>(TensorKernels.AddBias));
                var ct = Arg(c);
                var bt = Arg(bias);
                Run(() => Chunked(c.ElementCount, (count, s) => add(count, ct, bt, s, n)), "gemm bias");
            }
            return;
        }
        var kernel = Load("gemm", acc => acc.LoadAutoGroupedStreamKernel<Index1D, DeviceTensor, DeviceTensor, DeviceTensor, DeviceTensor, long, TensorKernels.GemmShape>(TensorKernels.Gemm));
        var shape = new TensorKernels.GemmShape
        {
            M = m,
            N = n,
            K = k,
            TransA = transA ? 1 : 0,
            TransB = transB ? 1 : 0,
            BatchStrideA = strideA,
            BatchStrideB = strideB,
            Alpha = alpha,
            Beta = beta,
            HasBias = bias is null ? 0 : 1,
        };
        var at = Arg(a);
        var bt2 = Arg(b);
        var ct2 = Arg(c);
        var biasT = bias is null ? Arg(c) : Arg(bias);
        Run(() => Chunked(c.ElementCount, (count, s) => kernel(count, at, bt2, ct2, biasT, s, shape)), "gemm");
    }

    private void GemmCublas(Tensor a, Tensor b, Tensor c, bool transA, bool transB, double alpha, double beta, int m, int n, int k, int batch, long strideA, long strideB)
    {
        IntPtr pa = Address(a);
        IntPtr pb = Address(b);
        IntPtr pc = Address(c);
        // Leading dimensions of the row-major operands read as column-major matrices.
        int lda = transA ? m : k;
        int ldb = transB ? k : n;
        long strideC = (long)m * n;
        _accelerator.Bind();
        if (k == 0)
        {
            // cuBLAS rejects k = 0 on some versions; c = beta·c is a scaling then.
            var scale = Load("gemm", acc => acc.LoadAutoGroupedStreamKernel<Index1D, DeviceTensor, DeviceTensor, DeviceTensor, DeviceTensor, long, TensorKernels.GemmShape>(TensorKernels.Gemm));
            var shape = new TensorKernels.GemmShape { M = m, N = n, K = 0, Alpha = alpha, Beta = beta };
            var ct = Arg(c);
            Run(() => Chunked(c.ElementCount, (count, s) => scale(count, ct, ct, ct, ct, s, shape)), "gemm");
            return;
        }
        if (a.DType == DType.F64)
        {
            _cublas!.DgemmStridedBatched(transB, transA, n, m, k, alpha, pb, ldb, strideB, pa, lda, strideA, beta, pc, n, strideC, batch);
            return;
        }
        int type = a.DType switch
        {
            DType.F32 => Cublas.CudaR32F,
            DType.F16 => Cublas.CudaR16F,
            _ => Cublas.CudaR16BF,
        };
        _cublas!.GemmStridedBatchedEx(transB, transA, n, m, k, (float)alpha, pb, type, ldb, strideB, pa, lda, strideA, (float)beta, pc, n, strideC, batch);
    }

    private static IntPtr Address(Tensor t) => ((CudaBuffer)t.Buffer).DevicePointer + (nint)t.OffsetBytes;
}
