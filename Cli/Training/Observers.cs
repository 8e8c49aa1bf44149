using Hal.Models.Training;

namespace Hal.Cli.Training;

/// <summary>The observers a <c>hal train</c> run reports to (console, and the JSON-lines log and plot when asked), owned together.</summary>
internal sealed class Observers : IDisposable
{
    private readonly List<IDisposable> _owned;

    private Observers(ITrainingObserver observer, List<IDisposable> owned)
    {
        Observer = observer;
        _owned = owned;
    }

    /// <summary>All of them behind one observer.</summary>
    public ITrainingObserver Observer { get; }

    /// <summary>
    /// The console view on <paramref name="stdout"/>, plus <c>--json-log</c> and <c>--plot</c> when given. The log file is
    /// created here, so that a bad path fails before training starts.
    /// </summary>
    public static Observers Create(TrainArguments args, TextWriter stdout, bool interactive)
    {
        ArgumentNullException.ThrowIfNull(args);
        var list = new List<ITrainingObserver> { new ConsoleProgressObserver(stdout, interactive, args.Config.LogEvery) };
        var owned = new List<IDisposable>();
        if (args.JsonLog is not null)
        {
            var log = new JsonLinesObserver(args.JsonLog);
            owned.Add(log);
            list.Add(log);
        }
        if (args.Plot is not null)
        {
            list.Add(new LossPlotObserver(args.Plot));
        }
        return new Observers(new CompositeObserver(list), owned);
    }

    /// <summary>No output (the ranks of an mpirun job other than rank 0).</summary>
    public static Observers Silent() => new(new CompositeObserver([]), []);

    public void Dispose()
    {
        foreach (var o in _owned)
        {
            o.Dispose();
        }
    }
}
