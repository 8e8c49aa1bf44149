namespace Hal.Collectives.InProcess;

/// <summary>
/// Builds in-process groups: N ranks as threads of one process, rank i on devices[i] (any backend, devices may
/// repeat). The communicators are interchangeable with the MPI ones behind <see cref="ICommunicator"/>.
/// </summary>
public static class InProcessWorld
{
    /// <summary>One communicator per device, all in one group; rank i uses devices[i]. The caller runs each rank on its own thread.</summary>
    /// <exception cref="ArgumentException">No devices, or a null device.</exception>
    public static ICommunicator[] Create(IReadOnlyList<IDevice> devices)
    {
        ArgumentNullException.ThrowIfNull(devices);
        if (devices.Count == 0)
        {
            throw new ArgumentException("an in-process group needs at least one device", nameof(devices));
        }
        var group = new InProcessGroup(devices.Count);
        var comms = new ICommunicator[devices.Count];
        for (int i = 0; i < comms.Length; i++)
        {
            comms[i] = new InProcessCommunicator(group, devices[i] ?? throw new ArgumentException($"devices[{i}] is null", nameof(devices)), i);
        }
        return comms;
    }

    /// <summary>
    /// Runs <paramref name="body"/> once per rank, each on its own thread with its communicator, and waits for all.
    /// A rank whose body throws marks the group broken, so peers waiting on it fail at once instead of at the timeout.
    /// The communicators are disposed at the end.
    /// </summary>
    /// <exception cref="AggregateException">Some rank threw: holds every rank's exception, in rank order.</exception>
    public static void Run(IReadOnlyList<IDevice> devices, Action<ICommunicator> body, TimeSpan? timeout = null)
    {
        ArgumentNullException.ThrowIfNull(body);
        var comms = Create(devices);
        var errors = new Exception?[comms.Length];
        try
        {
            var threads = new Thread[comms.Length];
            for (int i = 0; i < comms.Length; i++)
            {
                var comm = (InProcessCommunicator)comms[i];
                if (timeout is { } t)
                {
                    comm.Timeout = t;
                }
                int rank = i;
                threads[i] = new Thread(() =>
                {
                    try
                    {
                        body(comm);
                    }
                    catch (Exception e)
                    {
                        errors[rank] = e;
                        comm.MarkFailed(e);
                    }
                })
                {
                    IsBackground = true,
                    Name = $"inproc rank {rank}/{comms.Length}",
                };
            }
            foreach (var thread in threads)
            {
                thread.Start();
            }
            foreach (var thread in threads)
            {
                thread.Join();
            }
        }
        finally
        {
            foreach (var comm in comms)
            {
                comm.Dispose();
            }
        }
        var failed = errors.Where(e => e is not null).Cast<Exception>().ToList();
        if (failed.Count > 0)
        {
            var ranks = string.Join(", ", Enumerable.Range(0, errors.Length).Where(r => errors[r] is not null));
            throw new AggregateException($"in-process ranks {ranks} failed", failed);
        }
    }
}
