using Hal.Cli.Commands;
using Hal.Models.Training;

namespace Hal.Cli.Tests;

/// <summary><c>hal train --zero</c>, <c>--offload</c>, <c>--nvme-dir</c>, <c>--host-memory</c>: values reach the trainer, bad ones are refused before any work.</summary>
public sealed class TrainZeroOptionTests
{
    [Theory]
    [InlineData("4")]
    [InlineData("9")]
    public void StageAboveThreeExitsTwoSayingWhichStagesExist(string stage)
    {
        var r = CliRunner.Run("train", "--zero", stage);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains($"--zero {stage}: the ZeRO stage is 0 (off), 1 (optimizer states sharded over the dp ranks), 2 (and gradients) or 3 (and parameters)", r.Stderr);
        Assert.Equal("", r.Stdout);
    }

    [Theory]
    [InlineData("static:2,0")]
    [InlineData("static:0.5")]
    [InlineData("sometimes")]
    public void BadOffloadExitsTwoWithTheAcceptedForms(string offload)
    {
        var r = CliRunner.Run("train", "--offload", offload);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains($"--offload '{offload}': give none, auto, or static:PARAMS,OPTIM", r.Stderr);
    }

    [Fact]
    public void NvmeDirWithoutOffloadExitsTwo()
    {
        var r = CliRunner.Run("train", "--nvme-dir", Path.GetTempPath());
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("give --offload static:P,O or auto as well", r.Stderr);
    }

    [Fact]
    public void MissingNvmeDirExitsTwo()
    {
        var r = CliRunner.Run("train", "--offload", "auto", "--nvme-dir", "/no/such/dir/for/hal");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("--nvme-dir /no/such/dir/for/hal: no such directory", r.Stderr);
    }

    [Fact]
    public void OffloadNvmeAndHostLimitReachTheTrainerConfig()
    {
        TrainConfig? seen = null;
        TrainCommand.TrainerOverride.Value = (config, devices, world, observer, _) =>
        {
            seen = config;
            return TrainCommandTests.FakeRun(config, observer, [1.0]);
        };
        try
        {
            var r = CliRunner.Run("train", "--zero", "3", "--offload", "static:0.25,0.75", "--nvme-dir", Path.GetTempPath(), "--host-memory", "3MiB", "--steps", "1", "--batch", "2", "--seq", "8");
            Assert.True(r.ExitCode == 0, r.Stderr);
        }
        finally
        {
            TrainCommand.TrainerOverride.Value = null;
        }
        Assert.NotNull(seen);
        Assert.Equal(3, seen.Zero);
        Assert.Equal(new Hal.Models.Zero.OffloadSpec(Hal.Models.Zero.OffloadPolicy.Static, 0.25, 0.75), seen.Offload);
        Assert.Equal(Path.GetTempPath(), seen.NvmeDir);
        Assert.Equal(3L << 20, seen.HostMemoryBytes);
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
