using System.CommandLine;

namespace Hal.Cli.Commands;

/// <summary><c>hal train</c>: the training entry. The trainer lives in the Models layer; until it lands this says so.</summary>
internal static class TrainCommand
{
    /// <summary>What <c>hal train</c> was asked to do.</summary>
    internal sealed record TrainSettings(string Backend, int? Steps, long? DeviceMemoryBytes, IReadOnlyList<string> Plugins);

    public static Command Create(GlobalOptions globals)
    {
        var backend = new Option<string>("--backend")
        {
            Description = "Backend to train on (its device 0).",
            HelpName = "NAME",
            DefaultValueFactory = _ => "cpu",
        };
        var steps = new Option<int?>("--steps")
        {
            Description = "Number of optimizer steps.",
            HelpName = "N",
        };
        steps.Validators.Add(result =>
        {
            if (result.GetValueOrDefault<int?>() is <= 0)
            {
                result.AddError("--steps: must be a positive number of steps");
            }
        });
        var command = new Command("train", "Train a model.") { backend, steps };
        command.SetAction(parse => Run(
            new TrainSettings(parse.GetValue(backend) ?? "cpu", parse.GetValue(steps), parse.GetValue(globals.DeviceMemory), parse.GetValue(globals.Plugins) ?? []),
            parse.InvocationConfiguration.Output));
        return command;
    }

    /// <summary>Runs training with <paramref name="settings"/>; returns the exit code.</summary>
    internal static int Run(TrainSettings settings, TextWriter stdout)
    {
        _ = settings;
        stdout.WriteLine("training arrives with the Models layer");
        return 0;
    }
}
