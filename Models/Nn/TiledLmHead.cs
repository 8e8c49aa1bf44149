namespace Hal.Models.Nn;

/// <summary>
/// The LM head and mean cross-entropy of <see cref="LmHead"/> without ever holding W [V, C] or the logits [N, V]
/// whole: one row tile W_t [Vt, C] of the vocabulary at a time, with scratch [N, Vt].
/// Forward: logits_t = x·W_tᵀ; per row a running max m and sum s of exp(logit − m) are merged tile by tile
/// (m' = max(m, max_t); s' = s·exp(m − m') + Σ exp(logits_t − m')), and the target's logit is picked from the tile
/// that holds it; lse = m + log s and loss = lse − logit[target] (0 for a negative target, which still counts in N).
/// Backward recomputes logits_t per tile: dlogits_t = (exp(logits_t − lse) − onehot_t)·lossScale/N, then
/// dx += dlogits_t·W_t and dW_t += dlogits_tᵀ·x into the source's gradient tile. The row statistics (max, sums, lse,
/// losses) are F32, or F64 when x is F64; 16-bit logits are rounded to the compute dtype as <see cref="LmHead"/>
/// does, then widened to F32 for the softmax, and the tiles' dx products add in F32. Saved between forward and
/// backward: x (by reference), targets (by reference) and lse [N]. Scratch: [N, max Vt] logits (and an F32 copy at
/// 16-bit), a few [N] row vectors, and at 16-bit an F32 [N, C] dx accumulator.
/// Legend: N = B·T rows, C channels, V vocabulary, Vt rows of a tile.
/// </summary>
public sealed class TiledLmHead
{
    private const string Prefix = "tiled.head";
    private readonly Workspace _ws;
    private readonly IRowTileSource _tiles;
    private readonly int _maxTileRows;
    private Tensor? _x, _targets, _lse;

    /// <summary>A head over the tiles of the [V, C] weight (tied to the token table or its own lm_head).</summary>
    /// <exception cref="ArgumentException">the tiles do not cover [0, V) in order.</exception>
    public TiledLmHead(Workspace ws, IRowTileSource tiles)
    {
        ArgumentNullException.ThrowIfNull(ws);
        ArgumentNullException.ThrowIfNull(tiles);
        _maxTileRows = RowTileMask.MaxTileRows(tiles);
        _ws = ws;
        _tiles = tiles;
    }

