namespace Hal.Parallel.TensorParallel;

// Legend: V vocabulary, p tp ranks, Vl = ⌈V/p⌉ rows per rank (or a layout's own count ≥ that), Vp = p·Vl padded vocabulary, N rows.

/// <summary>
/// Which vocabulary rows a tp rank holds: V is padded up to Vp, a multiple of p, so every rank holds the same number of
/// rows Vl and rank r holds rows [r·Vl, (r+1)·Vl). Rows at or past V are padding: zero in the weight shard, never an
/// id or a target, and masked to −∞ in the logits. Equal shards keep collectives and checkpoint gathers uniform; the
/// padding costs at most p − 1 rows.
/// </summary>
public sealed record VocabShard
{
    /// <summary>The rows of rank <paramref name="rank"/> among <paramref name="tpSize"/> ranks.</summary>
    /// <exception cref="ArgumentOutOfRangeException">vocabSize or tpSize below 1, or rank outside [0, tpSize).</exception>
    public VocabShard(int vocabSize, int tpSize, int rank)
        : this(vocabSize, tpSize, rank, CeilDiv(vocabSize, tpSize))
    {
    }

    /// <summary>
    /// The rows of rank <paramref name="rank"/> when every rank holds <paramref name="localRows"/> rows, at least ⌈V/p⌉:
    /// a layout that pads V to a multiple of more than p (a 3D grid's table is padded to c² blocks, its logits split c
    /// ways) passes its own row count so the shards line up with its blocks.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">vocabSize or tpSize below 1, rank outside [0, tpSize), or localRows·tpSize below vocabSize.</exception>
    public VocabShard(int vocabSize, int tpSize, int rank, int localRows)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(vocabSize, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(tpSize, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(rank);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(rank, tpSize);
        ArgumentOutOfRangeException.ThrowIfLessThan((long)localRows * tpSize, vocabSize, nameof(localRows));
        VocabSize = vocabSize;
        TpSize = tpSize;
        Rank = rank;
        LocalRows = localRows;
        Start = rank * LocalRows;
        ValidRows = Math.Clamp(vocabSize - Start, 0, LocalRows);
    }

    /// <summary>V.</summary>
    public int VocabSize { get; }

    /// <summary>p.</summary>
    public int TpSize { get; }

    /// <summary>This rank's index in the tp group.</summary>
    public int Rank { get; }

    /// <summary>Vl = ⌈V/p⌉: rows of every rank's shard, padding included.</summary>
    public int LocalRows { get; }

    /// <summary>Vp = p·Vl.</summary>
    public int PaddedVocabSize => LocalRows * TpSize;

    /// <summary>The first vocabulary row of this rank, r·Vl.</summary>
    public int Start { get; }

    /// <summary>Rows of this shard below V (the rest, LocalRows − ValidRows, are padding; may be all of them).</summary>
    public int ValidRows { get; }

    private static int CeilDiv(int value, int divisor) => divisor < 1 ? 1 : (value + divisor - 1) / divisor;
}

/// <summary>Masks of which ids fall in a row range, computed on the device with index arithmetic.</summary>
internal static class VocabMask
{
    /// <summary>
    /// index [N] (ids' dtype) = clamp(id − start, 0, count − 1), a valid row for every id; keep (N elements, any float
    /// dtype) = 1 when start ≤ id &lt; start + count, else 0.
    /// </summary>
    public static void InRange(TensorParallelGroup group, string prefix, Tensor ids, int start, int count, Tensor index, Tensor keep)
    {
        var ops = group.Ops;
        var idt = ids.DType;
        int n = (int)ids.ElementCount;
        var flat = ids.Reshape(n);
        var inside = group.Scratch(prefix + ".inside", new Shape(n), idt);
        var below = group.Scratch(prefix + ".below", new Shape(n), idt);
        var zero = group.Constant(0, idt);
        var one = group.Constant(1, idt);
        // local = id − start; [local ≥ 0] = min(max(local + 1, 0), 1); [local < count] = min(max(count − local, 0), 1).
        ops.Binary(BinaryOp.Sub, flat, group.Constant(start, idt), index);
        ops.Binary(BinaryOp.Add, index, one, inside);
        ops.Binary(BinaryOp.Max, inside, zero, inside);
        ops.Binary(BinaryOp.Min, inside, one, inside);
        ops.Binary(BinaryOp.Sub, group.Constant(count, idt), index, below);
        ops.Binary(BinaryOp.Max, below, zero, below);
        ops.Binary(BinaryOp.Min, below, one, below);
        ops.Binary(BinaryOp.Mul, inside, below, inside);
        ops.Cast(inside, keep.Reshape(n));
        ops.Binary(BinaryOp.Max, index, zero, index);
        ops.Binary(BinaryOp.Min, index, group.Constant(count - 1, idt), index);
    }

    /// <summary>keep (N elements, float) = 1 for a real target (≥ 0), 0 for an ignored (negative) one.</summary>
    public static void NonNegative(TensorParallelGroup group, string prefix, Tensor targets, Tensor keep)
    {
        var ops = group.Ops;
        var idt = targets.DType;
        int n = (int)targets.ElementCount;
        var inside = group.Scratch(prefix + ".inside", new Shape(n), idt);
        var one = group.Constant(1, idt);
        ops.Binary(BinaryOp.Add, targets.Reshape(n), one, inside);
        ops.Binary(BinaryOp.Max, inside, group.Constant(0, idt), inside);
        ops.Binary(BinaryOp.Min, inside, one, inside);
        ops.Cast(inside, keep.Reshape(n));
    }
}
