namespace Hal.Parallel.TensorParallel;

// Legend: p ranks of the tp group; 2D: q×q grid, rank = i·q + j (row i, column j); 2.5D: q×q×d, rank = h·q² + i·q + j
// (depth layer h); 3D: c×c×c cube, rank = a0·c² + a1·c + a2 (coordinates on axes 0, 1, 2).

/// <summary>A tp group whose size does not fit the grid asked of it (not a square, not q²·d, not a cube).</summary>
public sealed class TensorGridException(string message) : HalException(message);

/// <summary>
/// Which block of a 2-D tensor a rank holds: the tensor is cut into RowBlocks × ColumnBlocks equal blocks and this rank
/// holds block (RowBlock, ColumnBlock). Every layout of the 2D, 2.5D and 3D layers is such a blocking (a 3D piece, the
/// c-th part of a block's rows, is a block of a c²-row blocking). A 1-D tensor (bias, layer norm scale) is one row.
/// </summary>
public readonly record struct GridBlock(int RowBlock, int RowBlocks, int ColumnBlock, int ColumnBlocks)
{
    /// <summary>The shape of this block of a tensor of shape <paramref name="full"/> (1-D or 2-D).</summary>
    /// <exception cref="ArgumentException">A split axis is not divisible by its block count, or the tensor is not 1-D or 2-D.</exception>
    public Shape Of(Shape full)
    {
        ArgumentNullException.ThrowIfNull(full);
        var (rows, columns) = Matrix(full);
        if (rows % RowBlocks != 0 || columns % ColumnBlocks != 0)
        {
            throw new ArgumentException(
                $"{full} does not split into {RowBlocks} × {ColumnBlocks} equal blocks: choose sizes divisible by the grid (rows by {RowBlocks}, columns by {ColumnBlocks})",
                nameof(full));
        }
        return full.Rank == 1 ? new Shape(columns / ColumnBlocks) : new Shape(rows / RowBlocks, columns / ColumnBlocks);
    }

    /// <summary>(rows, columns) of a 1-D (one row) or 2-D shape.</summary>
    internal static (int Rows, int Columns) Matrix(Shape full) => full.Rank switch
    {
        1 => (1, full[0]),
        2 => (full[0], full[1]),
        _ => throw new ArgumentException($"a grid block splits a 1-D or 2-D tensor, not {full}", nameof(full)),
    };
}

/// <summary>
/// The ranks of a tp group as a q×q grid (2D tensor parallelism, SUMMA): rank = i·q + j. The row group holds the q ranks
/// of row i ordered by column (its rank is j); the column group holds the q ranks of column j ordered by row (its rank
/// is i). The grid owns the two groups; the tp communicator stays the caller's.
/// </summary>
public sealed class TensorGrid2D : IDisposable
{
    /// <summary>Builds the grid; collective over <paramref name="tp"/> (two splits).</summary>
    /// <exception cref="ArgumentNullException"><paramref name="tp"/> is null.</exception>
    /// <exception cref="TensorGridException">The group size is not a perfect square.</exception>
    public TensorGrid2D(ICommunicator tp)
    {
        ArgumentNullException.ThrowIfNull(tp);
        Tp = tp;
        Q = GridMath.Root(tp.Size, 2) ?? throw new TensorGridException(
            $"a 2D tensor-parallel grid needs a square number of ranks (4, 9, 16, ...), got {tp.Size}");
        Row = tp.Rank / Q;
        Column = tp.Rank % Q;
        RowGroup = GridMath.Split(tp, Row, Column, "2D row");
        ColumnGroup = GridMath.Split(tp, Column, Row, "2D column");
    }

    /// <summary>The side of the grid, q = √p.</summary>
    public int Q { get; }

    /// <summary>This rank's row i (its rank in <see cref="ColumnGroup"/>).</summary>
    public int Row { get; }

    /// <summary>This rank's column j (its rank in <see cref="RowGroup"/>).</summary>
    public int Column { get; }

    /// <summary>The tp communicator the grid was built over.</summary>
    public ICommunicator Tp { get; }

