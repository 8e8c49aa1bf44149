using Hal.Cli.Commands;
using Hal.Models.Training;
using Hal.Models.Transformer;

namespace Hal.Cli.Tests;

/// <summary><c>hal train --sp --sp-mode</c>: the values reach the trainer, a sequence-parallel run trains end to end, and impossible layouts are refused before any work.</summary>
public sealed class TrainSpOptionTests
{
    [Theory]
    [InlineData("ulysses")]
    [InlineData("ring")]
    public void SpTwoTrainsFromTheCommandLine(string mode)
    {
        string log = Path.Combine(Path.GetTempPath(), $"hal-sp-{Guid.NewGuid():N}.jsonl");
        try
        {
            var r = CliRunner.Run("train", "--sp", "2", "--sp-mode", mode, "--steps", "2", "--batch", "4", "--seq", "16", "--log-every", "1", "--json-log", log);
            Assert.True(r.ExitCode == 0, r.Stderr);
            Assert.Contains("done: 2 steps, final loss ", r.Stdout);
            // The start line says the layout.
            using var start = System.Text.Json.JsonDocument.Parse(File.ReadLines(log).First());
            Assert.Equal(2, start.RootElement.GetProperty("sp").GetInt32());
            Assert.Equal(mode, start.RootElement.GetProperty("spMode").GetString());
            Assert.Equal(1, start.RootElement.GetProperty("tp").GetInt32());
            Assert.Equal(0, start.RootElement.GetProperty("zero").GetInt32());
            Assert.Equal("none", start.RootElement.GetProperty("offload").GetString());
        }
        finally
        {
            File.Delete(log);
        }
    }

    [Fact]
    public void SpReachesTheTrainerWithDpTimesSpDevices()
    {
        TrainConfig? seen = null;
        int devices = 0;
        TrainCommand.TrainerOverride.Value = (config, ranks, world, observer, _) =>
        {
            seen = config;
            devices = ranks.Count;
            return TrainCommandTests.FakeRun(config, observer, [1.0]);
        };
        try
        {
            var r = CliRunner.Run("train", "--sp", "2", "--sp-mode", "ulysses", "--dp", "2", "--steps", "1", "--batch", "4", "--seq", "8");
            Assert.True(r.ExitCode == 0, r.Stderr);
        }
        finally
        {
            TrainCommand.TrainerOverride.Value = null;
        }
        Assert.NotNull(seen);
        Assert.Equal(2, seen.Sp);
        Assert.Equal(SequenceParallelMode.Ulysses, seen.SpMode);
        Assert.Equal(2, seen.Dp);
        Assert.Equal(4, devices);
    }

    [Fact]
    public void RingWithASequenceNotAMultipleOfTwiceSpExitsTwoWithTheReason()
    {
        var r = CliRunner.Run("train", "--sp", "2", "--steps", "1", "--batch", "4", "--seq", "10");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("--seq must be a multiple of 4", r.Stderr);
    }

    [Fact]
    public void SpWithTpExitsTwo()
    {
        var r = CliRunner.Run("train", "--sp", "2", "--tp", "2");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("--sp 2 and --tp 2 do not run together yet", r.Stderr);
    }

    [Theory]
    [InlineData("0")]
    [InlineData("-1")]
    public void SpBelowOneExitsTwo(string sp)
    {
        var r = CliRunner.Run("train", "--sp", sp);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains($"--sp {sp}: must be at least 1", r.Stderr);
    }
}
