using System.Text;
using Hal.Collectives.Mpi.Native;

namespace Hal.Collectives.Mpi;

/// <summary>An MPI call returned an error code: carries the code, MPI's own text for it and what was being done.</summary>
public sealed class MpiException : HalException
{
    public MpiException(string operation, int errorCode, string errorString)
        : base($"{operation} failed: MPI error {errorCode} ({errorString})")
    {
        Operation = operation;
        ErrorCode = errorCode;
        ErrorString = errorString;
    }

    /// <summary>The MPI call and what it was doing, e.g. <c>MPI_Iallreduce (all-reduce of 1024 f32)</c>.</summary>
    public string Operation { get; }

    /// <summary>The MPI error code (MPI_ERR_…).</summary>
    public int ErrorCode { get; }

    /// <summary>The code decoded by <c>MPI_Error_string</c>.</summary>
    public string ErrorString { get; }

    /// <summary>The one error path of every MPI call: raises when <paramref name="code"/> is not MPI_SUCCESS.</summary>
    internal static void Check(int code, string call, string? context = null)
    {
        if (code != MpiNative.Success)
        {
            throw Create(code, call, context);
        }
    }

    internal static MpiException Create(int code, string call, string? context)
    {
        string operation = context is null ? call : $"{call} ({context})";
        return new MpiException(operation, code, Describe(code));
    }

    private static unsafe string Describe(int code)
    {
        try
        {
            byte* text = stackalloc byte[MpiNative.MaxErrorString + 1];
            if (MpiNative.ErrorString(code, text, out int length) == MpiNative.Success && length > 0)
            {
                return Encoding.UTF8.GetString(text, Math.Min(length, MpiNative.MaxErrorString));
            }
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            // Decoding is best effort: the code itself is still reported.
        }
        return "no description";
    }
}
