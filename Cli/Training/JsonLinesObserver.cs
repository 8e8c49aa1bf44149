using System.Text;
using System.Text.Json;
using Hal.Models.Training;

namespace Hal.Cli.Training;

/// <summary>
/// <c>--json-log F</c>: one JSON object per line, camelCase, numbers in invariant form. The first line is
/// <c>{"event":"start", model, parameters, backend, dp, tp, pp, ppSchedule, ppChunks, microbatches, sp, spMode, zero, offload, corpusEntropy, precision, optimizer, batch, seq, steps, data, startStep}</c>,
/// then one <c>{"event":"step", step, loss, lr, tokensPerSec, gradNorm, skipped, lossScale}</c> per optimizer step, and last
/// <c>{"event":"end", finalLoss, tokensPerSec, peakDeviceBytes, peakDeviceBytesPerRank, pipelineBubble, pipelineBubbleTheoretical (null without --pp), modelStateBytes, hostBytes, nvmeBytes, tierTrafficBytes, commBytesPerStep, commBytesPerStepMax, steps, skippedSteps, corpusEntropy, checkpointDir, elapsedSeconds}</c>.
/// A number that is NaN or ±Inf (a diverged loss) is written as <c>null</c>, so every line stays valid JSON. Each line is
/// flushed as it is written: a run that crashes leaves a log that parses up to its last step.
/// </summary>
internal sealed class JsonLinesObserver : ITrainingObserver, IDisposable
{
    private readonly TextWriter _writer;
    private readonly bool _ownsWriter;
    private readonly MemoryStream _line = new();

    /// <summary>Creates (or truncates) <paramref name="path"/>; the folder must exist.</summary>
    /// <exception cref="UsageException">the file cannot be created.</exception>
    public JsonLinesObserver(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        try
        {
            var stream = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.Read);
            _writer = new StreamWriter(stream, new UTF8Encoding(encoderShouldEmitUTF8Identifier: false)) { AutoFlush = true };
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or NotSupportedException or ArgumentException)
        {
            throw new UsageException($"--json-log {path}: cannot create the file ({e.Message}); give a path in an existing, writable folder");
        }
        _ownsWriter = true;
    }

    /// <summary>Writes to <paramref name="writer"/> (not disposed with the observer).</summary>
    public JsonLinesObserver(TextWriter writer)
    {
        _writer = writer ?? throw new ArgumentNullException(nameof(writer));
        _ownsWriter = false;
    }

    public void OnStart(TrainStart start)
    {
        ArgumentNullException.ThrowIfNull(start);
        WriteLine(w =>
        {
            w.WriteString("event", "start");
            w.WriteString("model", start.Model);
            w.WriteNumber("parameters", start.Parameters);
            w.WriteString("backend", start.Backend);
            w.WriteNumber("dp", start.Dp);
            w.WriteNumber("tp", start.Tp);
            w.WriteString("tpMode", start.TpMode);
            w.WriteNumber("pp", start.Pp);
            w.WriteString("ppSchedule", start.PpSchedule);
            w.WriteNumber("ppChunks", start.PpChunks);
            w.WriteNumber("microbatches", start.MicroBatches);
            w.WriteNumber("sp", start.Sp);
            w.WriteString("spMode", start.SpMode);
            w.WriteNumber("zero", start.Zero);
            w.WriteString("offload", start.Offload);
            WriteNumber(w, "corpusEntropy", start.CorpusEntropy);
            w.WriteString("precision", start.Precision);
            w.WriteString("optimizer", start.Optimizer);
            w.WriteNumber("batch", start.Batch);
            w.WriteNumber("seq", start.Seq);
            w.WriteNumber("steps", start.Steps);
            w.WriteString("data", start.Data);
            w.WriteNumber("startStep", start.StartStep);
        });
    }

    public void OnStep(TrainStep step)
    {
        ArgumentNullException.ThrowIfNull(step);
        WriteLine(w =>
        {
            w.WriteString("event", "step");
            w.WriteNumber("step", step.Step);
            WriteNumber(w, "loss", step.Loss);
            WriteNumber(w, "lr", step.Lr);
            WriteNumber(w, "tokensPerSec", step.TokensPerSec);
            WriteNumber(w, "gradNorm", step.GradNorm);
            w.WriteBoolean("skipped", step.Skipped);
            WriteNumber(w, "lossScale", step.LossScale);
        });
    }

    /// <summary>Messages are for people; the log keeps to the numbers.</summary>
    public void OnMessage(string message)
    {
    }

    public void OnEnd(TrainEnd end)
    {
        ArgumentNullException.ThrowIfNull(end);
        WriteLine(w =>
        {
            w.WriteString("event", "end");
            WriteNumber(w, "finalLoss", end.FinalLoss);
            WriteNumber(w, "tokensPerSec", end.TokensPerSec);
            w.WriteNumber("peakDeviceBytes", end.PeakDeviceBytes);
            w.WriteStartArray("peakDeviceBytesPerRank");
            foreach (long bytes in end.PeakDeviceBytesPerRank)
            {
                w.WriteNumberValue(bytes);
            }
            w.WriteEndArray();
            WriteNumber(w, "pipelineBubble", end.PipelineBubble);
            WriteNumber(w, "pipelineBubbleTheoretical", end.PipelineBubbleTheoretical);
            w.WriteNumber("modelStateBytes", end.ModelStateBytes);
            w.WriteNumber("hostBytes", end.HostBytes);
            w.WriteNumber("nvmeBytes", end.NvmeBytes);
            w.WriteNumber("tierTrafficBytes", end.TierTrafficBytes);
            w.WriteNumber("commBytesPerStep", Math.Round(end.CommunicationBytesPerStep));
            w.WriteNumber("commBytesPerStepMax", Math.Round(end.CommunicationBytesPerStepMax));
            w.WriteNumber("steps", end.Steps);
            w.WriteNumber("skippedSteps", end.SkippedSteps);
            WriteNumber(w, "corpusEntropy", end.CorpusEntropy);
            if (end.CheckpointDir is null)
            {
                w.WriteNull("checkpointDir");
            }
            else
            {
                w.WriteString("checkpointDir", end.CheckpointDir);
            }
            WriteNumber(w, "elapsedSeconds", end.Elapsed.TotalSeconds);
        });
    }

    public void Dispose()
    {
        if (_ownsWriter)
        {
            _writer.Dispose();
        }
        _line.Dispose();
    }

    // JSON has no NaN or Infinity: a non-finite value is written as null (the docs say so).
    private static void WriteNumber(Utf8JsonWriter w, string name, double? value)
    {
        if (value is { } v && double.IsFinite(v))
        {
            w.WriteNumber(name, v);
        }
        else
        {
            w.WriteNull(name);
        }
    }

    private void WriteLine(Action<Utf8JsonWriter> body)
    {
        _line.SetLength(0);
        using (var w = new Utf8JsonWriter(_line, new JsonWriterOptions { Indented = false }))
        {
            w.WriteStartObject();
            body(w);
            w.WriteEndObject();
        }
        _writer.WriteLine(Encoding.UTF8.GetString(_line.GetBuffer(), 0, (int)_line.Length));
        _writer.Flush();
    }
}
