using System.Text.Json;
using Hal.Cli.Training;
using Hal.Models.Training;

namespace Hal.Cli.Tests;

/// <summary>The observers of <c>hal train</c>: JSON lines (contract fields, null for non-finite numbers), console lines, the loss plot.</summary>
public sealed class TrainingObserverTests : IDisposable
{
    private static readonly TrainStart Start = new("gpt-tiny", 123_456, "cpu", 2, 2.5, 4, 8, 64, "synthetic", "fp32", "adamw", 1);

    private readonly string _dir = Directory.CreateTempSubdirectory("hal-observers-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static TrainEnd End(IReadOnlyList<double> losses, double finalLoss) =>
        new(finalLoss, 5000.5, 1 << 20, losses.Count, 1, 2.5, losses, "/tmp/ckpt", TimeSpan.FromSeconds(12.25)) { ModelStateBytes = 3 << 20 };

    [Fact]
    public void JsonLinesHaveTheContractFieldsOneObjectPerLine()
    {
        var text = new StringWriter();
        using (var log = new JsonLinesObserver(text))
        {
            log.OnStart(Start);
            log.OnStep(new TrainStep(1, 3.25, 1e-3, 4096, 0.75, false, 1));
            log.OnMessage("not in the log");
            log.OnStep(new TrainStep(2, 3.0, 2e-3, 4100, 0.5, true, 32768));
            log.OnEnd(End([3.25, 3.0], 3.0));
        }
        string[] lines = text.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(4, lines.Length);
        var docs = lines.Select(l => JsonDocument.Parse(l)).ToArray();
        var start = docs[0].RootElement;
        Assert.Equal("start", start.GetProperty("event").GetString());
        Assert.Equal("gpt-tiny", start.GetProperty("model").GetString());
        Assert.Equal(123_456, start.GetProperty("parameters").GetInt64());
        Assert.Equal("cpu", start.GetProperty("backend").GetString());
        Assert.Equal(2, start.GetProperty("dp").GetInt32());
        Assert.Equal(2.5, start.GetProperty("corpusEntropy").GetDouble());
        Assert.Equal("fp32", start.GetProperty("precision").GetString());
        Assert.Equal(64, start.GetProperty("seq").GetInt32());
        var step = docs[1].RootElement;
        Assert.Equal(1, step.GetProperty("step").GetInt64());
        Assert.Equal(3.25, step.GetProperty("loss").GetDouble());
        Assert.Equal(1e-3, step.GetProperty("lr").GetDouble());
        Assert.Equal(4096, step.GetProperty("tokensPerSec").GetDouble());
        Assert.Equal(0.75, step.GetProperty("gradNorm").GetDouble());
        Assert.False(step.GetProperty("skipped").GetBoolean());
        Assert.True(docs[2].RootElement.GetProperty("skipped").GetBoolean());
        Assert.Equal(32768, docs[2].RootElement.GetProperty("lossScale").GetDouble());
        var end = docs[3].RootElement;
        Assert.Equal("end", end.GetProperty("event").GetString());
        Assert.Equal(3.0, end.GetProperty("finalLoss").GetDouble());
        Assert.Equal(5000.5, end.GetProperty("tokensPerSec").GetDouble());
        Assert.Equal(1 << 20, end.GetProperty("peakDeviceBytes").GetInt64());
        Assert.Equal(3 << 20, end.GetProperty("modelStateBytes").GetInt64());
        Assert.Equal(12.25, end.GetProperty("elapsedSeconds").GetDouble());
        Assert.Equal("/tmp/ckpt", end.GetProperty("checkpointDir").GetString());
    }

    [Theory]
    [InlineData(double.NaN)]
    [InlineData(double.PositiveInfinity)]
    [InlineData(double.NegativeInfinity)]
    public void NonFiniteNumbersAreWrittenAsNull(double value)
    {
        var text = new StringWriter();
        using (var log = new JsonLinesObserver(text))
        {
            log.OnStart(Start with { CorpusEntropy = null });
            log.OnStep(new TrainStep(1, value, 1e-3, 10, value, true, 1));
            log.OnEnd(End([value], value));
        }
        var docs = text.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement).ToArray();
        Assert.Equal(JsonValueKind.Null, docs[0].GetProperty("corpusEntropy").ValueKind);
        Assert.Equal(JsonValueKind.Null, docs[1].GetProperty("loss").ValueKind);
        Assert.Equal(JsonValueKind.Null, docs[1].GetProperty("gradNorm").ValueKind);
        Assert.Equal(JsonValueKind.Null, docs[2].GetProperty("finalLoss").ValueKind);
    }

