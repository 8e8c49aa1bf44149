namespace Hal.Memory;

/// <summary>What a tensor in a chunk is doing now; the chunk's placement and reduction follow from it.</summary>
public enum TensorState
{
    /// <summary>No payload is needed (released, or not yet initialised).</summary>
    Free,

    /// <summary>An op is reading or writing it: its chunk must stay on the compute device.</summary>
    Compute,

    /// <summary>It holds data that is kept but not in use: its chunk may move between tiers.</summary>
    Hold,

    /// <summary>Backward has used it (the gradient is being accumulated); it may still be used again in this backward.</summary>
    HoldAfterBackward,

    /// <summary>Backward is done with it: its gradient is final and may be reduced across ranks.</summary>
    ReadyForReduce,
}

/// <summary>
/// The legal transitions between <see cref="TensorState"/>s, one training step's life of a tensor:
/// <code>
/// from               | to
/// -------------------+----------------------------------------------------------------
/// Free               | Compute (first use, the payload is produced), Hold (loaded or initialised)
/// Compute            | Hold (forward done with it), HoldAfterBackward (backward done with it)
/// Hold               | Compute (used again), Free (released)
/// HoldAfterBackward  | Compute (used again in the same backward: a tied weight), ReadyForReduce (gradient final)
/// ReadyForReduce     | Hold (reduced, kept for the optimizer), Free (reduced and released: another rank owns it)
/// </code>
/// A state never moves to itself: a repeated transition is a bookkeeping error, and the table says so.
/// </summary>
public static class TensorStateMachine
{
    private static readonly TensorState[][] Legal =
    [
        /* Free */ [TensorState.Compute, TensorState.Hold],
        /* Compute */ [TensorState.Hold, TensorState.HoldAfterBackward],
        /* Hold */ [TensorState.Compute, TensorState.Free],
        /* HoldAfterBackward */ [TensorState.Compute, TensorState.ReadyForReduce],
        /* ReadyForReduce */ [TensorState.Hold, TensorState.Free],
    ];

    /// <summary>The states <paramref name="from"/> may move to.</summary>
    public static IReadOnlyList<TensorState> Targets(TensorState from) => Legal[(int)from];

    /// <summary>True when <paramref name="from"/> → <paramref name="to"/> is in the table.</summary>
    public static bool IsLegal(TensorState from, TensorState to) => Array.IndexOf(Legal[(int)from], to) >= 0;

    /// <summary>Raises <see cref="InvalidOperationException"/> naming the tensor and both states unless the move is legal.</summary>
    public static void Check(string tensor, TensorState from, TensorState to)
    {
        if (!IsLegal(from, to))
        {
            string allowed = string.Join(", ", Targets(from));
            throw new InvalidOperationException(
                $"tensor '{tensor}' cannot move from {from} to {to}; from {from} it may move to {allowed}");
        }
    }
}
