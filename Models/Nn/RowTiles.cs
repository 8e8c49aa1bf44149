using System.Globalization;

namespace Hal.Models.Nn;

/// <summary>
/// Row tiles of a [V, C] parameter that are made resident one at a time by whoever owns the memory (the parameter
/// store on one device, a ZeRO-3 shard owner that gathers and offloads, a vocabulary-parallel rank). Modules that
/// read such a parameter acquire a tile as late and release it as early as they can, so only one tile (and its
/// gradient tile) need be on the device at once.
/// Legend: V rows (vocabulary), C columns (channels).
/// </summary>
public interface IRowTileSource
{
    /// <summary>V: the parameter's rows.</summary>
    int Rows { get; }

    /// <summary>C: the parameter's columns.</summary>
    int Columns { get; }

    /// <summary>How many tiles cover the rows.</summary>
    int TileCount { get; }

    /// <summary>The rows of tile <paramref name="tile"/>: tiles cover [0, V) in order, without overlap, each non-empty.</summary>
    (int Start, int Count) TileRows(int tile);

    /// <summary>The tile's parameter rows, device [Count, C] in the compute dtype, valid until <see cref="ReleaseParam"/>.</summary>
    Tensor AcquireParam(int tile);

    /// <summary>Ends the use of the tensor <see cref="AcquireParam"/> returned for this tile.</summary>
    void ReleaseParam(int tile);

    /// <summary>The tile's gradient rows, device [Count, C], to add into; valid until <see cref="ReleaseGrad"/>.</summary>
    Tensor AcquireGrad(int tile);

    /// <summary>Ends the use of the tensor <see cref="AcquireGrad"/> returned; what was added into it is kept.</summary>
    void ReleaseGrad(int tile);
}

/// <summary>
/// A tile source over one [V, C] parameter of a <see cref="ParameterStore"/>: tiles are row slices of its
/// <see cref="ParameterStore.Param(string)"/> and <see cref="ParameterStore.Grad(string)"/> views, so acquiring costs
/// nothing. Tiles have <c>tileRows</c> rows, the last one fewer when V is not a multiple. It checks the
/// acquire/release discipline (a tile is acquired once before it is released), which a memory-owning source relies on.
/// </summary>
public sealed class StoreRowTiles : IRowTileSource
{
    private readonly ParameterStore _store;
    private readonly string _name;
    private readonly int _tileRows;
    private readonly bool[] _paramHeld;
    private readonly bool[] _gradHeld;

    /// <summary>Tiles of <paramref name="tileRows"/> rows over the store's parameter <paramref name="name"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="tileRows"/> is below 1.</exception>
    /// <exception cref="ArgumentException">the parameter is not 2-D.</exception>
    /// <exception cref="KeyNotFoundException">no parameter has that name.</exception>
    public StoreRowTiles(ParameterStore store, string name, int tileRows)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentOutOfRangeException.ThrowIfLessThan(tileRows, 1);
        var info = store.Info(name);
        if (info.Shape.Rank != 2)
        {
            throw new ArgumentException($"'{name}' has shape {info.Shape}; row tiles need a [V, C] parameter", nameof(name));
        }
        _store = store;
        _name = name;
        Rows = info.Shape[0];
        Columns = info.Shape[1];
        _tileRows = Math.Min(tileRows, Rows);
        TileCount = (Rows + _tileRows - 1) / _tileRows;
        _paramHeld = new bool[TileCount];
        _gradHeld = new bool[TileCount];
    }

    /// <inheritdoc/>
    public int Rows { get; }

    /// <inheritdoc/>
    public int Columns { get; }

    /// <inheritdoc/>
    public int TileCount { get; }

    /// <inheritdoc/>
    public (int Start, int Count) TileRows(int tile)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(tile);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(tile, TileCount);
        int start = tile * _tileRows;
        return (start, Math.Min(_tileRows, Rows - start));
    }

    /// <inheritdoc/>
    public Tensor AcquireParam(int tile) => Acquire(_paramHeld, tile, _store.Param(_name), "parameter");

    /// <inheritdoc/>
    public void ReleaseParam(int tile) => Release(_paramHeld, tile, "parameter");

    /// <inheritdoc/>
    public Tensor AcquireGrad(int tile) => Acquire(_gradHeld, tile, _store.Grad(_name), "gradient");

    /// <inheritdoc/>
    public void ReleaseGrad(int tile) => Release(_gradHeld, tile, "gradient");

    private Tensor Acquire(bool[] held, int tile, Tensor whole, string role)
    {
        var (start, count) = TileRows(tile);
        if (held[tile])
        {
            throw new InvalidOperationException($"'{_name}' {role} tile {tile} is acquired twice without a release");
        }
        held[tile] = true;
        return whole.Slice(start, count);
    }

    private void Release(bool[] held, int tile, string role)
    {
        TileRows(tile);
        if (!held[tile])
        {
            throw new InvalidOperationException($"'{_name}' {role} tile {tile} is released but was not acquired");
        }
        held[tile] = false;
    }
}

