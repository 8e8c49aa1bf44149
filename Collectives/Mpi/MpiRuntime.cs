using System.Diagnostics;
using Hal.Collectives.Mpi.Native;

namespace Hal.Collectives.Mpi;

/// <summary>
/// Process-wide MPI state: the loaded library, its predefined handles, one MPI_Init_thread / MPI_Finalize per
/// process, the lock that serializes MPI calls, and the polling wait with a timeout.
/// </summary>
/// <remarks>
/// Threading: every MPI call Hal makes goes through <see cref="Gate"/>, one process-wide lock, so at most one thread
/// is inside MPI at a time. That is exactly the MPI_THREAD_SERIALIZED level, which is what is requested (and what
/// Open MPI gives without the extra locking of MPI_THREAD_MULTIPLE). Calls come from several threads — the caller,
/// each communicator's background worker for asynchronous requests, the finalizer releasing split communicators —
/// but never two at once. Waits poll non-blocking requests and release the lock between polls, so several
/// communicators (the world and its splits) can each have a collective in flight and all of them progress.
/// </remarks>
internal static class MpiRuntime
{
    /// <summary>Serializes every MPI call of the process (see the remarks on the class).</summary>
    internal static readonly Lock Gate = new();

    private static readonly Lock StateLock = new();
    private static IntPtr s_library;
    private static string? s_loadError;
    private static MpiHandles? s_handles;
    private static bool s_initialized;
    private static bool s_finalized;

    /// <summary>The predefined handles; valid once <see cref="TryLoad"/> succeeded.</summary>
    internal static MpiHandles Handles => s_handles ?? throw new InvalidOperationException("libmpi.so.40 is not loaded");

    /// <summary>True between MPI_Init_thread and MPI_Finalize.</summary>
    internal static bool IsActive
    {
        get
        {
            lock (StateLock)
            {
                return s_initialized && !s_finalized;
            }
        }
    }

    /// <summary>Loads libmpi.so.40 (globally, once) and resolves the predefined handles.</summary>
    internal static bool TryLoad(out string? error)
    {
        lock (StateLock)
        {
            if (s_handles is null && s_loadError is null)
            {
                s_library = MpiNative.LoadGlobal(out s_loadError);
                if (s_library != IntPtr.Zero)
                {
                    try
                    {
                        s_handles = MpiHandles.Resolve(s_library);
                    }
                    catch (EntryPointNotFoundException e)
                    {
                        s_loadError = $"libmpi.so.40 is not Open MPI's: {e.Message}";
                    }
                }
            }
            error = s_loadError;
            return s_handles is not null;
        }
    }

    /// <summary>MPI_Init_thread at MPI_THREAD_SERIALIZED, once per process; errors on MPI_COMM_WORLD return codes.</summary>
    internal static void Initialize()
    {
        lock (StateLock)
        {
            if (s_finalized)
            {
                throw new HalException("MPI was finalized when the world communicator was disposed, and MPI cannot be initialized twice in one process");
            }
            if (s_initialized)
            {
                throw new HalException("MPI is already initialized and its world communicator is alive: use it (or Split it) instead of calling InitWorld again");
            }
            if (!TryLoad(out string? error))
            {
                throw new HalException($"libmpi.so.40 could not be loaded ({error}); run ./hal, which installs openmpi-bin and libopenmpi-dev");
            }
            lock (Gate)
            {
                unsafe
                {
                    MpiException.Check(MpiNative.InitThread(null, null, MpiNative.ThreadSerialized, out int provided), "MPI_Init_thread");
                    if (provided < MpiNative.ThreadSerialized)
                    {
                        MpiNative.Finalize();
                        s_finalized = true;
                        throw new HalException($"MPI_Init_thread gave thread level {provided}; Hal calls MPI from several threads (one at a time) and needs MPI_THREAD_SERIALIZED (2)");
                    }
                }
                // The default handler aborts the whole job on any error; return codes let Hal raise typed exceptions.
                MpiException.Check(MpiNative.CommSetErrhandler(Handles.CommWorld, Handles.ErrorsReturn), "MPI_Comm_set_errhandler", "MPI_COMM_WORLD, MPI_ERRORS_RETURN");
                MpiHalfOps.Create();
            }
            s_initialized = true;
        }
    }

    /// <summary>Frees the 16-bit ops and calls MPI_Finalize (once).</summary>
    internal static void Shutdown()
    {
        lock (StateLock)
        {
            if (!s_initialized || s_finalized)
            {
                return;
            }
            s_finalized = true;
            lock (Gate)
            {
                MpiHalfOps.Free();
                MpiException.Check(MpiNative.Finalize(), "MPI_Finalize");
            }
        }
    }

    /// <summary>
    /// Polls <paramref name="request"/> with MPI_Test until it completes (true) or <paramref name="timeout"/> passes
    /// (false; the request stays in flight since MPI cannot cancel collectives). Backoff: a tight spin for the first
    /// millisecond (small messages finish there), then yielding the core between polls up to one second (MPI only
    /// moves data during calls, so large transfers need frequent polls; a yield hands the core to anyone who needs
    /// it), then 1 ms sleeps, so a rank waiting on a late peer does not hold a core for long.
    /// </summary>
    /// <paramref name="code"/> is MPI_Test's error code when it failed (and the method returns true).
    internal static bool Wait(ref IntPtr request, TimeSpan timeout, out int code, out MpiNative.Status status)
    {
        long start = Stopwatch.GetTimestamp();
        while (true)
        {
            int flag;
            lock (Gate)
            {
                code = MpiNative.Test(ref request, out flag, out status);
            }
            if (code != MpiNative.Success || flag != 0)
            {
                return true;
            }
            TimeSpan elapsed = Stopwatch.GetElapsedTime(start);
            if (elapsed > timeout)
            {
                return false;
            }
            if (elapsed.Ticks < TimeSpan.TicksPerMillisecond)
            {
                Thread.SpinWait(16);
            }
            else if (elapsed.Ticks < TimeSpan.TicksPerSecond)
            {
                Thread.Yield();
            }
            else
            {
                Thread.Sleep(1);
            }
        }
    }
}
