using System.Text.Json;
using Hal.Cli.Bench;
using Hal.Models.Training;
using Hal.Models.Transformer;
using Hal.Models.Zero;

namespace Hal.Cli.Tests;

/// <summary><c>hal bench step --zero / --offload</c>: the variants, the auto budget, and the figures of each run.</summary>
public class BenchStepOffloadTests
{
    [Fact]
    public void OffloadAutoRunsUnderItsBudgetAndComputesTheBaselinesLoss()
    {
        var r = CliRunner.Run("bench", "step", "--model", "gpt-tiny", "--vocab", "64", "--batch", "2", "--seq", "16", "--steps", "2", "--warmup", "1",
            "--offload", "auto", "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        using var doc = JsonDocument.Parse(r.Stdout);
        var runs = doc.RootElement.GetProperty("runs").EnumerateArray().ToArray();
        // offload-static:0,0 (stage 3, every state on the device, vocabulary tiles) runs before auto: its peak is the
        // reference of the budget.
        Assert.Equal(["baseline", "offload-static:0,0", "offload-auto"], runs.Select(x => x.GetProperty("name").GetString()));
        var (baseline, reference, auto) = (runs[0], runs[1], runs[2]);

        // The baseline keeps everything on the device and has no budget.
        Assert.Equal(0, baseline.GetProperty("offDeviceFraction").GetDouble());
        Assert.Equal(0, baseline.GetProperty("hostBytes").GetInt64());
        Assert.Equal(1, baseline.GetProperty("ratioToBaseline").GetDouble());
        Assert.Equal(JsonValueKind.Null, baseline.GetProperty("deviceBudgetBytes").ValueKind);

        // Budget = the reference's peak − ½ · 16 bytes · N.
        var config = ModelConfig.Named("gpt-tiny", 64);
        long budget = auto.GetProperty("deviceBudgetBytes").GetInt64();
        Assert.Equal(reference.GetProperty("peakDeviceBytes").GetInt64() - (8 * config.ParameterCount), budget);
        Assert.Equal(0, reference.GetProperty("offDeviceFraction").GetDouble());
        long peak = auto.GetProperty("peakDeviceBytes").GetInt64();
        Assert.True(peak > 0 && peak <= budget, $"offload-auto peak {peak} bytes, budget {budget} bytes");
        double offDevice = auto.GetProperty("offDeviceFraction").GetDouble();
        Assert.InRange(offDevice, 1e-9, 1.0);
        Assert.True(auto.GetProperty("hostBytes").GetInt64() > 0);
        Assert.True(auto.GetProperty("tierTrafficBytesPerStep").GetDouble() > 0);
        // tokensPerSec over the baseline's, two roundings of doubles (relative 1e-12 is ample).
        double ratio = auto.GetProperty("tokensPerSec").GetDouble() / baseline.GetProperty("tokensPerSec").GetDouble();
        Assert.Equal(ratio, auto.GetProperty("ratioToBaseline").GetDouble(), 1e-12 * ratio);

        // Same seed, same batch, same three steps: the engine computes what the plain optimizer computes; the fp32
        // update on the host and on the device and the chunked gradient norm differ only in rounding order
        // (a few ulps of fp32 per step, far inside 1e-5 of a loss near 4).
        double baselineLoss = baseline.GetProperty("lastLoss").GetDouble();
        double autoLoss = auto.GetProperty("lastLoss").GetDouble();
        Assert.InRange(baselineLoss, 2.0, 6.0);
        Assert.True(Math.Abs(autoLoss - baselineLoss) <= 1e-5, $"baseline loss {baselineLoss}, offload-auto loss {autoLoss}");
    }

    [Fact]
    public void ZeroAndOffloadsGiveOneVariantEachInOrder()
    {
        var spec = new StepBenchSpec("gpt-tiny", 2, 16, 1, 1, Precision.Fp32, Zero: 3,
            Offloads: [OffloadSpec.Parse("auto"), OffloadSpec.Parse("static:0,0.5"), OffloadSpec.Parse("auto"), OffloadSpec.None]);
        var variants = StepBench.EngineVariants(spec);
        Assert.Equal(["zero3", "offload-static:0,0", "offload-auto", "offload-static:0,0.5"], variants.Select(v => v.Name));
        Assert.All(variants, v => Assert.Equal(3, v.Stage));
        // Without --zero the engine runs at stage 2, as hal train chooses it, and auto brings its stage-3 reference along.
        var stage2 = StepBench.EngineVariants(spec with { Zero = 0, Offloads = [OffloadSpec.Parse("auto")] });
        Assert.Equal(["offload-static:0,0", "offload-auto"], stage2.Select(v => v.Name));
        Assert.Equal([3, 2], stage2.Select(v => v.Stage));
        Assert.Equal(["zero2", "offload-static:0,0", "offload-auto"], StepBench.EngineVariants(spec with { Zero = 2, Offloads = [OffloadSpec.Parse("auto")] }).Select(v => v.Name));
        // No --zero and no --offload: the baseline only.
        Assert.Empty(StepBench.EngineVariants(spec with { Zero = 0, Offloads = null }));
    }

    [Theory]
    [InlineData(1_000_000L, 10_000L, 920_000L)]
    [InlineData(160L, 20L, 0L)]
    public void AutoBudgetIsTheInMemoryEnginePeakLessHalfOfTheModelStates(long peak, long parameters, long expected)
    {
        Assert.Equal(expected, StepBench.AutoBudgetBytes(peak, parameters));
    }

    [Fact]
    public void OffDeviceFractionIsStateBytesOffTheDeviceOverAllStateBytes()
    {
        var spec = new StepBenchSpec("gpt-tiny", 2, 16, 2, 1, Precision.Fp32);
        // 300 bytes on the device, 500 in host memory, 200 on NVMe: 700 of 1000 off the device.
        var memory = new ZeroMemoryStats(300, 500, 200, 0, 0, 0, 0, 0);
        var run = StepBench.Figures("offload-auto", new StepBench.StepTimes([0.1, 0.1], 4096, 3.0, memory, 1234.5, 5000), spec, 1e6, 10);
        Assert.Equal(0.7, run.OffDeviceFraction, 12);
        Assert.Equal(500, run.HostBytes);
        Assert.Equal(200, run.NvmeBytes);
        Assert.Equal(1234.5, run.TierTrafficBytesPerStep);
        Assert.Equal(5000, run.DeviceBudgetBytes);
    }

    [Theory]
    [InlineData("--zero 1: give 0 (the baseline only), 2 or 3", "--zero", "1")]
    [InlineData("--offload 'half'", "--offload", "half")]
    [InlineData("compute in fp32 or bf16", "--zero", "3", "--precision", "fp16")]
    [InlineData("give --warmup 1 or more", "--offload", "auto", "--warmup", "0")]
    public void BadZeroOrOffloadExitsTwo(string expected, params string[] args)
    {
        var r = CliRunner.Run(["bench", "step", "--model", "gpt-tiny", "--vocab", "64", .. args]);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains(expected, r.Stderr);
        Assert.Equal("", r.Stdout);
    }
}
