namespace Hal.Parallel.Pipeline;

// Legend: p stages, s this stage, m micro-batches, v local chunks per stage; local chunk k of stage s is model chunk k·p + s.

/// <summary>
/// The ordered actions one stage runs in one training step: stage s of p, m micro-batches, v local chunks per stage
/// (model chunk k·p + s is local chunk k of stage s). Pure data, built the same way on every rank, so the whole
/// pipeline's behaviour can be checked without running it: every forward before its backward, each chunk's input made
/// by the previous chunk first, and the peak number of micro-batch activations a stage holds.
/// </summary>
public sealed class PipelineSchedule
{
    private readonly PipelineAction[] _actions;

    private PipelineSchedule(PipelineScheduleKind kind, int stage, int stages, int microBatches, int chunksPerStage, PipelineAction[] actions)
    {
        Kind = kind;
        Stage = stage;
        Stages = stages;
        MicroBatches = microBatches;
        ChunksPerStage = chunksPerStage;
        _actions = actions;
        int inFlight = 0;
        foreach (var a in actions)
        {
            inFlight += a.Kind == PipelineActionKind.Forward ? 1 : -1;
            PeakInFlight = Math.Max(PeakInFlight, inFlight);
        }
    }

    /// <summary>Which schedule this is.</summary>
    public PipelineScheduleKind Kind { get; }

    /// <summary>This stage, 0 ≤ Stage &lt; Stages.</summary>
    public int Stage { get; }

    /// <summary>Number of stages p.</summary>
    public int Stages { get; }

    /// <summary>Number of micro-batches m per step.</summary>
    public int MicroBatches { get; }

    /// <summary>Local chunks per stage v.</summary>
    public int ChunksPerStage { get; }

    /// <summary>Number of model chunks p·v.</summary>
    public int ChunkCount => Stages * ChunksPerStage;

    /// <summary>The actions in the order this stage runs them: m·v forwards and m·v backwards.</summary>
    public IReadOnlyList<PipelineAction> Actions => _actions;

    /// <summary>
    /// The most (micro-batch, chunk) activations this stage holds at once: forwards run whose backward has not.
    /// GPipe: m·v; 1F1B: min(m, p − s); interleaved: min(m·v, 2(p − s − 1) + (v − 1)·p + 1).
    /// </summary>
    public int PeakInFlight { get; }

    /// <summary>
    /// The ideal bubble fraction, idle time over step time when every chunk costs the same and messages are free:
    /// (p − 1)/(v·m + p − 1), which is (p − 1)/(m + p − 1) for v = 1 (the p − 1 fill and drain ticks over m useful ones,
    /// shrunk v-fold when each tick runs a 1/v-sized chunk).
    /// </summary>
    public double TheoreticalBubbleFraction => (Stages - 1) / (double)((ChunksPerStage * MicroBatches) + Stages - 1);

    /// <summary>Parses a schedule name as the command line spells it: <c>gpipe</c>, <c>1f1b</c>, <c>interleaved</c>.</summary>
    /// <exception cref="PipelineException">Any other name.</exception>
    public static PipelineScheduleKind ParseKind(string name) => name?.Trim().ToLowerInvariant() switch
    {
        "gpipe" => PipelineScheduleKind.GPipe,
        "1f1b" => PipelineScheduleKind.OneFOneB,
        "interleaved" => PipelineScheduleKind.Interleaved,
        _ => throw new PipelineException($"unknown pipeline schedule '{name}'; use gpipe, 1f1b or interleaved"),
    };

    /// <summary>The schedule name as <see cref="ParseKind"/> reads it.</summary>
    public static string KindName(PipelineScheduleKind kind) => kind switch
    {
        PipelineScheduleKind.GPipe => "gpipe",
        PipelineScheduleKind.OneFOneB => "1f1b",
        _ => "interleaved",
    };

