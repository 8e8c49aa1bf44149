namespace Hal.Parallel.Pipeline;

/// <summary>The shape and dtype of a tensor that crosses a stage boundary, so the receiver can allocate it.</summary>
/// <param name="Shape">Shape of one micro-batch's tensor.</param>
/// <param name="DType">Element type.</param>
public readonly record struct PipelineTensorSpec(Shape Shape, DType DType);

/// <summary>
/// The part of a model one pipeline stage runs: v local chunks, chunk k being model chunk k·p + s. The stage owns its
/// parameters and their gradients, and accumulates gradients over the micro-batches of a step; it keeps whatever a
/// backward needs from its forward (keyed by chunk and micro-batch) and decides what its first chunk reads (the
/// micro-batch of data) and what its last chunk computes (the loss and its gradient).
/// Ownership: a tensor the executor passes in becomes the stage's (it may keep it until the backward, and disposes it);
/// a tensor the stage returns becomes the executor's (it sends and disposes it).
/// </summary>
public interface IPipelineStage
{
    /// <summary>Number of local chunks v.</summary>
    int ChunkCount { get; }

    /// <summary>What enters local chunk <paramref name="chunk"/> forward (and what its backward returns); not asked for model chunk 0.</summary>
    PipelineTensorSpec InputSpec(int chunk);

    /// <summary>What leaves local chunk <paramref name="chunk"/> forward (and what its backward receives); not asked for the last model chunk.</summary>
    PipelineTensorSpec OutputSpec(int chunk);

    /// <summary>
    /// Runs local chunk <paramref name="chunk"/> forward on micro-batch <paramref name="micro"/>. <paramref name="input"/>
    /// is null for model chunk 0 (the stage reads its data). Returns the output activation; for the last model chunk the
    /// return value is not sent (return null, or the loss: the executor disposes it).
    /// </summary>
    Tensor? Forward(int chunk, int micro, Tensor? input);

    /// <summary>
    /// Runs local chunk <paramref name="chunk"/> backward on micro-batch <paramref name="micro"/>, adding to its parameter
    /// gradients. <paramref name="outputGradient"/> is null for the last model chunk (the stage differentiates its loss).
    /// Returns the input gradient; for model chunk 0 it is not sent (return null).
    /// </summary>
    Tensor? Backward(int chunk, int micro, Tensor? outputGradient);
}
