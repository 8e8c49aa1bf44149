namespace Hal.Backends.Cuda;

/// <summary>
/// A CUDA driver, cuBLAS or NCCL call returned an error status. <see cref="StatusName"/> is the library's own name
/// for it (<c>CUDA_ERROR_OUT_OF_MEMORY</c>, <c>CUBLAS_STATUS_NOT_SUPPORTED</c>, <c>ncclUnhandledCudaError</c>).
/// </summary>
public sealed class CudaException : HalException
{
    /// <summary>Creates the exception for <paramref name="library"/>'s status <paramref name="status"/> while doing <paramref name="what"/>.</summary>
    public CudaException(string library, int status, string statusName, string what, Exception? inner = null)
        : base($"{library}: {what} failed with {statusName} ({status})", inner)
    {
        Library = library;
        Status = status;
        StatusName = statusName;
    }

    /// <summary>Wraps an error the ILGPU CUDA runtime raised, keeping the driver's status name.</summary>
    internal static CudaException FromIlgpu(ILGPU.Runtime.Cuda.CudaException e, string what)
    {
        string name = e.Error;
        int code = Enum.TryParse<ILGPU.Runtime.Cuda.CudaError>(name, out var parsed) ? (int)parsed : -1;
        return new CudaException("cuda", code, name, what, e);
    }

    /// <summary>Which library raised it: <c>cuda</c> (driver), <c>cublas</c> or <c>nccl</c>.</summary>
    public string Library { get; }

    /// <summary>The numeric status (CUresult, cublasStatus_t or ncclResult_t).</summary>
    public int Status { get; }

    /// <summary>The status's name as the library spells it.</summary>
    public string StatusName { get; }
}
