using Hal.Cli.Bench;
using Hal.Models.Training;
using Hal.Models.Transformer;

namespace Hal.Cli.Tests;

/// <summary><c>hal bench step</c>: the FLOP formula, the figures from step times, and option validation.</summary>
public class BenchStepTests
{
    [Fact]
    public void Gpt2With124MParametersHas123MInMatmuls()
    {
        // Per block: c_attn 768×2304, c_proj 768×768, c_fc 768×3072, mlp c_proj 3072×768; 12 blocks; head 50257×768.
        long perBlock = (768L * 2304) + (768L * 768) + (768L * 3072) + (3072L * 768);
        long expected = (12 * perBlock) + (50257L * 768);
        var config = ModelConfig.Named("gpt2-124m");
        Assert.Equal(123_532_032L, expected);
        Assert.Equal(expected, TrainingFlops.MatmulParameters(config));
        // 6·N + 12·L·C·T at T = 1024.
        Assert.Equal((6.0 * expected) + (12.0 * 12 * 768 * 1024), TrainingFlops.PerToken(config, 1024));
    }

    [Fact]
    public void LlamaCountsGroupedKeyValueProjectionsAndTheUntiedHead()
    {
        var config = ModelConfig.Named("llama-small");
        // C 384, H 6, Hkv 2, D 64, F 1024: q 384×384, k and v 384×128, o 384×384, gate/up/down 384×1024; head 32000×384.
        Assert.Equal(1024, config.Hidden);
        long perBlock = (384L * 384) + (2 * 384L * 128) + (384L * 384) + (3 * 384L * 1024);
        Assert.Equal((6 * perBlock) + (32000L * 384), TrainingFlops.MatmulParameters(config));
        Assert.Equal((6.0 * TrainingFlops.MatmulParameters(config)) + (12.0 * 6 * 384 * 100), TrainingFlops.PerToken(config, 100));
    }

    [Fact]
    public void FiguresUseTheMedianStep()
    {
        var spec = new StepBenchSpec("gpt-tiny", Batch: 4, Seq: 32, Steps: 3, WarmupSteps: 0, Precision.Fp32);
        // Median of {0.5, 0.1, 0.2} s is 0.2 s: 128 tokens / 0.2 s = 640 tokens/s; at 1e6 FLOP/token that is 0.64 GFLOP/s.
        var run = StepBench.Figures("baseline", new StepBench.StepTimes([0.5, 0.1, 0.2], 4096, 3.5), spec, flopsPerToken: 1e6, peakGflops: 6.4);
        Assert.Equal(640, run.TokensPerSec, 9);
        Assert.Equal(200, run.MedianStepMs, 9);
        Assert.Equal(0.64, run.Gflops, 12);
        Assert.Equal(0.1, run.Mfu, 12);
        Assert.Equal(4096, run.PeakDeviceBytes);
        Assert.Equal(3.5, run.LastLoss);
    }

    [Theory]
    [InlineData(new double[] { }, 0)]
    [InlineData(new double[] { 3 }, 3)]
    [InlineData(new double[] { 4, 1 }, 2.5)]
    [InlineData(new double[] { 9, 1, 5, 7 }, 6)]
    public void MedianOfStepTimes(double[] values, double expected)
    {
        Assert.Equal(expected, StepBench.Median(values));
    }

    [Theory]
    [InlineData("unknown model; known models: gpt-tiny", "--model", "gpt-huge")]
    [InlineData("--seq 65 is longer than the context of model 'gpt-tiny' (64 tokens)", "--model", "gpt-tiny", "--seq", "65")]
    [InlineData("--steps 0: must be at least 1", "--steps", "0")]
    [InlineData("--batch 0: must be at least 1", "--batch", "0")]
    [InlineData("--warmup -1: must be 0 or more", "--warmup", "-1")]
    [InlineData("--vocab 1: a vocabulary has at least 2 tokens", "--model", "gpt-tiny", "--vocab", "1")]
    [InlineData("backend 'nosuch' is not available", "--model", "gpt-tiny", "--backend", "nosuch")]
    [InlineData("fp8", "--precision", "fp8")]
    public void BadOptionExitsTwo(string expected, params string[] args)
    {
        var r = CliRunner.Run(["bench", "step", .. args]);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains(expected, r.Stderr);
        Assert.Equal("", r.Stdout);
    }

    [Fact]
    public void HelpListsTheOptions()
    {
        var r = CliRunner.Run("bench", "step", "--help");
        Assert.Equal(0, r.ExitCode);
        foreach (string option in new[] { "--model", "--backend", "--batch", "--seq", "--steps", "--warmup", "--precision", "--zero", "--offload", "--layout", "--json" })
        {
            Assert.Contains(option, r.Stdout);
        }
    }

    [Fact]
    public void StepOnGptTinyPrintsOneJsonObjectWithABaselineRun()
    {
        var r = CliRunner.Run("bench", "step", "--model", "gpt-tiny", "--vocab", "64", "--batch", "2", "--seq", "16", "--steps", "2", "--warmup", "1", "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        using var doc = System.Text.Json.JsonDocument.Parse(r.Stdout);
        var root = doc.RootElement;
        var config = ModelConfig.Named("gpt-tiny", 64);
        Assert.Equal("gpt-tiny", root.GetProperty("model").GetString());
        Assert.Equal("cpu", root.GetProperty("backend").GetString());
        Assert.Equal(config.ParameterCount, root.GetProperty("parameters").GetInt64());
        Assert.Equal(TrainingFlops.PerToken(config, 16), root.GetProperty("flopsPerToken").GetDouble());
        Assert.Equal(TrainingFlops.Formula, root.GetProperty("flopFormula").GetString());
        Assert.True(root.GetProperty("peakGflops").GetDouble() > 0);
        var run = Assert.Single(root.GetProperty("runs").EnumerateArray().ToArray());
        Assert.Equal("baseline", run.GetProperty("name").GetString());
        double tokensPerSec = run.GetProperty("tokensPerSec").GetDouble();
        Assert.True(tokensPerSec > 0, $"tokensPerSec {tokensPerSec}");
        // gflops is tokens/s × FLOPs per token by definition; the product and quotient round twice (relative 1e-12 is ample).
        Assert.Equal(tokensPerSec * TrainingFlops.PerToken(config, 16) / 1e9, run.GetProperty("gflops").GetDouble(), 1e-12 * run.GetProperty("gflops").GetDouble());
        Assert.True(run.GetProperty("peakDeviceBytes").GetInt64() > 0);
        // Two steps from a random start on 64 tokens: the loss is near ln 64 ≈ 4.16 and finite.
        double loss = run.GetProperty("lastLoss").GetDouble();
        Assert.InRange(loss, 2.0, 6.0);
        Assert.Contains("timed step 3", r.Stderr);
    }
}
