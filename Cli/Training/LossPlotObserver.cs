using System.Globalization;
using Hal.Models.Training;

namespace Hal.Cli.Training;

/// <summary>
/// <c>--plot F.png</c>: the loss curve (loss in nats/token against the step), with the corpus's entropy as a
/// horizontal line when it is known (the floor a perfect model reaches), written once at the end. Non-finite losses are
/// left out of the curve. Nothing is written when the run made no step.
/// </summary>
internal sealed class LossPlotObserver(string path, int widthPixels = LossPlotObserver.DefaultWidthPixels, int heightPixels = LossPlotObserver.DefaultHeightPixels) : ITrainingObserver
{
    /// <summary>Width of the image in pixels.</summary>
    public const int DefaultWidthPixels = 900;

    /// <summary>Height of the image in pixels.</summary>
    public const int DefaultHeightPixels = 540;

    private readonly List<(long Step, double Loss)> _points = [];
    private TrainStart? _start;

    /// <summary>Where the PNG goes.</summary>
    public string Path { get; } = path ?? throw new ArgumentNullException(nameof(path));

    public void OnStart(TrainStart start) => _start = start;

    public void OnStep(TrainStep step)
    {
        ArgumentNullException.ThrowIfNull(step);
        _points.Add((step.Step, step.Loss));
    }

    public void OnMessage(string message)
    {
    }

    public void OnEnd(TrainEnd end)
    {
        ArgumentNullException.ThrowIfNull(end);
        if (_points.Count == 0)
        {
            // A trainer that reports only the end still has the losses; number them from the run's first step.
            long first = Math.Max(1, _start?.StartStep ?? 1);
            for (int i = 0; i < end.Losses.Count; i++)
            {
                _points.Add((first + i, end.Losses[i]));
            }
        }
        if (_points.Count == 0)
        {
            return;
        }
        Write(end.CorpusEntropy ?? _start?.CorpusEntropy);
    }

    private void Write(double? entropy)
    {
        var finite = _points.Where(p => double.IsFinite(p.Loss)).ToArray();
        var plot = new ScottPlot.Plot();
        try
        {
            if (finite.Length > 0)
            {
                var curve = plot.Add.Scatter(finite.Select(p => (double)p.Step).ToArray(), finite.Select(p => p.Loss).ToArray());
                curve.MarkerSize = finite.Length > 50 ? 0 : 4;
                curve.LineWidth = 2;
                curve.LegendText = "training loss";
            }
            if (entropy is { } h && double.IsFinite(h))
            {
                var floor = plot.Add.HorizontalLine(h);
                floor.LinePattern = ScottPlot.LinePattern.Dashed;
                floor.LineWidth = 1.5f;
                floor.LegendText = string.Create(CultureInfo.InvariantCulture, $"corpus entropy {h:F4}");
            }
            string model = _start is null ? "" : $"{_start.Model}, {_start.Backend} × {_start.Dp}, {_start.Precision}, {_start.Optimizer}";
            plot.Title(model.Length > 0 ? $"Training loss ({model})" : "Training loss");
            plot.XLabel("step");
            plot.YLabel("loss (nats/token)");
            plot.ShowLegend(ScottPlot.Alignment.UpperRight);
            plot.SavePng(Path, widthPixels, heightPixels);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or DirectoryNotFoundException)
        {
            throw new UsageException($"--plot {Path}: cannot write the image ({e.Message}); give a path in an existing, writable folder");
        }
        finally
        {
            plot.Dispose();
        }
    }
}
