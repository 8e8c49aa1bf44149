namespace Hal.Parallel.TensorParallel;

// Legend: a full matrix [R, K] (a 1-D vector [K] is one row) cut into Rb × Kb blocks of [R/Rb, K/Kb]; block (r, k)
// holds rows [r·R/Rb, (r+1)·R/Rb) and columns [k·K/Kb, (k+1)·K/Kb). p ranks of the tp group.

/// <summary>
/// Cuts a full activation, weight, bias or table into one rank's block of a 2D, 2.5D or 3D layout (a
/// <see cref="GridBlock"/> from the grid) and puts the blocks of every rank back together, for tests and checkpoints.
/// Ranks that hold the same block (a weight replicated over 2.5D layers, a bias over the rows) give it once. All copies
/// are exact. Sizes must divide evenly; a vocabulary table is padded by the caller to a multiple of its row blocks.
/// </summary>
public static class TensorGridShards
{
    /// <summary>shard = <paramref name="block"/> of <paramref name="full"/> (both on the device of <paramref name="ops"/>).</summary>
    /// <exception cref="ArgumentException">The full tensor does not split evenly into the blocking.</exception>
    /// <exception cref="ShapeMismatchException">shard does not have the block's shape or dtype.</exception>
    public static void Split(Ops ops, Tensor full, Tensor shard, GridBlock block)
    {
        ArgumentNullException.ThrowIfNull(ops);
        ArgumentNullException.ThrowIfNull(full);
        ArgumentNullException.ThrowIfNull(shard);
        var (stripe, rows, columns) = Stripe(full, shard, block);
        // The block's rows form one contiguous stripe [R/Rb, K]; view it [R/Rb, Kb, K/Kb] and select column block k.
        using var index = ops.FromArray([(long)block.ColumnBlock], new Shape(1), DType.I64);
        ops.IndexSelect(stripe.Reshape(rows, block.ColumnBlocks, columns), 1, index, shard.Reshape(rows, 1, columns));
    }

    /// <summary>
    /// full (on every rank) = the blocks of every rank of <paramref name="tp"/> put back in place; each rank passes its
    /// shard and its block. Collective (two all-gathers: the blocks' coordinates, then the shards).
    /// </summary>
    /// <exception cref="ShapeMismatchException">shard does not have the block's shape or dtype.</exception>
    /// <exception cref="ArgumentException">The ranks' blocks do not cover the full tensor.</exception>
    public static void Gather(Ops ops, ICommunicator tp, Tensor shard, Tensor full, GridBlock block)
    {
        ArgumentNullException.ThrowIfNull(ops);
        ArgumentNullException.ThrowIfNull(tp);
        ArgumentNullException.ThrowIfNull(shard);
        ArgumentNullException.ThrowIfNull(full);
        _ = Stripe(full, shard, block);
        int p = tp.Size;
        long[] blocks;
        using (var mine = ops.FromArray([(long)block.RowBlock, (long)block.ColumnBlock], new Shape(2), DType.I64))
        using (var all = ops.Empty(new Shape(2 * p), DType.I64))
        {
            tp.AllGather(mine, all);
            blocks = ops.ToArray<long>(all);
        }
        using var stacked = ops.Empty(new Shape(p, (int)shard.ElementCount), shard.DType);
        tp.AllGather(shard, stacked);
        var (rowCount, columnCount) = GridBlock.Matrix(full.Shape);
        int rows = rowCount / block.RowBlocks, columns = columnCount / block.ColumnBlocks;
        var written = new bool[block.RowBlocks, block.ColumnBlocks];
        ops.Fill(full, 0);
        for (int r = 0; r < p; r++)
        {
            int rowBlock = (int)blocks[2 * r], columnBlock = (int)blocks[(2 * r) + 1];
            if (written[rowBlock, columnBlock])
            {
                continue;
            }
            written[rowBlock, columnBlock] = true;
            // IndexAdd into zeros writes the block exactly (0 + v = v); the contract has no strided copy.
            var stripe = full.View((long)rowBlock * rows * columnCount, new Shape(rows, block.ColumnBlocks, columns));
            using var index = ops.FromArray([(long)columnBlock], new Shape(1), DType.I64);
            ops.IndexAdd(stacked.View((long)r * rows * columns, new Shape(rows, 1, columns)), 1, index, stripe);
        }
        foreach (bool w in written)
        {
            if (!w)
            {
                throw new ArgumentException($"the {p} ranks' blocks do not cover all {block.RowBlocks} × {block.ColumnBlocks} blocks of {full.Shape}", nameof(block));
            }
        }
    }

    /// <summary>The block's row stripe of full and the block's (rows, columns), after checking shard's shape and dtype.</summary>
    private static (Tensor Stripe, int Rows, int Columns) Stripe(Tensor full, Tensor shard, GridBlock block)
    {
        if (block.RowBlock < 0 || block.RowBlock >= block.RowBlocks || block.ColumnBlock < 0 || block.ColumnBlock >= block.ColumnBlocks)
        {
            throw new ArgumentException($"{block} lies outside its own blocking", nameof(block));
        }
        var expected = block.Of(full.Shape);
        if (shard.Shape != expected || shard.DType != full.DType)
        {
            throw new ShapeMismatchException("tensor grid shard", expected, shard.Shape, $"block ({block.RowBlock}, {block.ColumnBlock}) of {block.RowBlocks} × {block.ColumnBlocks} of {full.DType.Name()} {full.Shape}");
        }
        var (rowCount, columnCount) = GridBlock.Matrix(full.Shape);
        int rows = rowCount / block.RowBlocks, columns = columnCount / block.ColumnBlocks;
        return (full.View((long)block.RowBlock * rows * columnCount, new Shape(rows, columnCount)), rows, columns);
    }
}
