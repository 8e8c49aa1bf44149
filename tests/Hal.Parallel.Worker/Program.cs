using Hal;
using Hal.Backends.Cpu;
using Hal.Collectives.Mpi;
using Hal.Parallel.Worker;

// Data parallel outside the test runner:
//   mpirun -np N dotnet Hal.Parallel.Worker.dll mpi-bucketer   one rank per process; exit 0 when every rank's averaged slab is exact
//   dotnet Hal.Parallel.Worker.dll overlap-bench [elements] [ranks]   in-process ranks; prints how much all-reduce time backward hides
string[] scenarios = ["mpi-bucketer", "overlap-bench"];
if (args.Length < 1 || Array.IndexOf(scenarios, args[0]) < 0)
{
    Console.Error.WriteLine($"usage: Hal.Parallel.Worker <{string.Join("|", scenarios)}> [args]");
    return 2;
}

if (args[0] == "overlap-bench")
{
    long elements = args.Length > 1 ? long.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 30_000_000;
    int ranks = args.Length > 2 ? int.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture) : 4;
    OverlapBench.Run(elements, ranks);
    return 0;
}

var availability = MpiCommunicator.Probe();
if (!availability.Available)
{
    Console.WriteLine($"FAIL MPI unavailable: {availability.Reason}");
    return 1;
}
IDevice device = new CpuBackend().Open(0);
var comm = MpiCommunicator.InitWorld(device);
comm.Timeout = TimeSpan.FromSeconds(60);
try
{
    return MpiBucketerScenario.Run(comm, new Ops(device)) ? 0 : 1;
}
finally
{
    comm.Dispose();
    device.Dispose();
}
