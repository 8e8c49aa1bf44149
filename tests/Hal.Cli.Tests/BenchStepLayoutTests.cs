using System.Text.Json;
using Hal.Models.Data;
using Hal.Models.Training;
using Hal.Models.Transformer;

namespace Hal.Cli.Tests;

/// <summary><c>hal bench step --layout</c>: the same steps through the trainer under each parallel layout.</summary>
public class BenchStepLayoutTests
{
    [Fact]
    public void EachLayoutReportsItsFiguresBesideTheSingleDeviceRun()
    {
        var r = CliRunner.Run("bench", "step", "--model", "gpt-tiny", "--batch", "4", "--seq", "16", "--steps", "1", "--warmup", "1",
            "--layout", "dp=2", "--layout", "tp=2", "--layout", "pp=2,pp-schedule=1f1b,microbatches=2", "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        using var doc = JsonDocument.Parse(r.Stdout);
        var layouts = doc.RootElement.GetProperty("layouts").EnumerateArray().ToArray();
        Assert.Equal(["single", "dp=2", "tp=2", "pp=2,pp-schedule=1f1b,microbatches=2"], layouts.Select(x => x.GetProperty("layout").GetString()));
        Assert.Equal([1, 2, 2, 2], layouts.Select(x => x.GetProperty("ranks").GetInt32()));
        var single = layouts[0];
        Assert.Equal(0, single.GetProperty("commBytesPerStep").GetDouble());
        Assert.Equal(1, single.GetProperty("ratioToSingle").GetDouble());

        // dp 2 sends one ring all-reduce of the fp32 gradients and of the fp64 loss per step (2·(2−1)/2 = once each).
        using var data = TokenDatasets.Open("synthetic", new TrainConfig().Seed);
        long parameters = ModelConfig.Named("gpt-tiny", data.VocabSize).ParameterCount;
        Assert.Equal((4.0 * parameters) + 8, layouts[1].GetProperty("commBytesPerStep").GetDouble());
        Assert.True(layouts[2].GetProperty("commBytesPerStep").GetDouble() > 0);
        foreach (var layout in layouts)
        {
            Assert.True(layout.GetProperty("peakDeviceBytesPerRank").GetInt64() > 0);
            Assert.True(layout.GetProperty("tokensPerSec").GetDouble() > 0);
            // Every layout computes the single device's steps: fp32 sums in another order (well inside 1e-5 of a loss near 4).
            double loss = layout.GetProperty("lastLoss").GetDouble();
            Assert.True(Math.Abs(loss - single.GetProperty("lastLoss").GetDouble()) <= 1e-5, $"{layout.GetProperty("layout")}: last loss {loss}");
        }
        // Only the pipeline has a bubble: measured (timing, so only its range) beside (p−1)/(m+p−1) = 1/3.
        Assert.Equal(JsonValueKind.Null, layouts[1].GetProperty("bubble").ValueKind);
        Assert.InRange(layouts[3].GetProperty("bubble").GetDouble(), 0, 1);
        Assert.Equal(1.0 / 3, layouts[3].GetProperty("bubbleTheoretical").GetDouble(), 12);
        // A tp rank holds half of the parameters, gradients and moments: less memory than one device.
        Assert.True(layouts[2].GetProperty("peakDeviceBytesPerRank").GetInt64() < single.GetProperty("peakDeviceBytesPerRank").GetInt64());
    }

    [Theory]
    [InlineData("unknown key 'pipeline'", "pipeline=2")]
    [InlineData("'tp' is given twice", "tp=2,tp=2")]
    [InlineData("'dp' is not key=value", "dp")]
    [InlineData("tp=x: give a whole number", "tp=x")]
    [InlineData("--layout tp=3: ", "tp=3")]
    public void BadLayoutExitsTwo(string expected, string layout)
    {
        var r = CliRunner.Run("bench", "step", "--model", "gpt-tiny", "--batch", "4", "--seq", "16", "--steps", "1", "--warmup", "0", "--layout", layout);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains(expected, r.Stderr, StringComparison.Ordinal);
        Assert.Equal("", r.Stdout);
    }
}
