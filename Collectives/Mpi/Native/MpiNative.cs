using System.Runtime.InteropServices;

namespace Hal.Collectives.Mpi.Native;

/// <summary>
/// Open MPI 4.x entry points (<c>libmpi.so.40</c>). In Open MPI, MPI_Comm, MPI_Datatype, MPI_Op and MPI_Request are
/// pointers, so they are <see cref="IntPtr"/> here; predefined handles come from <see cref="MpiHandles"/>.
/// Every function returns an MPI error code; callers pass it to <see cref="MpiException.Check"/>.
/// </summary>
internal static unsafe partial class MpiNative
{
    internal const string Library = "libmpi.so.40";

    internal const int Success = 0;
    internal const int ThreadSerialized = 2;
    internal const int ThreadMultiple = 3;
    internal const int Undefined = -32766;
    internal const int MaxErrorString = 256;

    /// <summary><c>MPI_IN_PLACE</c> is <c>(void*)1</c> in Open MPI.</summary>
    internal static readonly IntPtr InPlace = 1;

    /// <summary>Open MPI's public MPI_Status: source, tag, error, then two private fields.</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct Status
    {
        public int Source;
        public int Tag;
        public int Error;
        public int Cancelled;
        public nuint CountBytes;
    }

    [LibraryImport(Library, EntryPoint = "MPI_Init_thread")]
    internal static partial int InitThread(int* argc, byte*** argv, int required, out int provided);

    [LibraryImport(Library, EntryPoint = "MPI_Initialized")]
    internal static partial int Initialized(out int flag);

    [LibraryImport(Library, EntryPoint = "MPI_Finalized")]
    internal static partial int Finalized(out int flag);

    [LibraryImport(Library, EntryPoint = "MPI_Finalize")]
    internal static partial int Finalize();

    [LibraryImport(Library, EntryPoint = "MPI_Error_string")]
    internal static partial int ErrorString(int code, byte* text, out int length);

    [LibraryImport(Library, EntryPoint = "MPI_Comm_set_errhandler")]
    internal static partial int CommSetErrhandler(IntPtr comm, IntPtr errhandler);

    [LibraryImport(Library, EntryPoint = "MPI_Comm_rank")]
    internal static partial int CommRank(IntPtr comm, out int rank);

    [LibraryImport(Library, EntryPoint = "MPI_Comm_size")]
    internal static partial int CommSize(IntPtr comm, out int size);

    [LibraryImport(Library, EntryPoint = "MPI_Comm_split")]
    internal static partial int CommSplit(IntPtr comm, int color, int key, out IntPtr newComm);

    [LibraryImport(Library, EntryPoint = "MPI_Comm_free")]
    internal static partial int CommFree(ref IntPtr comm);

    [LibraryImport(Library, EntryPoint = "MPI_Op_create")]
    internal static partial int OpCreate(delegate* unmanaged<void*, void*, int*, IntPtr*, void> function, int commute, out IntPtr op);

    [LibraryImport(Library, EntryPoint = "MPI_Op_free")]
    internal static partial int OpFree(ref IntPtr op);

    [LibraryImport(Library, EntryPoint = "MPI_Test")]
    internal static partial int Test(ref IntPtr request, out int flag, out Status status);

    [LibraryImport(Library, EntryPoint = "MPI_Get_count")]
    internal static partial int GetCount(in Status status, IntPtr datatype, out int count);

    [LibraryImport(Library, EntryPoint = "MPI_Allreduce")]
    internal static partial int Allreduce(IntPtr send, IntPtr recv, int count, IntPtr datatype, IntPtr op, IntPtr comm);

    [LibraryImport(Library, EntryPoint = "MPI_Iallreduce")]
    internal static partial int Iallreduce(IntPtr send, IntPtr recv, int count, IntPtr datatype, IntPtr op, IntPtr comm, out IntPtr request);

    [LibraryImport(Library, EntryPoint = "MPI_Ibcast")]
    internal static partial int Ibcast(IntPtr buffer, int count, IntPtr datatype, int root, IntPtr comm, out IntPtr request);

    [LibraryImport(Library, EntryPoint = "MPI_Iallgather")]
    internal static partial int Iallgather(IntPtr send, int sendCount, IntPtr sendType, IntPtr recv, int recvCount, IntPtr recvType, IntPtr comm, out IntPtr request);

    [LibraryImport(Library, EntryPoint = "MPI_Ireduce_scatter_block")]
    internal static partial int IreduceScatterBlock(IntPtr send, IntPtr recv, int recvCount, IntPtr datatype, IntPtr op, IntPtr comm, out IntPtr request);

    [LibraryImport(Library, EntryPoint = "MPI_Ialltoall")]
    internal static partial int Ialltoall(IntPtr send, int sendCount, IntPtr sendType, IntPtr recv, int recvCount, IntPtr recvType, IntPtr comm, out IntPtr request);

    [LibraryImport(Library, EntryPoint = "MPI_Isend")]
    internal static partial int Isend(IntPtr buffer, int count, IntPtr datatype, int dest, int tag, IntPtr comm, out IntPtr request);

    [LibraryImport(Library, EntryPoint = "MPI_Irecv")]
    internal static partial int Irecv(IntPtr buffer, int count, IntPtr datatype, int source, int tag, IntPtr comm, out IntPtr request);

    [LibraryImport(Library, EntryPoint = "MPI_Ibarrier")]
    internal static partial int Ibarrier(IntPtr comm, out IntPtr request);

    /// <summary>
    /// Loads libmpi with RTLD_GLOBAL before any P/Invoke: Open MPI's plugins (btl, pml, coll components) are
    /// separate shared objects that resolve libmpi's symbols from the global scope, which .NET's own local load
    /// does not provide. Returns the handle, or zero with the loader's message.
    /// </summary>
    internal static IntPtr LoadGlobal(out string? error)
    {
        const int RtldNow = 2;
        const int RtldGlobal = 0x100;
        error = null;
        IntPtr handle;
        fixed (byte* name = "libmpi.so.40\0"u8)
        {
            handle = DlOpen(name, RtldNow | RtldGlobal);
        }
        if (handle == IntPtr.Zero)
        {
            IntPtr message = DlError();
            error = message == IntPtr.Zero ? "dlopen failed" : Marshal.PtrToStringUTF8(message);
        }
        return handle;
    }

    [LibraryImport("libc.so.6", EntryPoint = "dlopen")]
    private static partial IntPtr DlOpen(byte* file, int mode);

    [LibraryImport("libc.so.6", EntryPoint = "dlerror")]
    private static partial IntPtr DlError();
}
