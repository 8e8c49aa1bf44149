using System.Runtime.InteropServices;

namespace Hal.Backends.Cuda.Native;

/// <summary>NCCL's 128-byte unique id, passed by value to ncclCommInitRank.</summary>
[StructLayout(LayoutKind.Sequential, Size = 128)]
internal unsafe struct NcclUniqueId
{
    public fixed byte Bytes[128];
}

/// <summary>
/// NCCL (<c>libnccl.so.2</c>) through function pointers of the loaded library, found with the same search as the
/// other CUDA libraries (including the pip layout <c>site-packages/nvidia/nccl/lib</c>). Every result goes through
/// <see cref="Check"/>, which raises <see cref="CudaException"/> with the ncclResult_t name.
/// </summary>
internal static unsafe class NcclNative
{
    // ncclDataType_t and ncclRedOp_t values from nccl.h.
    public const int Int32 = 2;
    public const int Int64 = 4;
    public const int Float16 = 6;
    public const int Float32 = 7;
    public const int Float64 = 8;
    public const int BFloat16 = 9;
    public const int OpSum = 0;
    public const int OpMax = 2;
    public const int OpMin = 3;
    public const int OpAvg = 4;

    private static IntPtr _lib;

    /// <summary>Where NCCL was found, or why not.</summary>
    public static bool TryLocate(out string whereOrWhy)
    {
        bool ok = CudaLibraries.TryLoad("nccl", CudaLibraries.NcclNames, out _, out string tried);
        whereOrWhy = ok ? tried : $"NCCL not found (libnccl.so.2; set {CudaLibraries.PathVariable} to its folder)";
        return ok;
    }

    /// <summary>An entry point of the loaded library.</summary>
    public static IntPtr Export(string name) => Fn(name);

    private static IntPtr Fn(string name)
    {
        if (_lib == IntPtr.Zero)
        {
            if (!CudaLibraries.TryLoad("nccl", CudaLibraries.NcclNames, out _lib, out _))
            {
                throw new BackendUnavailableException("cuda", $"NCCL not found (libnccl.so.2; set {CudaLibraries.PathVariable} to its folder)");
            }
        }
        return NativeLibrary.GetExport(_lib, name);
    }

    public static NcclUniqueId GetUniqueId()
    {
        NcclUniqueId id;
        Check(((delegate* unmanaged<NcclUniqueId*, int>)Fn("ncclGetUniqueId"))(&id), "ncclGetUniqueId");
        return id;
    }

    public static IntPtr CommInitRank(int size, NcclUniqueId id, int rank)
    {
        IntPtr comm;
        Check(((delegate* unmanaged<IntPtr*, int, NcclUniqueId, int, int>)Fn("ncclCommInitRank"))(&comm, size, id, rank), "ncclCommInitRank");
        return comm;
    }

    public static IntPtr CommSplit(IntPtr comm, int color, int key)
    {
        IntPtr created;
        // NCCL_SPLIT_NOCOLOR is −1; a null config takes the parent's settings.
        Check(((delegate* unmanaged<IntPtr, int, int, IntPtr*, IntPtr, int>)Fn("ncclCommSplit"))(comm, color < 0 ? -1 : color, key, &created, IntPtr.Zero), "ncclCommSplit");
        return created;
    }

    public static void CommDestroy(IntPtr comm) => _ = ((delegate* unmanaged<IntPtr, int>)Fn("ncclCommDestroy"))(comm);

    public static void CommAbort(IntPtr comm) => _ = ((delegate* unmanaged<IntPtr, int>)Fn("ncclCommAbort"))(comm);

    public static void AllReduce(IntPtr send, IntPtr recv, long count, int type, int op, IntPtr comm, IntPtr stream) =>
        Check(((delegate* unmanaged<IntPtr, IntPtr, nuint, int, int, IntPtr, IntPtr, int>)Fn("ncclAllReduce"))(send, recv, (nuint)count, type, op, comm, stream), "ncclAllReduce");

    public static void Broadcast(IntPtr send, IntPtr recv, long count, int type, int root, IntPtr comm, IntPtr stream) =>
        Check(((delegate* unmanaged<IntPtr, IntPtr, nuint, int, int, IntPtr, IntPtr, int>)Fn("ncclBroadcast"))(send, recv, (nuint)count, type, root, comm, stream), "ncclBroadcast");

    public static void AllGather(IntPtr send, IntPtr recv, long count, int type, IntPtr comm, IntPtr stream) =>
        Check(((delegate* unmanaged<IntPtr, IntPtr, nuint, int, IntPtr, IntPtr, int>)Fn("ncclAllGather"))(send, recv, (nuint)count, type, comm, stream), "ncclAllGather");

    public static void ReduceScatter(IntPtr send, IntPtr recv, long count, int type, int op, IntPtr comm, IntPtr stream) =>
        Check(((delegate* unmanaged<IntPtr, IntPtr, nuint, int, int, IntPtr, IntPtr, int>)Fn("ncclReduceScatter"))(send, recv, (nuint)count, type, op, comm, stream), "ncclReduceScatter");

    public static void Send(IntPtr buffer, long count, int type, int peer, IntPtr comm, IntPtr stream) =>
        Check(((delegate* unmanaged<IntPtr, nuint, int, int, IntPtr, IntPtr, int>)Fn("ncclSend"))(buffer, (nuint)count, type, peer, comm, stream), "ncclSend");

    public static void Recv(IntPtr buffer, long count, int type, int peer, IntPtr comm, IntPtr stream) =>
        Check(((delegate* unmanaged<IntPtr, nuint, int, int, IntPtr, IntPtr, int>)Fn("ncclRecv"))(buffer, (nuint)count, type, peer, comm, stream), "ncclRecv");

    public static void GroupStart() => Check(((delegate* unmanaged<int>)Fn("ncclGroupStart"))(), "ncclGroupStart");

    public static void GroupEnd() => Check(((delegate* unmanaged<int>)Fn("ncclGroupEnd"))(), "ncclGroupEnd");

    /// <summary>Raises <see cref="CudaException"/> for a non-success ncclResult_t.</summary>
    public static void Check(int result, string what)
    {
        if (result != 0)
        {
            throw new CudaException("nccl", result, ResultName(result), what);
        }
    }

    /// <summary>The ncclResult_t name.</summary>
    public static string ResultName(int result) => result switch
    {
        0 => "ncclSuccess",
        1 => "ncclUnhandledCudaError",
        2 => "ncclSystemError",
        3 => "ncclInternalError",
        4 => "ncclInvalidArgument",
        5 => "ncclInvalidUsage",
        6 => "ncclRemoteError",
        7 => "ncclInProgress",
        _ => $"ncclResult {result}",
    };
}
