using System.Runtime.InteropServices;

namespace Hal.Backends.Cuda.Native;

/// <summary>
/// cuBLAS through function pointers of the loaded library (v2 API). Every status goes through <see cref="Check"/>,
/// which raises <see cref="CudaException"/> with the status name.
/// </summary>
internal sealed unsafe class Cublas : IDisposable
{
    // cudaDataType_t and cublasComputeType_t values from the CUDA headers.
    public const int CudaR32F = 0;
    public const int CudaR64F = 1;
    public const int CudaR16F = 2;
    public const int CudaR16BF = 14;
    public const int ComputeF32 = 68;
    public const int ComputeF64 = 70;
    public const int GemmDefault = -1;

    private readonly delegate* unmanaged<IntPtr, int> _destroy;
    private readonly delegate* unmanaged<IntPtr, IntPtr, int> _setStream;
    private readonly delegate* unmanaged<IntPtr, int, int, int, int, int, void*, IntPtr, int, int, long, IntPtr, int, int, long, void*, IntPtr, int, int, long, int, int, int, int> _gemmEx;
    private readonly delegate* unmanaged<IntPtr, int, int, int, int, int, double*, IntPtr, int, long, IntPtr, int, long, double*, IntPtr, int, long, int, int> _dgemm;
    private IntPtr _handle;

    private Cublas(IntPtr lib)
    {
        var create = (delegate* unmanaged<IntPtr*, int>)NativeLibrary.GetExport(lib, "cublasCreate_v2");
        _destroy = (delegate* unmanaged<IntPtr, int>)NativeLibrary.GetExport(lib, "cublasDestroy_v2");
        _setStream = (delegate* unmanaged<IntPtr, IntPtr, int>)NativeLibrary.GetExport(lib, "cublasSetStream_v2");
        _gemmEx = (delegate* unmanaged<IntPtr, int, int, int, int, int, void*, IntPtr, int, int, long, IntPtr, int, int, long, void*, IntPtr, int, int, long, int, int, int, int>)
            NativeLibrary.GetExport(lib, "cublasGemmStridedBatchedEx");
        _dgemm = (delegate* unmanaged<IntPtr, int, int, int, int, int, double*, IntPtr, int, long, IntPtr, int, long, double*, IntPtr, int, long, int, int>)
            NativeLibrary.GetExport(lib, "cublasDgemmStridedBatched");
        IntPtr h;
        Check(create(&h), "cublasCreate");
        _handle = h;
    }

    /// <summary>Where the library was found, or why not (for the probe).</summary>
    public static bool TryLocate(out string whereOrWhy)
    {
        bool ok = CudaLibraries.TryLoad("cublas", CudaLibraries.CublasNames, out _, out string tried);
        whereOrWhy = ok ? tried : $"cuBLAS not found (libcublas.so.13/.12; set {CudaLibraries.PathVariable} to its folder)";
        return ok;
    }

    /// <summary>Opens a handle in the current CUDA context, or returns null when cuBLAS is absent.</summary>
    public static Cublas? TryCreate()
    {
        return CudaLibraries.TryLoad("cublas", CudaLibraries.CublasNames, out IntPtr lib, out _) ? new Cublas(lib) : null;
    }

    /// <summary>Queues later calls on <paramref name="stream"/> (a CUstream).</summary>
    public void SetStream(IntPtr stream) => Check(_setStream(_handle, stream), "cublasSetStream");

    /// <summary>Column-major strided batched GEMM with F32 scalars and F32 accumulation (F32, F16, BF16 storage).</summary>
    public void GemmStridedBatchedEx(bool transA, bool transB, int m, int n, int k, float alpha, IntPtr a, int dataType, int lda, long strideA,
        IntPtr b, int ldb, long strideB, float beta, IntPtr c, int ldc, long strideC, int batch)
    {
        Check(_gemmEx(_handle, transA ? 1 : 0, transB ? 1 : 0, m, n, k, &alpha, a, dataType, lda, strideA, b, dataType, ldb, strideB,
            &beta, c, dataType, ldc, strideC, batch, ComputeF32, GemmDefault), "cublasGemmStridedBatchedEx");
    }

    /// <summary>Column-major strided batched F64 GEMM.</summary>
    public void DgemmStridedBatched(bool transA, bool transB, int m, int n, int k, double alpha, IntPtr a, int lda, long strideA,
        IntPtr b, int ldb, long strideB, double beta, IntPtr c, int ldc, long strideC, int batch)
    {
        Check(_dgemm(_handle, transA ? 1 : 0, transB ? 1 : 0, m, n, k, &alpha, a, lda, strideA, b, ldb, strideB, &beta, c, ldc, strideC, batch),
            "cublasDgemmStridedBatched");
    }

    /// <summary>Raises <see cref="CudaException"/> for a non-success cublasStatus_t.</summary>
    public static void Check(int status, string what)
    {
        if (status != 0)
        {
            throw new CudaException("cublas", status, StatusName(status), what);
        }
    }

    /// <summary>The cublasStatus_t name.</summary>
    public static string StatusName(int status) => status switch
    {
        0 => "CUBLAS_STATUS_SUCCESS",
        1 => "CUBLAS_STATUS_NOT_INITIALIZED",
        3 => "CUBLAS_STATUS_ALLOC_FAILED",
        7 => "CUBLAS_STATUS_INVALID_VALUE",
        8 => "CUBLAS_STATUS_ARCH_MISMATCH",
        11 => "CUBLAS_STATUS_MAPPING_ERROR",
        13 => "CUBLAS_STATUS_EXECUTION_FAILED",
        14 => "CUBLAS_STATUS_INTERNAL_ERROR",
        15 => "CUBLAS_STATUS_NOT_SUPPORTED",
        16 => "CUBLAS_STATUS_LICENSE_ERROR",
        _ => $"CUBLAS_STATUS_{status}",
    };

    /// <summary>Destroys the handle (idempotent).</summary>
    public void Dispose()
    {
        if (_handle != IntPtr.Zero)
        {
            _ = _destroy(_handle);
            _handle = IntPtr.Zero;
        }
    }
}
