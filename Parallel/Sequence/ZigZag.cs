namespace Hal.Parallel.Sequence;

// Legend: B batch, T full sequence length, sp sequence-parallel ranks, Tl = T/sp tokens per rank, Tc = T/(2·sp) tokens
// per chunk, R the product of the trailing dims (elements per token). full [B, T, ...], local [B, Tl, ...].

/// <summary>
/// The zig-zag placement that balances causal attention over sequence-parallel ranks: the sequence is cut into 2·sp
/// chunks and rank r holds chunks r and 2·sp−1−r, in that order. Under a causal mask an early chunk sees few keys and a
/// late one many; pairing chunk r with its mirror gives every rank the same number of visible (query, key) pairs.
/// </summary>
public static class ZigZag
{
    /// <summary>The two global chunk indices rank <paramref name="rank"/> holds, in local order: r and 2·sp−1−r.</summary>
    public static (int First, int Second) Chunks(int sp, int rank)
    {
        CheckGroup(sp, rank);
        return (rank, (2 * sp) - 1 - rank);
    }

    /// <summary>Global positions of rank <paramref name="rank"/>'s T/sp tokens, in local order.</summary>
    /// <exception cref="ArgumentException"><paramref name="time"/> is not a multiple of 2·sp.</exception>
    /// <exception cref="ArgumentOutOfRangeException">sp &lt; 1, rank outside [0, sp), or time &lt; 0.</exception>
    public static int[] Positions(int time, int sp, int rank)
    {
        int chunk = ChunkLength(time, sp);
        CheckGroup(sp, rank);
        var (first, second) = Chunks(sp, rank);
        var positions = new int[2 * chunk];
        for (int i = 0; i < chunk; i++)
        {
            positions[i] = (first * chunk) + i;
            positions[chunk + i] = (second * chunk) + i;
        }
        return positions;
    }

    /// <summary>Tokens per chunk, T/(2·sp).</summary>
    /// <exception cref="ArgumentException"><paramref name="time"/> is not a multiple of 2·sp.</exception>
    public static int ChunkLength(int time, int sp)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(time);
        ArgumentOutOfRangeException.ThrowIfLessThan(sp, 1);
        if (time % (2 * sp) != 0)
        {
            throw new ArgumentException(
                $"zig-zag placement cuts the sequence into 2·sp = {2 * sp} chunks, so its length must be a multiple of {2 * sp}; got {time} (pad it to {(time + (2 * sp) - 1) / (2 * sp) * 2 * sp})",
                nameof(time));
        }
        return time / (2 * sp);
    }

    /// <summary>Copies this rank's tokens of <paramref name="full"/> [B, T, ...] into <paramref name="local"/> [B, T/sp, ...] in zig-zag order.</summary>
    /// <exception cref="ArgumentException">T is not a multiple of 2·sp.</exception>
    /// <exception cref="ShapeMismatchException">local is not [B, T/sp, ...] of full's trailing dims, or the dtypes differ.</exception>
    public static void Shard(Ops ops, Tensor full, int sp, int rank, Tensor local) => Move(ops, full, sp, rank, local, toLocal: true);

    /// <summary>Writes <paramref name="local"/> [B, T/sp, ...] back to this rank's tokens of <paramref name="full"/> [B, T, ...]; other rows stay as they were.</summary>
    /// <exception cref="ArgumentException">T is not a multiple of 2·sp.</exception>
    /// <exception cref="ShapeMismatchException">local is not [B, T/sp, ...] of full's trailing dims, or the dtypes differ.</exception>
    public static void Unshard(Ops ops, Tensor local, int sp, int rank, Tensor full) => Move(ops, full, sp, rank, local, toLocal: false);

    private static void Move(Ops ops, Tensor full, int sp, int rank, Tensor local, bool toLocal)
    {
        ArgumentNullException.ThrowIfNull(ops);
        ArgumentNullException.ThrowIfNull(full);
        ArgumentNullException.ThrowIfNull(local);
        if (full.Rank < 2)
        {
            throw new ShapeMismatchException("zig-zag", new Shape(1, 1), full.Shape, "the full tensor must be [B, T, ...]");
        }
        int batch = full.Shape[0], time = full.Shape[1];
        int chunk = ChunkLength(time, sp);
        CheckGroup(sp, rank);
        var expected = full.Shape.With(1, 2 * chunk);
        if (local.Shape != expected)
        {
            throw new ShapeMismatchException("zig-zag", expected, local.Shape, "the local tensor must be [B, T/sp, ...] with the full tensor's trailing dims");
        }
        if (local.DType != full.DType)
        {
            throw new DTypeMismatchException("zig-zag", full.DType, local.DType);
        }
        long row = full.Shape.Product(2, full.Rank);
        var run = new Shape(checked((int)(chunk * row)));
        var (first, second) = Chunks(sp, rank);
        for (int b = 0; b < batch; b++)
        {
            for (int c = 0; c < 2; c++)
            {
                int global = c == 0 ? first : second;
                var fullRun = full.View((((long)b * time) + ((long)global * chunk)) * row, run);
                var localRun = local.View((((long)b * 2 * chunk) + ((long)c * chunk)) * row, run);
                if (toLocal)
                {
                    ops.Copy(fullRun, localRun);
                }
                else
                {
                    ops.Copy(localRun, fullRun);
                }
            }
        }
    }

    private static void CheckGroup(int sp, int rank)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(sp, 1);
        if (rank < 0 || rank >= sp)
        {
            throw new ArgumentOutOfRangeException(nameof(rank), rank, $"rank must be in [0, {sp})");
        }
    }
}
