using Hal.Cli.Commands;
using Hal.Models.Training;
using Hal.Models.Transformer;

namespace Hal.Cli.Tests;

/// <summary><c>hal train --tp N --tp-mode 1d|2d|2.5d|3d [--tp-depth D]</c>: a 2D grid trains end to end, the values reach the trainer, and impossible grids exit 2 with the reason.</summary>
public sealed class TrainTpModeOptionTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "hal-tp-mode-cli-" + Guid.NewGuid().ToString("N"));

    public TrainTpModeOptionTests() => Directory.CreateDirectory(_dir);

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void Tp4Mode2dTrainsFromTheCommandLineAndReportsTheModeAndBytes()
    {
        string log = Path.Combine(_dir, "run.jsonl");
        var r = CliRunner.Run("train", "--tp", "4", "--tp-mode", "2d", "--steps", "2", "--batch", "4", "--seq", "16", "--log-every", "1", "--json-log", log);
        Assert.True(r.ExitCode == 0, r.Stderr);
        var lines = File.ReadAllLines(log).Select(l => System.Text.Json.JsonDocument.Parse(l).RootElement).ToArray();
        Assert.Equal(4, lines.Length);
        Assert.Equal(4, lines[0].GetProperty("tp").GetInt32());
        Assert.Equal("2d", lines[0].GetProperty("tpMode").GetString());
        Assert.True(double.IsFinite(lines[1].GetProperty("loss").GetDouble()));
        Assert.True(lines[3].GetProperty("commBytesPerStep").GetDouble() > 0, "a 2D grid rank sends bytes every step");
        Assert.Contains("done: 2 steps, final loss ", r.Stdout);
    }

    [Fact]
    public void ModeAndDepthReachTheTrainerWithDpTimesTpDevices()
    {
        var (seen, devices) = TrainCommandTests.SeenByTrainer("train", "--tp", "8", "--tp-mode", "2.5d", "--tp-depth", "2", "--steps", "1", "--batch", "4", "--seq", "8");
        Assert.Equal(TensorParallelMode.TwoAndHalfD, seen.TpMode);
        Assert.Equal(2, seen.TpDepth);
        Assert.Equal(8, devices);
    }

    [Theory]
    [InlineData("6", "2d", "--tp 6 --tp-mode 2d needs a square number of ranks")]
    [InlineData("4", "3d", "--tp 4 --tp-mode 3d needs a cube number of ranks")]
    [InlineData("4", "2.5d", "--tp 4 --tp-mode 2.5d needs q²·d ranks")]
    public void TpOfTheWrongFormExitsTwoWithTheReason(string tp, string mode, string expected)
    {
        var r = CliRunner.Run("train", "--tp", tp, "--tp-mode", mode, "--steps", "1");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains(expected, r.Stderr);
    }

    [Fact]
    public void AnUnknownModeExitsTwo()
    {
        var r = CliRunner.Run("train", "--tp", "4", "--tp-mode", "2D", "--steps", "1");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("Argument '2D' not recognized", r.Stderr);
    }

    [Fact]
    public void DepthWithoutTwoAndAHalfDExitsTwo()
    {
        var r = CliRunner.Run("train", "--tp", "4", "--tp-mode", "2d", "--tp-depth", "2", "--steps", "1");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("--tp-depth 2 sets the depth of a 2.5d grid", r.Stderr);
    }
}
