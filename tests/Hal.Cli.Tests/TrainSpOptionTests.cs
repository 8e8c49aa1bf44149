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
        var (seen, devices) = TrainCommandTests.SeenByTrainer("train", "--sp", "2", "--sp-mode", "ulysses", "--dp", "2", "--steps", "1", "--batch", "4", "--seq", "8");
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

    [Theory]
    [InlineData("ring")]
    [InlineData("ulysses")]
    public void SpWithTpTrainsFromTheCommandLine(string mode)
    {
        string log = Path.Combine(Path.GetTempPath(), $"hal-tpsp-{Guid.NewGuid():N}.jsonl");
        try
        {
            // gpt-tiny's 4 heads: 2 per tp rank, re-sharded 1 per sp rank under Ulysses.
            var r = CliRunner.Run("train", "--tp", "2", "--sp", "2", "--sp-mode", mode, "--steps", "2", "--batch", "4", "--seq", "16", "--log-every", "1", "--json-log", log);
            Assert.True(r.ExitCode == 0, r.Stderr);
            Assert.Contains("done: 2 steps, final loss ", r.Stdout);
            using var start = System.Text.Json.JsonDocument.Parse(File.ReadLines(log).First());
            Assert.Equal(2, start.RootElement.GetProperty("tp").GetInt32());
            Assert.Equal(2, start.RootElement.GetProperty("sp").GetInt32());
            Assert.Equal(mode, start.RootElement.GetProperty("spMode").GetString());
            // The end line counts the bytes a rank sends per step: tp all-reduces, sp attention traffic, gradient averages.
            using var end = System.Text.Json.JsonDocument.Parse(File.ReadLines(log).Last());
            Assert.True(end.RootElement.GetProperty("commBytesPerStep").GetDouble() > 0, File.ReadLines(log).Last());
        }
        finally
        {
            File.Delete(log);
        }
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