    /// <summary>
    /// Builds stage <paramref name="stage"/>'s schedule.
    /// <list type="bullet">
    /// <item>gpipe: every forward (chunk by chunk, micro-batches in order), then every backward (last chunk first).</item>
    /// <item>1f1b (v = 1 only): min(p − s − 1, m) warm-up forwards; then forward i + warm-up, backward i; then the remaining backwards.</item>
    /// <item>interleaved (m a multiple of p): Megatron-LM's order. Micro-batches go in groups of p; forward step k runs
    /// local chunk (k mod p·v) div p on micro-batch (k div p·v)·p + k mod p, backward step k the same with the chunk
    /// counted from the last; 2(p − s − 1) + (v − 1)·p warm-up forwards, then one forward one backward, then the rest.</item>
    /// </list>
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">stages, microBatches or chunksPerStage below 1, or stage outside [0, stages).</exception>
    /// <exception cref="PipelineException">1f1b with v &gt; 1, or interleaved with m not a multiple of p.</exception>
    public static PipelineSchedule Build(PipelineScheduleKind kind, int stage, int stages, int microBatches, int chunksPerStage = 1)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(stages, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(microBatches, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(chunksPerStage, 1);
        if (stage < 0 || stage >= stages)
        {
            throw new ArgumentOutOfRangeException(nameof(stage), stage, $"stage must be in [0, {stages})");
        }
        int p = stages, m = microBatches, v = chunksPerStage, s = stage;
        var order = new List<(PipelineActionKind Kind, int Micro, int Chunk)>(2 * m * v);
        switch (kind)
        {
            case PipelineScheduleKind.GPipe:
                for (int k = 0; k < v; k++)
                {
                    for (int i = 0; i < m; i++)
                    {
                        order.Add((PipelineActionKind.Forward, i, k));
                    }
                }
                for (int k = v - 1; k >= 0; k--)
                {
                    for (int i = 0; i < m; i++)
                    {
                        order.Add((PipelineActionKind.Backward, i, k));
                    }
                }
                break;
            case PipelineScheduleKind.OneFOneB:
                if (v != 1)
                {
                    throw new PipelineException($"the 1f1b schedule runs one chunk per stage, got {v} chunks per stage; use the interleaved schedule for virtual chunks");
                }
                AddOneFOneB(order, Math.Min(p - s - 1, m), m, i => (i, 0), i => (i, 0));
                break;
            case PipelineScheduleKind.Interleaved:
                if (m % p != 0)
                {
                    throw new PipelineException(
                        $"the interleaved schedule takes micro-batches in groups of the {p} stages, so their number must be a multiple of {p}; got {m} " +
                        $"(use {(m / p + 1) * p} micro-batches, or the 1f1b schedule)");
                }
                int group = p * v;
                int warmup = Math.Min((2 * (p - s - 1)) + ((v - 1) * p), m * v);
                AddOneFOneB(order, warmup, m * v,
                    k => (((k / group) * p) + (k % p), k % group / p),
                    k => (((k / group) * p) + (k % p), v - 1 - (k % group / p)));
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(kind), kind, "unknown pipeline schedule");
        }

        int chunks = p * v;
        var actions = new PipelineAction[order.Count];
        for (int n = 0; n < actions.Length; n++)
        {
            var (what, micro, chunk) = order[n];
            int c = (chunk * p) + s;
            int previous = (s - 1 + p) % p, following = (s + 1) % p;
            actions[n] = what == PipelineActionKind.Forward
                ? new PipelineAction(what, micro, chunk, c,
                    c == 0 ? -1 : previous, c == 0 ? -1 : PipelineAction.Tag(what, micro, c - 1, chunks),
                    c == chunks - 1 ? -1 : following, c == chunks - 1 ? -1 : PipelineAction.Tag(what, micro, c, chunks))
                : new PipelineAction(what, micro, chunk, c,
                    c == chunks - 1 ? -1 : following, c == chunks - 1 ? -1 : PipelineAction.Tag(what, micro, c + 1, chunks),
                    c == 0 ? -1 : previous, c == 0 ? -1 : PipelineAction.Tag(what, micro, c, chunks));
        }
        return new PipelineSchedule(kind, stage, stages, microBatches, chunksPerStage, actions);
    }

    /// <inheritdoc />
    public override string ToString() =>
        $"{KindName(Kind)} stage {Stage}/{Stages}, {MicroBatches} micro-batches × {ChunksPerStage} chunks: " + string.Join(" ", _actions);

    /// <summary>Warm-up forwards, then forward (i + warm-up) / backward i pairs, then the remaining backwards.</summary>
    private static void AddOneFOneB(
        List<(PipelineActionKind, int, int)> order, int warmup, int total,
        Func<int, (int Micro, int Chunk)> forwardStep, Func<int, (int Micro, int Chunk)> backwardStep)
    {
        for (int k = 0; k < warmup; k++)
        {
            var (micro, chunk) = forwardStep(k);
            order.Add((PipelineActionKind.Forward, micro, chunk));
        }
        for (int k = 0; k < total - warmup; k++)
        {
            var (fm, fc) = forwardStep(k + warmup);
            order.Add((PipelineActionKind.Forward, fm, fc));
            var (bm, bc) = backwardStep(k);
            order.Add((PipelineActionKind.Backward, bm, bc));
        }
        for (int k = total - warmup; k < total; k++)
        {
            var (micro, chunk) = backwardStep(k);
            order.Add((PipelineActionKind.Backward, micro, chunk));
        }
    }
}
