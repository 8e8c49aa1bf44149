namespace Hal.Parallel.Pipeline;

/// <summary>
/// A pipeline layout that cannot be built: fewer layers than model chunks, a schedule whose preconditions fail
/// (interleaving with a micro-batch count that is not a multiple of the stage count), or a stage that does not fit
/// its schedule. The message says which numbers disagree and what to change.
/// </summary>
public sealed class PipelineException(string message) : HalException(message);
