using Hal.Cli.Commands;
using Hal.Models.Training;

namespace Hal.Cli.Tests;

/// <summary><c>hal train --zero</c>: stage 1 reaches the trainer, stages 2 and 3 are refused before any work.</summary>
public sealed class TrainZeroOptionTests
{
    [Theory]
    [InlineData(2)]
    [InlineData(3)]
    public void UnavailableStageExitsTwoSayingWhichStagesExist(int stage)
    {
        var r = CliRunner.Run("train", "--zero", stage.ToString(System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal(2, r.ExitCode);
        Assert.Contains($"ZeRO stage {stage} is not available yet; use --zero 1 or 0", r.Stderr);
        Assert.Equal("", r.Stdout);
    }

    [Fact]
    public void NegativeStageExitsTwo()
    {
        var r = CliRunner.Run("train", "--zero", "-1");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("--zero -1", r.Stderr);
    }

    [Fact]
    public void StageOneReachesTheTrainerConfig()
    {
        int? seen = null;
        TrainCommand.TrainerOverride.Value = (config, devices, world, observer, _) =>
        {
            seen = config.Zero;
            return TrainCommandTests.FakeRun(config, observer, [1.0]);
        };
        try
        {
            var r = CliRunner.Run("train", "--zero", "1", "--dp", "2", "--steps", "1", "--batch", "2", "--seq", "8");
            Assert.True(r.ExitCode == 0, r.Stderr);
        }
        finally
        {
            TrainCommand.TrainerOverride.Value = null;
        }
        Assert.Equal(1, seen);
    }

    [Fact]
    public void StageDefaultsToZero()
    {
        int? seen = null;
        TrainCommand.TrainerOverride.Value = (config, devices, world, observer, _) =>
        {
            seen = config.Zero;
            return TrainCommandTests.FakeRun(config, observer, [1.0]);
        };
        try
        {
            var r = CliRunner.Run("train", "--steps", "1", "--batch", "2", "--seq", "8");
            Assert.True(r.ExitCode == 0, r.Stderr);
        }
        finally
        {
            TrainCommand.TrainerOverride.Value = null;
        }
        Assert.Equal(0, seen);
    }
}
