using System.Diagnostics;
using System.Globalization;
using Hal.Models.Training;

namespace Hal.Cli.Training;

/// <summary>
/// The console view of a run. On a terminal, one progress line rewritten in place (<c>\r</c>) at every step; otherwise
/// (a pipe, a file, a CI log) one line every <c>logEvery</c> steps and at the last step, so logs stay short. Each line
/// shows step/total, loss, learning rate, tokens/s and the estimated time left. Messages are printed on their own
/// line; the end prints a summary: final loss, the corpus entropy and the gap to it (when known), tokens/s, peak
/// device bytes, skipped steps, the checkpoint folder and the elapsed time.
/// </summary>
internal sealed class ConsoleProgressObserver : ITrainingObserver
{
    private readonly TextWriter _out;
    private readonly bool _interactive;
    private readonly int _logEvery;
    private readonly Stopwatch _clock = new();
    private long _totalSteps;
    private long _startStep;
    private long _stepsSeen;
    private bool _progressLineOpen;
    private int _progressLineLength;

    /// <param name="writer">Where lines go.</param>
    /// <param name="interactive">Whether <paramref name="writer"/> is a terminal (rewrite one line) or not (a line per <paramref name="logEvery"/> steps).</param>
    /// <param name="logEvery">Steps between lines when not interactive (at least 1).</param>
    public ConsoleProgressObserver(TextWriter writer, bool interactive, int logEvery)
    {
        _out = writer ?? throw new ArgumentNullException(nameof(writer));
        _interactive = interactive;
        _logEvery = Math.Max(1, logEvery);
    }

    /// <summary>Whether the process's standard output is a terminal (and so the progress line can be rewritten in place).</summary>
    public static bool StdoutIsTerminal(TextWriter writer) => ReferenceEquals(writer, Console.Out) && !Console.IsOutputRedirected;

    public void OnStart(TrainStart start)
    {
        ArgumentNullException.ThrowIfNull(start);
        _totalSteps = start.Steps;
        _startStep = start.StartStep;
        _clock.Restart();
        string entropy = start.CorpusEntropy is { } h && !start.Data.Contains("entropy", StringComparison.Ordinal) ? F($", corpus entropy {h:F4} nats/token") : "";
        // StartStep is the first step this run makes: 1, or the step after a resumed checkpoint's.
        string resumed = start.StartStep > 1 ? F($", resuming at step {start.StartStep}") : "";
        WriteLine(F($"training {start.Model} ({start.Parameters:N0} parameters) on {start.Backend} × {start.Dp}: {start.Precision}, {start.Optimizer}, ") +
            F($"batch {start.Batch} × seq {start.Seq}, {start.Steps} steps, data {start.Data}{entropy}{resumed}"));
    }

    public void OnStep(TrainStep step)
    {
        ArgumentNullException.ThrowIfNull(step);
        _stepsSeen++;
        string line = ProgressLine(step);
        if (_interactive)
        {
            // Pad over what the previous, possibly longer, line left behind.
            string padded = line.Length < _progressLineLength ? line + new string(' ', _progressLineLength - line.Length) : line;
            _out.Write("\r" + padded);
            _out.Flush();
            _progressLineOpen = true;
            _progressLineLength = line.Length;
        }
        else if (step.Step % _logEvery == 0 || step.Step >= _totalSteps || _stepsSeen == 1)
        {
            _out.WriteLine(line);
        }
    }

    public void OnMessage(string message)
    {
        WriteLine(message ?? "");
    }

    public void OnEnd(TrainEnd end)
    {
        ArgumentNullException.ThrowIfNull(end);
        EndProgressLine();
        _out.WriteLine(F($"done: {end.Steps} steps, final loss {Number(end.FinalLoss, "F4")} nats/token") + Gap(end) + ";");
        _out.WriteLine(F($"  {end.TokensPerSec:F0} tokens/s; peak device memory {end.PeakDeviceBytes:N0} bytes; model states {end.ModelStateBytes:N0} bytes (all ranks); skipped steps {end.SkippedSteps}"));
        if (end.HostBytes > 0 || end.NvmeBytes > 0 || end.TierTrafficBytes > 0)
        {
            _out.WriteLine(F($"  off the device: host {end.HostBytes:N0} bytes, NVMe {end.NvmeBytes:N0} bytes; traffic between tiers {end.TierTrafficBytes:N0} bytes"));
        }
        if (end.CommunicationBytesPerStep > 0)
        {
            _out.WriteLine(F($"  communication: {end.CommunicationBytesPerStep:N0} bytes sent per rank per step (most: {end.CommunicationBytesPerStepMax:N0})"));
        }
        if (end.PipelineBubble is { } bubble)
        {
            _out.WriteLine(F($"  pipeline bubble {bubble:F3} measured (mean over stages, steps after the first), {end.PipelineBubbleTheoretical ?? double.NaN:F3} theoretical"));
        }
        if (end.PeakDeviceBytesPerRank.Count > 1)
        {
            _out.WriteLine("  peak device memory per rank: " + string.Join(", ", end.PeakDeviceBytesPerRank.Select(b => F($"{b:N0}"))) + " bytes");
        }
        _out.WriteLine("  checkpoint: " + (end.CheckpointDir ?? "none (give --out DIR to write one)"));
        _out.WriteLine("  elapsed: " + Duration(end.Elapsed));
        _out.Flush();
    }

    /// <summary>One progress line: <c>step    12/300  loss 3.1234  lr 1.00e-003  12,345 tokens/s  ETA 0:42</c>.</summary>
    internal string ProgressLine(TrainStep step)
    {
        int width = Math.Max(1, _totalSteps.ToString(CultureInfo.InvariantCulture).Length);
        string stepText = step.Step.ToString(CultureInfo.InvariantCulture).PadLeft(width);
        string skipped = step.Skipped ? F($"  skipped (loss scale {step.LossScale:G4})") : "";
        return F($"step {stepText}/{_totalSteps}  loss {Number(step.Loss, "F4")}  lr {step.Lr:0.00e+00}  {step.TokensPerSec:N0} tokens/s  ETA {Eta(step.Step)}{skipped}");
    }

    private string Eta(long step)
    {
        long done = step - Math.Max(1, _startStep) + 1;
        long left = _totalSteps - step;
        if (done <= 0 || left < 0)
        {
            return "-";
        }
        return Duration(TimeSpan.FromSeconds(_clock.Elapsed.TotalSeconds / done * left));
    }

    private static string Gap(TrainEnd end)
    {
        if (end.CorpusEntropy is not { } h)
        {
            return "";
        }
        return F($", corpus entropy {h:F4}, gap {Number(end.FinalLoss - h, "F4")}");
    }

    private void WriteLine(string text)
    {
        EndProgressLine();
        _out.WriteLine(text);
    }

    private void EndProgressLine()
    {
        if (_progressLineOpen)
        {
            _out.WriteLine();
            _progressLineOpen = false;
            _progressLineLength = 0;
        }
    }

    private static string Number(double value, string format) =>
        double.IsFinite(value) ? value.ToString(format, CultureInfo.InvariantCulture) : value.ToString(CultureInfo.InvariantCulture);

    private static string Duration(TimeSpan t) =>
        t.TotalHours >= 1 ? F($"{(int)t.TotalHours}:{t.Minutes:D2}:{t.Seconds:D2}") : F($"{t.Minutes}:{t.Seconds:D2}");

    private static string F(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