    [Fact]
    public void JsonLinesFileIsReadableAfterEachLine()
    {
        string path = Path.Combine(_dir, "run.jsonl");
        using var log = new JsonLinesObserver(path);
        log.OnStart(Start);
        log.OnStep(new TrainStep(1, 3.0, 1e-3, 10, 1, false, 1));
        // Still open, as in a run that crashed here: both lines are on disk already.
        using var reader = new StreamReader(new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite));
        string[] lines = reader.ReadToEnd().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(2, lines.Length);
        Assert.Equal(1, JsonDocument.Parse(lines[1]).RootElement.GetProperty("step").GetInt64());
    }

    [Fact]
    public void ConsoleWritesALinePerLogEveryStepsWhenNotATerminal()
    {
        var text = new StringWriter();
        var console = new ConsoleProgressObserver(text, interactive: false, logEvery: 2);
        console.OnStart(Start with { Steps = 5 });
        for (int s = 1; s <= 5; s++)
        {
            console.OnStep(new TrainStep(s, 4.0 - s / 4.0, 1e-3, 2048, 1, false, 1));
        }
        console.OnMessage("checkpoint written");
        console.OnEnd(End([3.75, 3.5, 3.25, 3.0, 2.75], 2.75));
        string[] lines = text.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        string[] progress = lines.Where(l => l.StartsWith("step ", StringComparison.Ordinal)).ToArray();
        // Step 1 (first), 2 and 4 (every 2), 5 (last).
        Assert.Equal(4, progress.Length);
        Assert.StartsWith("step 1/5  loss 3.7500  lr 1.00e-03  2,048 tokens/s  ETA ", progress[0]);
        Assert.StartsWith("step 5/5  loss 2.7500", progress[3]);
        Assert.DoesNotContain('\r', text.ToString());
        Assert.Contains("training gpt-tiny (123,456 parameters) on cpu × 2", lines[0]);
        Assert.Contains("checkpoint written", lines);
        Assert.Contains("done: 5 steps, final loss 2.7500 nats/token, corpus entropy 2.5000, gap 0.2500;", lines);
        Assert.Contains("  5000 tokens/s; peak device memory 1,048,576 bytes; model states 3,145,728 bytes (all ranks); skipped steps 1", lines);
        Assert.Contains("  checkpoint: /tmp/ckpt", lines);
        Assert.Contains("  elapsed: 0:12", lines);
    }

    [Fact]
    public void ConsoleRewritesOneLineOnATerminal()
    {
        var text = new StringWriter();
        var console = new ConsoleProgressObserver(text, interactive: true, logEvery: 100);
        console.OnStart(Start);
        console.OnStep(new TrainStep(1, 3.0, 1e-3, 10, 1, false, 1));
        console.OnStep(new TrainStep(2, double.NaN, 1e-3, 10, 1, true, 512));
        console.OnEnd(End([3.0, double.NaN], double.NaN));
        string output = text.ToString();
        Assert.Equal(2, output.Count(c => c == '\r'));
        Assert.Contains("\rstep 2/4  loss NaN", output);
        Assert.Contains("skipped (loss scale 512)", output);
        Assert.Contains("final loss NaN nats/token, corpus entropy 2.5000, gap NaN;", output);
    }

    [Fact]
    public void PlotIsAPngOfTheRequestedSize()
    {
        string path = Path.Combine(_dir, "loss.png");
        var plot = new LossPlotObserver(path, 640, 480);
        plot.OnStart(Start);
        double[] losses = [4.0, 3.5, double.NaN, 3.0];
        for (int i = 0; i < losses.Length; i++)
        {
            plot.OnStep(new TrainStep(i + 1, losses[i], 1e-3, 10, 1, false, 1));
        }
        plot.OnEnd(End(losses, 3.0));
        byte[] png = File.ReadAllBytes(path);
        byte[] signature = [0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A];
        Assert.Equal(signature, png[..8]);
        // The IHDR chunk comes first: width and height are big-endian at bytes 16..23.
        Assert.Equal("IHDR", System.Text.Encoding.ASCII.GetString(png, 12, 4));
        Assert.Equal(640, System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(16)));
        Assert.Equal(480, System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(20)));
        // A plot with text, axes and a curve compresses to well over a kilobyte; a blank image would be a few hundred bytes.
        Assert.True(png.Length > 4096, $"{png.Length} bytes");
    }

    [Fact]
    public void PlotIsNotWrittenForZeroSteps()
    {
        string path = Path.Combine(_dir, "none.png");
        var plot = new LossPlotObserver(path);
        plot.OnStart(Start);
        plot.OnEnd(End([], double.NaN));
        Assert.False(File.Exists(path));
    }

    [Fact]
    public void TrainWithJsonLogAndPlotWritesBoth()
    {
        string log = Path.Combine(_dir, "run.jsonl");
        string png = Path.Combine(_dir, "run.png");
        Commands.TrainCommand.TrainerOverride.Value = (config, _, _, observer, _) => TrainCommandTests.FakeRun(config, observer, [3.0, 2.75, 2.5]);
        try
        {
            var r = CliRunner.Run("train", "--steps", "3", "--json-log", log, "--plot", png);
            Assert.True(r.ExitCode == 0, r.Stderr);
        }
        finally
        {
            Commands.TrainCommand.TrainerOverride.Value = null;
        }
        string[] lines = File.ReadAllLines(log);
        Assert.Equal(["start", "step", "step", "step", "end"], lines.Select(l => JsonDocument.Parse(l).RootElement.GetProperty("event").GetString()));
        Assert.Equal(0x89, File.ReadAllBytes(png)[0]);
    }
}
