using Hal.Models.Training;

namespace Hal.Cli.Training;

/// <summary>Forwards every event to several observers, in the order given (console, JSON lines, plot…).</summary>
internal sealed class CompositeObserver(IReadOnlyList<ITrainingObserver> observers) : ITrainingObserver
{
    /// <summary>The observers events go to.</summary>
    public IReadOnlyList<ITrainingObserver> Observers { get; } = observers ?? throw new ArgumentNullException(nameof(observers));

    public void OnStart(TrainStart start)
    {
        foreach (var o in Observers)
        {
            o.OnStart(start);
        }
    }

    public void OnStep(TrainStep step)
    {
        foreach (var o in Observers)
        {
            o.OnStep(step);
        }
    }

    public void OnMessage(string message)
    {
        foreach (var o in Observers)
        {
            o.OnMessage(message);
        }
    }

    public void OnEnd(TrainEnd end)
    {
        foreach (var o in Observers)
        {
            o.OnEnd(end);
        }
    }
}
