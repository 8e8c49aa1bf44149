using Hal.Backends.Cuda.Native;
using Hal.Backends.Cuda.Nccl;
using Hal.Collectives.InProcess;

namespace Hal.Backends.Cuda.Tests;

/// <summary>The NCCL selection rule and error naming (NCCL itself needs GPUs; scripts/gpu-check.sh covers that).</summary>
[Collection(EmulatorCollection.Name)]
public sealed class NcclTests(EmulatorFixture fx)
{
    [Fact]
    public void GroupsThatAreNotAllCudaGpusKeepTheirCommunicator()
    {
        // Rank 0 on the emulator (not a GPU), rank 1 on the CPU: neither may switch to NCCL.
        var kinds = new string[2];
        InProcessWorld.Run([fx.Device, fx.Cpu], c =>
        {
            var chosen = NcclCommunicator.PreferNccl(c);
            Assert.Same(c, chosen);
            kinds[c.Rank] = chosen.Kind;
        });
        Assert.Equal(["inproc", "inproc"], kinds);
    }

    [Fact]
    public void NcclResultsAreNamed()
    {
        var e = Assert.Throws<CudaException>(() => NcclNative.Check(5, "ncclAllReduce"));
        Assert.Equal("ncclInvalidUsage", e.StatusName);
        Assert.Equal("nccl", e.Library);
        Assert.Contains("ncclAllReduce", e.Message);
    }
}
