namespace Hal.Parallel.Pipeline;

/// <summary>The three schedules a pipeline can run.</summary>
public enum PipelineScheduleKind
{
    /// <summary>All forwards, then all backwards (GPipe): m micro-batches of activations in flight.</summary>
    GPipe,

    /// <summary>One forward, one backward (PipeDream-flush): a warm-up of p − s − 1 forwards, then alternation, then a cool-down of backwards; at most p − s in flight.</summary>
    OneFOneB,

    /// <summary>1F1B over v virtual chunks per stage (Megatron-LM's interleaved schedule): the bubble shrinks by v for v times the messages.</summary>
    Interleaved,
}

/// <summary>Whether an action runs a chunk forward or backward.</summary>
public enum PipelineActionKind
{
    /// <summary>Runs a chunk forward on one micro-batch: receives its input (unless first model chunk), sends its output (unless last).</summary>
    Forward,

    /// <summary>Runs a chunk backward on one micro-batch: receives the output gradient (unless last model chunk), sends the input gradient (unless first).</summary>
    Backward,
}

/// <summary>
/// One step of a stage's schedule: run local chunk <see cref="Chunk"/> (model chunk <see cref="ModelChunk"/>) forward or
/// backward on micro-batch <see cref="Micro"/>. The communication it implies is spelled out: before computing, receive
/// from stage <see cref="ReceiveFrom"/> with tag <see cref="ReceiveTag"/> (none when −1); after computing, send to
/// stage <see cref="SendTo"/> with tag <see cref="SendTag"/> (none when −1).
/// </summary>
/// <param name="Kind">Forward or backward.</param>
/// <param name="Micro">Micro-batch index, 0 ≤ Micro &lt; m.</param>
/// <param name="Chunk">Local chunk index on this stage, 0 ≤ Chunk &lt; v.</param>
/// <param name="ModelChunk">Position of the chunk in the model, Chunk·p + stage.</param>
/// <param name="ReceiveFrom">Stage the input (forward: activation, backward: output gradient) comes from; −1 when it is made here (data, loss).</param>
/// <param name="ReceiveTag">Tag of that message.</param>
/// <param name="SendTo">Stage the result goes to; −1 when nothing is sent (last model chunk forward, first model chunk backward).</param>
/// <param name="SendTag">Tag of that message.</param>
public readonly record struct PipelineAction(
    PipelineActionKind Kind, int Micro, int Chunk, int ModelChunk, int ReceiveFrom, int ReceiveTag, int SendTo, int SendTag)
{
    /// <summary>
    /// The tag of a message leaving model chunk <paramref name="modelChunk"/> for micro-batch <paramref name="micro"/>:
    /// 2·(micro·chunkCount + modelChunk), plus 1 for a gradient. Unique per (direction, micro, chunk), so tag-matched
    /// receives can never take another micro-batch's or chunk's tensor.
    /// </summary>
    public static int Tag(PipelineActionKind kind, int micro, int modelChunk, int chunkCount) =>
        checked((2 * ((micro * chunkCount) + modelChunk)) + (kind == PipelineActionKind.Backward ? 1 : 0));

    /// <inheritdoc />
    public override string ToString() => $"{(Kind == PipelineActionKind.Forward ? "F" : "B")}(micro {Micro}, chunk {Chunk})";
}