    /// <summary>The q ranks of row i, ordered by column.</summary>
    public ICommunicator RowGroup { get; }

    /// <summary>The q ranks of column j, ordered by row.</summary>
    public ICommunicator ColumnGroup { get; }

    /// <summary>This rank's block of X [N, In], Y [N, Out] and W [In, Out]: block (i, j) of a q×q blocking.</summary>
    public GridBlock MatrixBlock => new(Row, Q, Column, Q);

    /// <summary>This rank's block of a bias or layer norm vector over the hidden features: block j of q.</summary>
    public GridBlock VectorBlock => new(0, 1, Column, Q);

    /// <summary>This rank's block of an embedding table [V, H]: vocabulary rows block i, hidden block j.</summary>
    public GridBlock TableBlock => new(Row, Q, Column, Q);

    /// <summary>Disposes the row and column groups.</summary>
    public void Dispose()
    {
        RowGroup.Dispose();
        ColumnGroup.Dispose();
    }

    /// <inheritdoc />
    public override string ToString() => $"2D grid {Q}×{Q}, rank {Tp.Rank} at (row {Row}, column {Column})";
}

/// <summary>
/// The ranks of a tp group as d layers of a q×q grid (2.5D tensor parallelism, Tesseract): rank = h·q² + i·q + j. Row and
/// column groups lie within one layer (as in <see cref="TensorGrid2D"/>); the depth group holds the d ranks with the same
/// (i, j), ordered by layer. The batch is split over the layers; weights are replicated over them.
/// </summary>
public sealed class TensorGrid25D : IDisposable
{
    /// <summary>Builds the grid; collective over <paramref name="tp"/> (three splits).</summary>
    /// <exception cref="ArgumentNullException"><paramref name="tp"/> is null.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="depth"/> below 1.</exception>
    /// <exception cref="TensorGridException">The group size is not q²·depth for an integer q.</exception>
    public TensorGrid25D(ICommunicator tp, int depth)
    {
        ArgumentNullException.ThrowIfNull(tp);
        ArgumentOutOfRangeException.ThrowIfLessThan(depth, 1);
        Tp = tp;
        Depth = depth;
        int? q = tp.Size % depth == 0 ? GridMath.Root(tp.Size / depth, 2) : null;
        Q = q ?? throw new TensorGridException(
            $"a 2.5D tensor-parallel grid with depth {depth} needs q²·{depth} ranks (q = 1, 2, 3, ...: {depth}, {4 * depth}, {9 * depth}, ...), got {tp.Size}");
        Layer = tp.Rank / (Q * Q);
        Row = tp.Rank / Q % Q;
        Column = tp.Rank % Q;
        RowGroup = GridMath.Split(tp, (Layer * Q) + Row, Column, "2.5D row");
        ColumnGroup = GridMath.Split(tp, (Layer * Q) + Column, Row, "2.5D column");
        DepthGroup = GridMath.Split(tp, (Row * Q) + Column, Layer, "2.5D depth");
    }

    /// <summary>The side of each layer's grid.</summary>
    public int Q { get; }

    /// <summary>The number of layers d.</summary>
    public int Depth { get; }

    /// <summary>This rank's layer h (its rank in <see cref="DepthGroup"/>).</summary>
    public int Layer { get; }

    /// <summary>This rank's row i within its layer.</summary>
    public int Row { get; }

    /// <summary>This rank's column j within its layer.</summary>
    public int Column { get; }

    /// <summary>The tp communicator the grid was built over.</summary>
    public ICommunicator Tp { get; }

    /// <summary>The q ranks of this layer's row i, ordered by column.</summary>
    public ICommunicator RowGroup { get; }

    /// <summary>The q ranks of this layer's column j, ordered by row.</summary>
    public ICommunicator ColumnGroup { get; }

    /// <summary>The d ranks at (i, j) in every layer, ordered by layer.</summary>
    public ICommunicator DepthGroup { get; }

