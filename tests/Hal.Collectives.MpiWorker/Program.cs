using Hal;
using Hal.Backends.Cpu;
using Hal.Collectives.Mpi;
using Hal.Collectives.MpiWorker;

// One rank of an MPI test: `mpirun -np N dotnet Hal.Collectives.MpiWorker.dll <scenario>`.
// Exit code 0 when the scenario saw what it expects, 1 when not, 2 for a usage error.
string[] scenarios = ["collectives", "collectives-staged", "timeout", "mismatch", "split", "dispose"];
if (args.Length != 1 || Array.IndexOf(scenarios, args[0]) < 0)
{
    Console.Error.WriteLine($"usage: Hal.Collectives.MpiWorker <{string.Join("|", scenarios)}>");
    return 2;
}

var availability = MpiCommunicator.Probe();
if (!availability.Available)
{
    Console.WriteLine($"FAIL MPI unavailable: {availability.Reason}");
    return 1;
}

IDevice device = new CpuBackend().Open(0);
var comm = MpiCommunicator.InitWorld(device);
try
{
    bool ok = args[0] switch
    {
        "collectives" => ConformanceScenario.Run(comm, staged: false),
        "collectives-staged" => ConformanceScenario.Run(comm, staged: true),
        "timeout" => FailureScenarios.Timeout(comm, device),
        "mismatch" => FailureScenarios.Mismatch(comm, device),
        "split" => FailureScenarios.Split(comm, device),
        "dispose" => FailureScenarios.UseAfterDispose(comm, device),
        _ => false,
    };
    return ok ? 0 : 1;
}
finally
{
    comm.Dispose();
}
