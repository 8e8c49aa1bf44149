using System.Runtime.InteropServices;

namespace Hal.Cli.Bench;

// Legend: C[m, n] = A[m, k] · B[k, n], all row-major F32 host arrays (lda = k, ldb = n, ldc = n).

/// <summary>
/// The system OpenBLAS, loaded at run time, as the reference SGEMM that <c>hal bench gemm</c> compares against.
/// Nothing links against it: the bench runs without it and then reports no peer.
/// </summary>
internal sealed unsafe class OpenBlasPeer
{
    /// <summary>The library names tried in order; the first is what Debian's libopenblas0-pthread installs.</summary>
    internal static readonly string[] LibraryNames = ["libopenblas.so.0", "libopenblas.so", "libcblas.so.3"];

    /// <summary>Why <c>--peer openblas</c> cannot run when no library loads.</summary>
    internal const string NotFoundReason = "libopenblas.so.0 not found; apt-get install libopenblas0-pthread";

    // CBLAS enum values (cblas.h): row-major storage and no transpose.
    private const int CblasRowMajor = 101;
    private const int CblasNoTrans = 111;

    private readonly delegate* unmanaged<int, int, int, int, int, int, float, float*, int, float*, int, float, float*, int, void> _sgemm;

    private OpenBlasPeer(string library, IntPtr sgemm, string coreName, int threads)
    {
        Library = library;
        _sgemm = (delegate* unmanaged<int, int, int, int, int, int, float, float*, int, float*, int, float, float*, int, void>)sgemm;
        CoreName = coreName;
        Threads = threads;
    }

    /// <summary>The name the library was loaded by.</summary>
    public string Library { get; }

    /// <summary>The kernel family OpenBLAS chose for this processor (<c>openblas_get_corename</c>), or "unknown".</summary>
    public string CoreName { get; }

    /// <summary>Threads OpenBLAS runs with after <c>openblas_set_num_threads</c> (0 when the library does not say).</summary>
    public int Threads { get; }

    /// <summary>
    /// Loads the first library of <see cref="LibraryNames"/> that exports <c>cblas_sgemm</c> and sets its thread
    /// count to <paramref name="threads"/>; null when none does.
    /// </summary>
    public static OpenBlasPeer? TryLoad(int threads)
    {
        foreach (string name in LibraryNames)
        {
            if (!NativeLibrary.TryLoad(name, out IntPtr handle))
            {
                continue;
            }
            if (!NativeLibrary.TryGetExport(handle, "cblas_sgemm", out IntPtr sgemm))
            {
                continue;
            }
            // The thread and core-name exports are OpenBLAS's own; another CBLAS still serves as a peer without them.
            if (NativeLibrary.TryGetExport(handle, "openblas_set_num_threads", out IntPtr setThreads))
            {
                ((delegate* unmanaged<int, void>)setThreads)(threads);
            }
            int actualThreads = NativeLibrary.TryGetExport(handle, "openblas_get_num_threads", out IntPtr getThreads)
                ? ((delegate* unmanaged<int>)getThreads)()
                : 0;
            string core = "unknown";
            if (NativeLibrary.TryGetExport(handle, "openblas_get_corename", out IntPtr getCore))
            {
                core = Marshal.PtrToStringAnsi(((delegate* unmanaged<IntPtr>)getCore)()) ?? "unknown";
            }
            return new OpenBlasPeer(name, sgemm, core, actualThreads);
        }
        return null;
    }

    /// <summary>True when any of <see cref="LibraryNames"/> loads and exports <c>cblas_sgemm</c> (no thread change).</summary>
    public static bool IsAvailable()
    {
        foreach (string name in LibraryNames)
        {
            if (NativeLibrary.TryLoad(name, out IntPtr handle) && NativeLibrary.TryGetExport(handle, "cblas_sgemm", out _))
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>C = A · B on host arrays (row-major, no transpose, alpha 1, beta 0).</summary>
    public void Sgemm(float* a, float* b, float* c, int m, int n, int k) =>
        _sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1f, a, k, b, n, 0f, c, n);
}
