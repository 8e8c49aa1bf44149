namespace Hal.Backends.Cuda.Native;

/// <summary>Locates NCCL (<c>libnccl.so.2</c>) with the same search as the other CUDA libraries.</summary>
internal static partial class Nccl
{
    /// <summary>Where NCCL was found, or why not.</summary>
    public static bool TryLocate(out string whereOrWhy)
    {
        bool ok = CudaLibraries.TryLoad("nccl", CudaLibraries.NcclNames, out _, out string tried);
        whereOrWhy = ok ? tried : $"NCCL not found (libnccl.so.2; set {CudaLibraries.PathVariable} to its folder)";
        return ok;
    }
}