    /// <summary>This rank's block of X [N, In] and Y [N, Out]: rows block h·q + i of d·q, columns block j of q.</summary>
    public GridBlock ActivationBlock => new((Layer * Q) + Row, Depth * Q, Column, Q);

    /// <summary>This rank's block of W [In, Out]: block (i, j) of q×q, the same in every layer.</summary>
    public GridBlock WeightBlock => new(Row, Q, Column, Q);

    /// <summary>This rank's block of a bias or layer norm vector over the hidden features: block j of q.</summary>
    public GridBlock VectorBlock => new(0, 1, Column, Q);

    /// <summary>Disposes the row, column and depth groups.</summary>
    public void Dispose()
    {
        RowGroup.Dispose();
        ColumnGroup.Dispose();
        DepthGroup.Dispose();
    }

    /// <inheritdoc />
    public override string ToString() => $"2.5D grid {Q}×{Q}×{Depth}, rank {Tp.Rank} at (layer {Layer}, row {Row}, column {Column})";
}

/// <summary>
/// The ranks of a tp group as a c×c×c cube (3D tensor parallelism): rank = a0·c² + a1·c + a2. The group of axis k holds
/// the c ranks that differ only in coordinate k, ordered by it. Axis 0 splits the batch rows; a <see cref="Linear3D"/>
/// splits its input features over one of axes 1 and 2 and its output features over the other, so consecutive layers
/// alternate the two. The plane of axis k (k = 1, 2) holds the c² ranks with the same coordinate k, ordered by
/// a0·c + (the other coordinate): the group an embedding feeding a layer with input axis k reduces over.
/// </summary>
public sealed class TensorGrid3D : IDisposable
{
    private readonly ICommunicator[] _axisGroups;
    private readonly ICommunicator[] _planes;
    private readonly int[] _coordinates;

    /// <summary>Builds the cube; collective over <paramref name="tp"/> (five splits).</summary>
    /// <exception cref="ArgumentNullException"><paramref name="tp"/> is null.</exception>
    /// <exception cref="TensorGridException">The group size is not a perfect cube.</exception>
    public TensorGrid3D(ICommunicator tp)
    {
        ArgumentNullException.ThrowIfNull(tp);
        Tp = tp;
        C = GridMath.Root(tp.Size, 3) ?? throw new TensorGridException(
            $"a 3D tensor-parallel grid needs a cube number of ranks (1, 8, 27, 64, ...), got {tp.Size}");
        int r = tp.Rank;
        _coordinates = [r / (C * C), r / C % C, r % C];
        _axisGroups = new ICommunicator[3];
        for (int axis = 0; axis < 3; axis++)
        {
            // Color: the rank with this axis' coordinate zeroed, so each group is one line of the cube.
            int color = r - (_coordinates[axis] * Stride(axis));
            _axisGroups[axis] = GridMath.Split(tp, color, _coordinates[axis], $"3D axis {axis}");
        }
        _planes = new ICommunicator[3];
        for (int axis = 1; axis < 3; axis++)
        {
            _planes[axis] = GridMath.Split(tp, _coordinates[axis], (_coordinates[0] * C) + _coordinates[3 - axis], $"3D plane {axis}");
        }
    }

    /// <summary>The side of the cube, c = ∛p.</summary>
    public int C { get; }

    /// <summary>The tp communicator the grid was built over.</summary>
    public ICommunicator Tp { get; }

    /// <summary>This rank's coordinate on <paramref name="axis"/> (its rank in <see cref="Group"/>(axis)).</summary>
    /// <exception cref="ArgumentOutOfRangeException">axis outside [0, 3).</exception>
    public int Coordinate(int axis) => _coordinates[CheckAxis(axis, 0)];

    /// <summary>The c ranks that differ from this one only on <paramref name="axis"/>, ordered by that coordinate.</summary>
    /// <exception cref="ArgumentOutOfRangeException">axis outside [0, 3).</exception>
    public ICommunicator Group(int axis) => _axisGroups[CheckAxis(axis, 0)];

