using Hal.Collectives.Mpi;
using Hal.Conformance.Collectives;

namespace Hal.Collectives.MpiWorker;

/// <summary>
/// The collective conformance catalogue on MPI_COMM_WORLD: every case runs on every rank and its result is combined
/// over ranks by the catalogue itself; rank 0 prints <c>ok ID</c> or <c>FAIL ID …</c> per case, then <c>OK n</c> or
/// <c>FAIL n of m cases</c>.
/// </summary>
internal static class ConformanceScenario
{
    public static bool Run(MpiCommunicator comm, bool staged)
    {
        comm.StageThroughHost = staged;
        var results = CollectiveConformance.Run(comm, new CollectiveConformanceOptions { Quick = true });
        int failed = results.Count(r => !r.Passed);
        if (comm.Rank == 0)
        {
            foreach (var r in results)
            {
                Console.WriteLine(r.Passed
                    ? $"ok {r.Id}"
                    : $"FAIL {r.Id}: {r.WrongCount} wrong, first on rank {r.FirstWrongRank} at index {r.FirstWrongIndex}");
            }
            Console.WriteLine(failed == 0 ? $"OK {results.Count}" : $"FAIL {failed} of {results.Count} cases");
        }
        return failed == 0;
    }
}
