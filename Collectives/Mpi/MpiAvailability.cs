namespace Hal.Collectives.Mpi;

/// <summary>Whether this process can run the MPI communicator, and when not, why (one reason per cause).</summary>
/// <param name="Available">True when libmpi.so.40 loads and the process was started by mpirun.</param>
/// <param name="Reason">Null when available; otherwise what is missing and what to do about it.</param>
public sealed record MpiAvailability(bool Available, string? Reason);
