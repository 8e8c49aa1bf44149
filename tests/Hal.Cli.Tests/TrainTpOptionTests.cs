using Hal.Cli.Commands;
using Hal.Models.Training;

namespace Hal.Cli.Tests;

/// <summary><c>hal train --tp</c>: the value reaches the trainer, a run with tensor parallelism trains end to end, and impossible layouts are refused before any work.</summary>
public sealed class TrainTpOptionTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "hal-tp-cli-" + Guid.NewGuid().ToString("N"));

    public TrainTpOptionTests() => Directory.CreateDirectory(_dir);

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void TpTwoTrainsFromTheCommandLineAndReportsTpInTheStartLine()
    {
        string log = Path.Combine(_dir, "run.jsonl");
        var r = CliRunner.Run("train", "--tp", "2", "--dp", "1", "--steps", "2", "--batch", "4", "--seq", "16", "--log-every", "1", "--json-log", log);
        Assert.True(r.ExitCode == 0, r.Stderr);
        var lines = File.ReadAllLines(log).Select(l => System.Text.Json.JsonDocument.Parse(l).RootElement).ToArray();
        Assert.Equal(4, lines.Length);
        Assert.Equal(2, lines[0].GetProperty("tp").GetInt32());
        Assert.Equal(1, lines[0].GetProperty("dp").GetInt32());
        Assert.True(double.IsFinite(lines[1].GetProperty("loss").GetDouble()));
        Assert.Contains("done: 2 steps, final loss ", r.Stdout);
    }

    [Fact]
    public void TpReachesTheTrainerWithDpTimesTpDevices()
    {
        var (seen, devices) = TrainCommandTests.SeenByTrainer("train", "--tp", "2", "--dp", "2", "--steps", "1", "--batch", "4", "--seq", "8");
        Assert.Equal(2, seen.Tp);
        Assert.Equal(2, seen.Dp);
        Assert.Equal(4, devices);
    }

    [Fact]
    public void TpThatDoesNotDivideTheHeadsExitsTwoWithTheReason()
    {
        var r = CliRunner.Run("train", "--tp", "3", "--steps", "1", "--batch", "3", "--seq", "8");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("--tp 3: model 'gpt-tiny' has 4 attention heads, not divisible by 3", r.Stderr);
    }

    [Theory]
    [InlineData("0")]
    [InlineData("-2")]
    public void TpBelowOneExitsTwo(string tp)
    {
        var r = CliRunner.Run("train", "--tp", tp);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains($"--tp {tp}: must be at least 1", r.Stderr);
    }

    [Fact]
    public void TpWithZeroExitsTwo()
    {
        var r = CliRunner.Run("train", "--tp", "2", "--zero", "2");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("--tp 2 and --zero 2 do not run together yet", r.Stderr);
    }
}
