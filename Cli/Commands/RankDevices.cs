using System.Globalization;
using Hal.Collectives.Mpi;

namespace Hal.Cli.Commands;

/// <summary>Devices for the ranks of a collective command, and the checks of an mpirun launch.</summary>
internal static class RankDevices
{
    /// <summary>
    /// Opens one device per rank from <paramref name="backendName"/>: rank i gets device i modulo the backend's device
    /// count (the CPU backend's one device is opened once per rank, so each rank owns its own).
    /// </summary>
    /// <exception cref="BackendUnavailableException">the backend cannot run here.</exception>
    public static IDevice[] Open(HalSession session, string backendName, int ranks)
    {
        var backend = session.Runtime.GetBackend(backendName);
        var probe = backend.Probe();
        if (!probe.Available || probe.Devices.Count == 0)
        {
            throw new BackendUnavailableException(backend.Name, probe.Reason ?? "it has no devices");
        }
        var devices = new List<IDevice>(ranks);
        try
        {
            for (int r = 0; r < ranks; r++)
            {
                devices.Add(backend.Open(r % probe.Devices.Count));
            }
        }
        catch
        {
            Dispose(devices);
            throw;
        }
        return [.. devices];
    }

    /// <summary>Disposes every device.</summary>
    public static void Dispose(IEnumerable<IDevice> devices)
    {
        foreach (var d in devices)
        {
            d.Dispose();
        }
    }

    /// <summary>
    /// Checks that this process is a rank started by mpirun and that Open MPI loads; returns the world size.
    /// </summary>
    /// <exception cref="UsageException">not under mpirun, MPI missing, or <paramref name="requestedRanks"/> differs from the world size.</exception>
    public static int RequireMpiWorld(string what, int? requestedRanks)
    {
        if (!MpiCommunicator.IsUnderMpirun)
        {
            throw new UsageException(
                $"{what} runs one rank per process started by mpirun (OMPI_COMM_WORLD_SIZE is not set); " +
                "start it as 'mpirun -np 2 ./hal …' (as root add --allow-run-as-root, and --oversubscribe for more ranks than cores)");
        }
        var availability = MpiCommunicator.Probe();
        if (!availability.Available)
        {
            throw new UsageException($"{what}: MPI is not usable here: {availability.Reason ?? "no reason given"}");
        }
        string text = Environment.GetEnvironmentVariable("OMPI_COMM_WORLD_SIZE") ?? "";
        if (!int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out int worldSize) || worldSize < 1)
        {
            throw new UsageException($"{what}: OMPI_COMM_WORLD_SIZE is '{text}', not a rank count");
        }
        if (requestedRanks is { } n && n != worldSize)
        {
            throw new UsageException($"--ranks {n} differs from the {worldSize} processes mpirun started; under mpirun omit --ranks or give -np's value");
        }
        return worldSize;
    }
}