    /// <summary>The c² ranks sharing this rank's coordinate on <paramref name="axis"/> (1 or 2), ordered by a0·c + a(3 − axis).</summary>
    /// <exception cref="ArgumentOutOfRangeException">axis is not 1 or 2.</exception>
    public ICommunicator Plane(int axis) => _planes[CheckAxis(axis, 1)];

    /// <summary>
    /// This rank's block of the input X [N, In] of a layer whose input features lie on <paramref name="inputAxis"/>:
    /// rows block a0·c + a_out of c² (piece a_out of row block a0), columns block a_in of c.
    /// </summary>
    public GridBlock InputBlock(int inputAxis) => new((Coordinate(0) * C) + Coordinate(OtherAxis(inputAxis)), C * C, Coordinate(inputAxis), C);

    /// <summary>This rank's block of the output Y [N, Out] of that layer: rows block a0·c + a_in of c², columns block a_out of c.</summary>
    public GridBlock OutputBlock(int inputAxis) => new((Coordinate(0) * C) + Coordinate(inputAxis), C * C, Coordinate(OtherAxis(inputAxis)), C);

    /// <summary>This rank's block of that layer's W [In, Out]: rows block a_in·c + a0 of c² (piece a0 of block a_in), columns block a_out of c.</summary>
    public GridBlock WeightBlock(int inputAxis) => new((Coordinate(inputAxis) * C) + Coordinate(0), C * C, Coordinate(OtherAxis(inputAxis)), C);

    /// <summary>This rank's block of a vector over the hidden features split on <paramref name="hiddenAxis"/> (1 or 2): block a_hidden of c.</summary>
    public GridBlock VectorBlock(int hiddenAxis) => new(0, 1, Coordinate(CheckAxis(hiddenAxis, 1)), C);

    /// <summary>
    /// This rank's block of an embedding table [V, H] feeding a layer with input axis <paramref name="inputAxis"/>:
    /// vocabulary rows block a0·c + a_out of c² (its rank in the plane), hidden block a_in of c.
    /// </summary>
    public GridBlock TableBlock(int inputAxis) => InputBlock(inputAxis);

    /// <summary>The feature axis (1 or 2) that is not <paramref name="axis"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException">axis is not 1 or 2.</exception>
    public static int OtherAxis(int axis) => 3 - CheckAxis(axis, 1);

    /// <summary>Disposes the axis groups and planes.</summary>
    public void Dispose()
    {
        foreach (var group in _axisGroups)
        {
            group.Dispose();
        }
        _planes[1].Dispose();
        _planes[2].Dispose();
    }

    /// <inheritdoc />
    public override string ToString() => $"3D grid {C}×{C}×{C}, rank {Tp.Rank} at ({_coordinates[0]}, {_coordinates[1]}, {_coordinates[2]})";

    private int Stride(int axis) => axis switch { 0 => C * C, 1 => C, _ => 1 };

    private static int CheckAxis(int axis, int lowest)
    {
        if (axis < lowest || axis > 2)
        {
            throw new ArgumentOutOfRangeException(nameof(axis), axis, lowest == 0 ? "a 3D grid axis is 0, 1 or 2" : "a feature axis of a 3D grid is 1 or 2 (axis 0 splits the batch)");
        }
        return axis;
    }
}

/// <summary>Integer roots and the checked splits the grids share.</summary>
internal static class GridMath
{
    /// <summary>The integer r with r^power = value, or null when there is none.</summary>
    public static int? Root(int value, int power)
    {
        if (value < 1)
        {
            return null;
        }
        int r = (int)Math.Round(Math.Pow(value, 1.0 / power));
        for (int candidate = Math.Max(1, r - 1); candidate <= r + 1; candidate++)
        {
            if ((long)Math.Pow(candidate, power) == value)
            {
                return candidate;
            }
        }
        return null;
    }

    public static ICommunicator Split(ICommunicator tp, int color, int key, string what) =>
        tp.Split(color, key) ?? throw new TensorGridException($"splitting the {what} group gave rank {tp.Rank} no group");
}