/// <summary>
/// Which of N indices (token ids or targets) fall in a tile's rows [start, start + count), computed on the device:
/// index = clamp(id − start, 0, count − 1) is always a valid row of the tile, and keep is 1 where id − start is in
/// [0, count) and 0 elsewhere (negative ids included), so a gathered row times keep is the row or exactly 0.
/// Legend: N indices.
/// </summary>
internal static class RowTileMask
{
    /// <summary>Writes index [N] (the ids' dtype) and keep [N] (any float dtype, or [N, 1]) for the tile's rows.</summary>
    public static void Compute(Workspace ws, string prefix, Tensor ids, int start, int count, Tensor index, Tensor keep)
    {
        var ops = ws.Ops;
        var idt = ids.DType;
        int n = ids.Shape[0];
        var inside = ws.Get(prefix + ".inside", new Shape(n), idt);
        var below = ws.Get(prefix + ".below", new Shape(n), idt);
        var zero = Scalar(ws, 0, idt);
        var one = Scalar(ws, 1, idt);
        // local = id − start; inside = [local ≥ 0] = min(max(local + 1, 0), 1); below = [local < count] = min(max(count − local, 0), 1).
        ops.Binary(BinaryOp.Sub, ids, Scalar(ws, start, idt), index);
        ops.Binary(BinaryOp.Add, index, one, inside);
        ops.Binary(BinaryOp.Max, inside, zero, inside);
        ops.Binary(BinaryOp.Min, inside, one, inside);
        ops.Binary(BinaryOp.Sub, Scalar(ws, count, idt), index, below);
        ops.Binary(BinaryOp.Max, below, zero, below);
        ops.Binary(BinaryOp.Min, below, one, below);
        ops.Binary(BinaryOp.Mul, inside, below, inside);
        ops.Cast(inside, keep);
        ops.Binary(BinaryOp.Max, index, zero, index);
        ops.Binary(BinaryOp.Min, index, Scalar(ws, count - 1, idt), index);
    }

    /// <summary>keep [N] (float dtype, or [N, 1]) = 1 for a real target (≥ 0), 0 for an ignored (negative) one.</summary>
    public static void NonNegative(Workspace ws, string prefix, Tensor targets, Tensor keep)
    {
        var ops = ws.Ops;
        var idt = targets.DType;
        var inside = ws.Get(prefix + ".inside", new Shape(targets.Shape[0]), idt);
        var one = Scalar(ws, 1, idt);
        ops.Binary(BinaryOp.Add, targets, one, inside);
        ops.Binary(BinaryOp.Max, inside, Scalar(ws, 0, idt), inside);
        ops.Binary(BinaryOp.Min, inside, one, inside);
        ops.Cast(inside, keep);
    }

    /// <summary>The largest tile's row count (tiles differ only in the last one, but a source may do otherwise).</summary>
    public static int MaxTileRows(IRowTileSource tiles)
    {
        int max = 0, next = 0;
        for (int tile = 0; tile < tiles.TileCount; tile++)
        {
            var (start, count) = tiles.TileRows(tile);
            if (start != next || count < 1)
            {
                throw new ArgumentException($"tile {tile} covers rows [{start}, {start + count}); tiles must cover [0, {tiles.Rows}) in order, each non-empty", nameof(tiles));
            }
            next = start + count;
            max = Math.Max(max, count);
        }
        if (next != tiles.Rows)
        {
            throw new ArgumentException($"the tiles cover rows [0, {next}) of {tiles.Rows}", nameof(tiles));
        }
        return max;
    }

    private static Tensor Scalar(Workspace ws, int value, DType dtype) =>
        ws.Constant(string.Create(CultureInfo.InvariantCulture, $"scalar:{value}:{dtype}"), () => ws.Ops.Full(new Shape(1), value, dtype));
}