    /// <summary>
    /// Runs the head and the loss over x [N, C] and targets [N] (I32/I64, in [0, V) or negative = ignored): returns
    /// the per-row losses [N] (a workspace buffer; F32, or F64 when x is F64). Keeps x and targets by reference.
    /// </summary>
    /// <exception cref="ArgumentException">x is not [N, C] of a float dtype or targets not [N] of an index dtype.</exception>
    public Tensor Forward(Tensor x, Tensor targets)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(targets);
        int c = _tiles.Columns;
        if (x.Rank != 2 || x.Shape[1] != c || !x.DType.IsFloatingPoint() || targets.Shape != new Shape(x.Shape[0]) || !targets.DType.IsIndex())
        {
            throw new ArgumentException($"tiled lm head: x must be float [N, {c}] and targets I32/I64 [N], not {x.DType} {x.Shape} and {targets.DType} {targets.Shape}", nameof(x));
        }
        var ops = _ws.Ops;
        int n = x.Shape[0];
        var stat = StatDType(x.DType);
        var column = new Shape(n, 1);
        _x = x;
        _targets = targets;
        _lse = _ws.Get(Prefix + ".lse", new Shape(n), stat, saved: true);
        var runMax = _ws.Get(Prefix + ".max", column, stat);
        var runSum = _ws.Get(Prefix + ".sum", column, stat);
        var picked = _ws.Get(Prefix + ".picked", column, stat);
        var tileMax = _ws.Get(Prefix + ".tilemax", column, stat);
        var tileSum = _ws.Get(Prefix + ".tilesum", column, stat);
        var gathered = _ws.Get(Prefix + ".gathered", column, stat);
        var (index, keep) = MaskBuffers(n, targets.DType, stat);
        for (int tile = 0; tile < _tiles.TileCount; tile++)
        {
            var z = TileLogits(tile, x);
            var (start, count) = _tiles.TileRows(tile);
            RowTileMask.Compute(_ws, Prefix, targets, start, count, index, keep);
            // The target's logit: gathered at a clamped column, kept only in the tile that holds the target.
            ops.Gather(z, 1, index.Reshape(n, 1), gathered);
            ops.Binary(BinaryOp.Mul, gathered, keep, gathered);
            ops.Reduce(ReduceOp.Max, z, 1, tileMax);
            if (tile == 0)
            {
                ops.Copy(gathered, picked);
                ops.Copy(tileMax, runMax);
            }
            else
            {
                ops.Binary(BinaryOp.Add, picked, gathered, picked);
                // tileMax becomes the merged max m'; the old sum is rescaled by exp(m − m').
                ops.Binary(BinaryOp.Max, runMax, tileMax, tileMax);
                ops.Binary(BinaryOp.Sub, runMax, tileMax, runMax);
                ops.Unary(UnaryOp.Exp, runMax, runMax);
                ops.Binary(BinaryOp.Mul, runSum, runMax, runSum);
                ops.Copy(tileMax, runMax);
            }
            ops.Binary(BinaryOp.Sub, z, runMax, z);
            ops.Unary(UnaryOp.Exp, z, z);
            ops.Reduce(ReduceOp.Sum, z, 1, tile == 0 ? runSum : tileSum);
            if (tile > 0)
            {
                ops.Binary(BinaryOp.Add, runSum, tileSum, runSum);
            }
        }
        var lse = _lse.Reshape(n, 1);
        ops.Unary(UnaryOp.Log, runSum, lse);
        ops.Binary(BinaryOp.Add, lse, runMax, lse);
        var losses = _ws.Get(Prefix + ".losses", new Shape(n), stat);
        var losses2 = losses.Reshape(n, 1);
        RowTileMask.NonNegative(_ws, Prefix, targets, keep);
        ops.Binary(BinaryOp.Sub, lse, picked, losses2);
        ops.Binary(BinaryOp.Mul, losses2, keep, losses2);
        return losses;
    }

    /// <summary>
    /// Backward of lossScale · mean over the N rows: writes dx [N, C] (the compute dtype) and adds dW into each
    /// gradient tile. One parameter tile is held at a time, released before its gradient tile is acquired.
    /// </summary>
    /// <exception cref="InvalidOperationException">before <see cref="Forward"/>.</exception>
    public void Backward(double lossScale, Tensor dx)
    {
        ArgumentNullException.ThrowIfNull(dx);
        var x = _x ?? throw new InvalidOperationException("tiled lm head: backward before forward");
        var targets = _targets!;
        var ops = _ws.Ops;
        int n = x.Shape[0];
        var stat = StatDType(x.DType);
        var column = new Shape(n, 1);
        var lse = _lse!.Reshape(n, 1);
        var (index, keep) = MaskBuffers(n, targets.DType, stat);
        // rowScale = lossScale/N for a real target, 0 for an ignored one (its row of dlogits is zero).
        var rowScale = _ws.Get(Prefix + ".rowscale", column, stat);
        RowTileMask.NonNegative(_ws, Prefix, targets, rowScale);
        ops.Binary(BinaryOp.Mul, rowScale, Scalar(lossScale / n, stat), rowScale);
        // At 16-bit the tiles' dx partial sums add in F32 (one rounding per tile, not one per running sum).
        var dxWide = dx.DType == stat ? null : _ws.Get(Prefix + ".dx.wide", dx.Shape, stat);
        for (int tile = 0; tile < _tiles.TileCount; tile++)
        {
            var (start, count) = _tiles.TileRows(tile);
            RowTileMask.Compute(_ws, Prefix, targets, start, count, index, keep);
            ops.Unary(UnaryOp.Neg, keep, keep);
            var weight = _tiles.AcquireParam(tile);
            var logits = LogitsBuffer(n, count, x.DType);
            ops.Gemm(x, weight, logits, transB: true);
            var z = Widened(logits, stat);
            ops.Binary(BinaryOp.Sub, z, lse, z);
            ops.Unary(UnaryOp.Exp, z, z);
            ops.ScatterAdd(keep, 1, index.Reshape(n, 1), z);
            ops.Binary(BinaryOp.Mul, z, rowScale, z);
            if (!ReferenceEquals(z, logits))
            {
                ops.Cast(z, logits);
            }
            AccumulateDx(tile, logits, weight, dx, dxWide);
            _tiles.ReleaseParam(tile);
            var grad = _tiles.AcquireGrad(tile);
            ops.Gemm(logits, x, grad, transA: true, beta: 1);
            _tiles.ReleaseGrad(tile);
        }
        if (dxWide is not null)
        {
            ops.Cast(dxWide, dx);
        }
    }

    /// <summary>
    /// dx += dlogits_t·W_t. At F32/F64 a GEMM with beta = 1 into dx. At 16-bit the running sum would be rounded to
    /// 8 significant bits once per tile, an error growing with the tile count; so each tile's product is rounded
    /// once and added into an F32 accumulator, and dx is written from it after the last tile.
    /// </summary>
    private void AccumulateDx(int tile, Tensor dlogits, Tensor weight, Tensor dx, Tensor? dxWide)
    {
        var ops = _ws.Ops;
        if (dxWide is null)
        {
            ops.Gemm(dlogits, weight, dx, beta: tile == 0 ? 0 : 1);
            return;
        }
        // dx holds the tile's product until the accumulator is written back into it.
        ops.Gemm(dlogits, weight, dx);
        if (tile == 0)
        {
            ops.Cast(dx, dxWide);
            return;
        }
        var partWide = _ws.Get(Prefix + ".dx.part.wide", dx.Shape, dxWide.DType);
        ops.Cast(dx, partWide);
        ops.Binary(BinaryOp.Add, dxWide, partWide, dxWide);
    }

    /// <summary>logits_t [N, Vt] = x·W_tᵀ in the compute dtype, widened to the statistics dtype (the same view at F32/F64).</summary>
    private Tensor TileLogits(int tile, Tensor x)
    {
        int n = x.Shape[0];
        var logits = LogitsBuffer(n, _tiles.TileRows(tile).Count, x.DType);
        var weight = _tiles.AcquireParam(tile);
        _ws.Ops.Gemm(x, weight, logits, transB: true);
        _tiles.ReleaseParam(tile);
        return Widened(logits, StatDType(x.DType));
    }

    /// <summary>[N, Vt] in the compute dtype: a view of one [N, max Vt] buffer, so a short last tile allocates nothing.</summary>
    private Tensor LogitsBuffer(int n, int count, DType dtype) =>
        _ws.Get(Prefix + ".logits", new Shape(n, _maxTileRows), dtype).View(0, new Shape(n, count));

    /// <summary>The logits in the statistics dtype: the same tensor, or (16-bit) an F32 copy in its own buffer.</summary>
    private Tensor Widened(Tensor logits, DType stat)
    {
        if (logits.DType == stat)
        {
            return logits;
        }
        var wide = _ws.Get(Prefix + ".logits.wide", new Shape(logits.Shape[0], _maxTileRows), stat).View(0, logits.Shape);
        _ws.Ops.Cast(logits, wide);
        return wide;
    }

    /// <summary>index [N] (the targets' dtype) and keep [N, 1] (the statistics dtype).</summary>
    private (Tensor Index, Tensor Keep) MaskBuffers(int n, DType indexDType, DType stat) =>
        (_ws.Get(Prefix + ".index", new Shape(n), indexDType), _ws.Get(Prefix + ".keep", new Shape(n, 1), stat));

    private Tensor Scalar(double value, DType dtype)
    {
        var t = _ws.Get(Prefix + ".scalar", new Shape(1), dtype);
        _ws.Ops.Fill(t, value);
        return t;
    }

    /// <summary>Row statistics are F64 for an F64 model (the reference path) and F32 otherwise.</summary>
    private static DType StatDType(DType compute) => compute == DType.F64 ? DType.F64 : DType.F32;
}
