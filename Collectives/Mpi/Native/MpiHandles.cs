using System.Runtime.InteropServices;

namespace Hal.Collectives.Mpi.Native;

/// <summary>
/// Open MPI's predefined handles. In Open MPI, <c>MPI_COMM_WORLD</c>, <c>MPI_FLOAT</c>, <c>MPI_SUM</c> … are macros
/// that take the ADDRESS of exported global structs (<c>&amp;ompi_mpi_comm_world</c>, …), so each handle here is the
/// address of one exported symbol, looked up once from the loaded library.
/// </summary>
internal sealed class MpiHandles
{
    private MpiHandles(IntPtr library)
    {
        IntPtr Get(string symbol) => NativeLibrary.GetExport(library, symbol);

        CommWorld = Get("ompi_mpi_comm_world");
        CommNull = Get("ompi_mpi_comm_null");
        ErrorsReturn = Get("ompi_mpi_errors_return");
        Float = Get("ompi_mpi_float");
        Double = Get("ompi_mpi_double");
        Int32 = Get("ompi_mpi_int32_t");
        Int64 = Get("ompi_mpi_int64_t");
        UInt16 = Get("ompi_mpi_uint16_t");
        Sum = Get("ompi_mpi_op_sum");
        Max = Get("ompi_mpi_op_max");
        Min = Get("ompi_mpi_op_min");
    }

    public IntPtr CommWorld { get; }

    /// <summary><c>MPI_COMM_NULL</c>: what MPI_Comm_split gives a rank that joins no group.</summary>
    public IntPtr CommNull { get; }

    /// <summary><c>MPI_ERRORS_RETURN</c>: errors come back as return codes instead of aborting the job.</summary>
    public IntPtr ErrorsReturn { get; }

    public IntPtr Float { get; }

    public IntPtr Double { get; }

    public IntPtr Int32 { get; }

    public IntPtr Int64 { get; }

    /// <summary>Carrier of F16 and BF16 bits: MPI has no 16-bit float types, user ops interpret the bits.</summary>
    public IntPtr UInt16 { get; }

    public IntPtr Sum { get; }

    public IntPtr Max { get; }

    public IntPtr Min { get; }

    /// <summary>Resolves every handle from <paramref name="library"/> (a handle from <see cref="NativeLibrary.Load(string)"/>).</summary>
    /// <exception cref="EntryPointNotFoundException">the library is not Open MPI (another MPI names its handles differently).</exception>
    public static MpiHandles Resolve(IntPtr library) => new(library);
}
