using System.Runtime.Intrinsics.X86;
using Hal.Cli.Bench;

namespace Hal.Cli.Tests;

public class FmaPeakProbeTests
{
    [Fact]
    public void Measure_UsesTheWidestFmaAndReportsItsWidth()
    {
        // Short rounds: only the width and a positive rate are checked, never a speed.
        var peak = FmaPeakProbe.Measure(seconds: 0.01, repetitions: 1, threads: 1);
        Assert.Equal(Avx512F.IsSupported ? 512 : 256, peak.VectorBits);
        Assert.True(peak.Gflops > 0, $"measured {peak.Gflops} GFLOP/s at {peak.VectorBits} bits");
    }

    [Fact]
    public void Measure_At256Bits_ReportsThatWidth()
    {
        var peak = FmaPeakProbe.Measure(vectorBits: 256, seconds: 0.01, repetitions: 1, threads: 1);
        Assert.Equal(256, peak.VectorBits);
        Assert.True(peak.Gflops > 0, $"measured {peak.Gflops} GFLOP/s at 256 bits");
    }
}
