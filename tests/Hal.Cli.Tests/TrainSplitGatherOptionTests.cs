using Hal.Cli.Commands;
using Hal.Models.Training;
using Hal.Models.Transformer;

namespace Hal.Cli.Tests;

/// <summary>
/// <c>hal train --tp N --sp-mode split-gather</c>: a run trains end to end and says its layout in the start line, --sp
/// equal to --tp names the same ranks (no extra ones), and impossible layouts are refused before any work.
/// </summary>
public sealed class TrainSplitGatherOptionTests
{
    [Fact]
    public void SplitGatherTrainsFromTheCommandLineAndReportsItsModeInTheStartLine()
    {
        string log = Path.Combine(Path.GetTempPath(), $"hal-sg-{Guid.NewGuid():N}.jsonl");
        try
        {
            var r = CliRunner.Run("train", "--tp", "2", "--sp-mode", "split-gather", "--steps", "2", "--batch", "4", "--seq", "16", "--log-every", "1", "--json-log", log);
            Assert.True(r.ExitCode == 0, r.Stderr);
            Assert.Contains("done: 2 steps, final loss ", r.Stdout);
            var lines = File.ReadAllLines(log).Select(l => System.Text.Json.JsonDocument.Parse(l).RootElement).ToArray();
            Assert.Equal("split-gather", lines[0].GetProperty("spMode").GetString());
            Assert.Equal(2, lines[0].GetProperty("tp").GetInt32());
            // No extra sequence ranks: the sequence is split over the tp ranks.
            Assert.Equal(1, lines[0].GetProperty("sp").GetInt32());
            Assert.True(double.IsFinite(lines[1].GetProperty("loss").GetDouble()));
        }
        finally
        {
            File.Delete(log);
        }
    }

    [Theory]
    [InlineData("1")]
    [InlineData("2")]
    public void SpOneOrEqualToTpReachesTheTrainerOnDpTimesTpDevices(string sp)
    {
        var (seen, devices) = TrainCommandTests.SeenByTrainer("train", "--tp", "2", "--sp", sp, "--sp-mode", "split-gather", "--dp", "2", "--steps", "1", "--batch", "4", "--seq", "8");
        Assert.Equal(SequenceParallelMode.SplitGather, seen.SpMode);
        Assert.Equal(1, seen.Sp);
        Assert.Equal(2, seen.Tp);
        Assert.Equal(4, devices);
    }

    [Fact]
    public void SplitGatherWithoutTpExitsTwoSayingWhatToGive()
    {
        var r = CliRunner.Run("train", "--sp-mode", "split-gather", "--steps", "1");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("needs --tp 2 or more", r.Stderr);
    }

    [Fact]
    public void SplitGatherWithAnotherSpExitsTwo()
    {
        var r = CliRunner.Run("train", "--tp", "2", "--sp", "4", "--sp-mode", "split-gather", "--steps", "1");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("give --sp 1 (or leave it out) or --sp 2", r.Stderr);
    }

    [Fact]
    public void TokensNotDivisibleByTpExitTwo()
    {
        var r = CliRunner.Run("train", "--tp", "2", "--sp-mode", "split-gather", "--steps", "1", "--batch", "1", "--seq", "15");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("= 15 tokens over --tp 2 ranks", r.Stderr);
    }
}
