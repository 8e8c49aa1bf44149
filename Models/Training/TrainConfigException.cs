namespace Hal.Models.Training;

/// <summary>A training configuration that cannot run (found before any work); the message says what to change.</summary>
public sealed class TrainConfigException(string message) : HalException(message);
