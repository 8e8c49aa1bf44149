using Hal.Cli.Commands;
using Hal.Models.Training;
using Hal.Parallel.Pipeline;

namespace Hal.Cli.Tests;

/// <summary><c>hal train --pp --pp-schedule --pp-chunks --microbatches</c>: a pipeline run trains end to end and reports its bubble, the values reach the trainer, and impossible layouts are refused before any work.</summary>
public sealed class TrainPpOptionTests
{
    [Fact]
    public void PpTwoOneFOneBTrainsAndPrintsTheBubble()
    {
        string log = Path.Combine(Path.GetTempPath(), $"hal-pp-{Guid.NewGuid():N}.jsonl");
        try
        {
            var r = CliRunner.Run("train", "--pp", "2", "--pp-schedule", "1f1b", "--microbatches", "4", "--steps", "2", "--batch", "4", "--seq", "16",
                "--log-every", "1", "--json-log", log);
            Assert.True(r.ExitCode == 0, r.Stderr);
            Assert.Contains("done: 2 steps, final loss ", r.Stdout);
            Assert.Contains("pipeline bubble ", r.Stdout);
            // (p − 1)/(m + p − 1) = 1/5 for p 2, m 4.
            Assert.Contains("0.200 theoretical", r.Stdout);
            var lines = File.ReadLines(log).ToList();
            using var start = System.Text.Json.JsonDocument.Parse(lines[0]);
            Assert.Equal(2, start.RootElement.GetProperty("pp").GetInt32());
            Assert.Equal("1f1b", start.RootElement.GetProperty("ppSchedule").GetString());
            Assert.Equal(1, start.RootElement.GetProperty("ppChunks").GetInt32());
            Assert.Equal(4, start.RootElement.GetProperty("microbatches").GetInt32());
            using var end = System.Text.Json.JsonDocument.Parse(lines[^1]);
            double bubble = end.RootElement.GetProperty("pipelineBubble").GetDouble();
            Assert.InRange(bubble, 0, 0.999999);
            Assert.Equal(0.2, end.RootElement.GetProperty("pipelineBubbleTheoretical").GetDouble(), 12);
            Assert.Equal(2, end.RootElement.GetProperty("peakDeviceBytesPerRank").GetArrayLength());
        }
        finally
        {
            File.Delete(log);
        }
    }

    [Fact]
    public void PpReachesTheTrainerWithDpTimesPpDevices()
    {
        var (seen, devices) = TrainCommandTests.SeenByTrainer("train", "--pp", "2", "--pp-schedule", "interleaved", "--pp-chunks", "2", "--microbatches", "2", "--dp", "2",
                "--steps", "1", "--batch", "4", "--seq", "8");
        Assert.Equal(2, seen.Pp);
        Assert.Equal(PipelineScheduleKind.Interleaved, seen.PpSchedule);
        Assert.Equal(2, seen.PpChunks);
        Assert.Equal(2, seen.MicroBatches);
        Assert.Equal(4, devices);
    }

    [Theory]
    [InlineData("--pp-schedule interleaved needs --pp-chunks 2 or more", "--pp", "2", "--pp-schedule", "interleaved")]
    [InlineData("--microbatches 3 is not a multiple of 2", "--pp", "2", "--pp-schedule", "interleaved", "--pp-chunks", "2", "--microbatches", "3", "--batch", "3")]
    [InlineData("use --pp-schedule interleaved", "--pp", "2", "--pp-chunks", "2")]
    [InlineData("--pp 2 and --zero 2 do not run together; use --zero 1 or --zero 0", "--pp", "2", "--zero", "2")]
    [InlineData("--microbatches 4 and --grad-accum 2 disagree", "--pp", "2", "--microbatches", "4", "--grad-accum", "2")]
    [InlineData("--pp 0: must be at least 1", "--pp", "0")]
    public void ImpossibleLayoutsExitTwoWithTheReason(string message, params string[] options)
    {
        var r = CliRunner.Run(["train", .. options]);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains(message, r.Stderr);
    }

    [Fact]
    public void MoreStagesThanBlocksIsRefusedWithTheLayerCount()
    {
        // gpt-tiny has 2 blocks.
        var r = CliRunner.Run("train", "--pp", "4", "--steps", "1", "--batch", "4", "--seq", "8", "--microbatches", "4");
        Assert.NotEqual(0, r.ExitCode);
        Assert.Contains("has 2 layers, fewer than --pp 4 × --pp-chunks 1 = 4 model chunks", r.Stderr);
    }
}
