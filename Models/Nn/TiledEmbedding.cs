namespace Hal.Models.Nn;

/// <summary>
/// The token embedding of <see cref="Embedding"/> with the token table read one row tile at a time, so the [V, C]
/// table is never whole on the device: per tile, every id is clamped to a row of the tile, the rows are selected and
/// multiplied by a 0/1 mask of the ids the tile holds, and the tiles' results are summed. Exactly one tile contributes
/// a non-zero row per id, so the result equals <see cref="Embedding"/> bit for bit. The position table (GPT-2's wpe)
/// comes whole from the store as in <see cref="Embedding"/>. Backward index-adds the masked dx rows into each
/// gradient tile (rows of other tiles add 0).
/// Legend: B batch, T time, C channels, V vocabulary, N = B·T, Vt rows of a tile.
/// </summary>
public sealed class TiledEmbedding
{
    private readonly Workspace _ws;
    private readonly ParameterStore _store;
    private readonly IRowTileSource _tiles;
    private readonly string? _positionName;
    private Tensor? _ids;

    /// <summary>An embedding over the token table's tiles and, when named, the store's position table [T, C].</summary>
    /// <exception cref="ArgumentException">the tiles do not cover [0, V) in order.</exception>
    public TiledEmbedding(Workspace ws, ParameterStore store, IRowTileSource tokenTiles, string? positionName)
    {
        ArgumentNullException.ThrowIfNull(ws);
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(tokenTiles);
        RowTileMask.MaxTileRows(tokenTiles);
        _ws = ws;
        _store = store;
        _tiles = tokenTiles;
        _positionName = positionName;
    }

    /// <summary>x [B, T, C] from ids [B, T] (I32/I64, values in [0, V)); keeps a reference to ids for backward.</summary>
    /// <exception cref="ArgumentException">ids is not [B, T] of an index dtype or x is not [B, T, C].</exception>
    public void Forward(Tensor ids, Tensor x)
    {
        ArgumentNullException.ThrowIfNull(ids);
        ArgumentNullException.ThrowIfNull(x);
        int c = _tiles.Columns;
        if (ids.Rank != 2 || !ids.DType.IsIndex() || x.Shape != new Shape(ids.Shape[0], ids.Shape[1], c))
        {
            throw new ArgumentException($"tiled embedding: ids must be I32/I64 [B, T] and x [B, T, {c}], not {ids.DType} {ids.Shape} and {x.Shape}", nameof(ids));
        }
        var ops = _ws.Ops;
        _ids = ids;
        int batch = ids.Shape[0], time = ids.Shape[1], n = batch * time;
        var flatIds = ids.Reshape(n);
        var x2 = x.Reshape(n, c);
        var (index, keep) = MaskBuffers(n, ids.DType, x.DType);
        var rows = _ws.Get("tiled.emb.rows", new Shape(n, c), x.DType);
        for (int tile = 0; tile < _tiles.TileCount; tile++)
        {
            var (start, count) = _tiles.TileRows(tile);
            RowTileMask.Compute(_ws, "tiled.emb", flatIds, start, count, index, keep);
            // The first tile writes x directly; later tiles add into it.
            var dst = tile == 0 ? x2 : rows;
            var weight = _tiles.AcquireParam(tile);
            ops.IndexSelect(weight, 0, index, dst);
            _tiles.ReleaseParam(tile);
            ops.Binary(BinaryOp.Mul, dst, keep, dst);
            if (tile > 0)
            {
                ops.Binary(BinaryOp.Add, x2, rows, x2);
            }
        }
        if (_positionName is not null)
        {
            ops.Binary(BinaryOp.Add, x, _store.Param(_positionName).Slice(0, time), x);
        }
    }

    /// <summary>Adds the table gradients from dx [B, T, C]: each gradient tile receives the dx rows of its ids.</summary>
    /// <exception cref="InvalidOperationException">before <see cref="Forward"/>.</exception>
    public void Backward(Tensor dx)
    {
        ArgumentNullException.ThrowIfNull(dx);
        var ids = _ids ?? throw new InvalidOperationException("tiled embedding: backward before forward");
        var ops = _ws.Ops;
        int batch = ids.Shape[0], time = ids.Shape[1], n = batch * time, c = _tiles.Columns;
        var flatIds = ids.Reshape(n);
        var dx2 = dx.Reshape(n, c);
        var (index, keep) = MaskBuffers(n, ids.DType, dx.DType);
        var rows = _ws.Get("tiled.emb.rows", new Shape(n, c), dx.DType);
        for (int tile = 0; tile < _tiles.TileCount; tile++)
        {
            var (start, count) = _tiles.TileRows(tile);
            RowTileMask.Compute(_ws, "tiled.emb", flatIds, start, count, index, keep);
            ops.Binary(BinaryOp.Mul, dx2, keep, rows);
            var grad = _tiles.AcquireGrad(tile);
            ops.IndexAdd(rows, 0, index, grad);
            _tiles.ReleaseGrad(tile);
        }
        if (_positionName is not null)
        {
            ops.IndexAdd(dx2, 0, _ws.Positions(batch, time), _store.Grad(_positionName));
        }
    }

    /// <summary>index [N] (the ids' dtype) and keep [N, 1] (the compute dtype, broadcast over C).</summary>
    private (Tensor Index, Tensor Keep) MaskBuffers(int n, DType indexDType, DType dtype) =>
        (_ws.Get("tiled.emb.index", new Shape(n), indexDType), _ws.Get("tiled.emb.keep", new Shape(n, 1), dtype));
}
