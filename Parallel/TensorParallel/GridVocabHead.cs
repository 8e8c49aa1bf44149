namespace Hal.Parallel.TensorParallel;

// Legend: N rows, V vocabulary, C hidden. 2D/2.5D: q×q grid (per layer), (i, j) this rank's row and column, Nb rows of an
// activation block, Vb = V/q, Cb = C/q; x [Nb, Cb], table block T_ij [Vb, Cb] (vocabulary rows block i, hidden block j),
// logits [Nb, Vb] (rows block i, vocabulary block j). 3D: c×c×c cube, (a0, a_out, a_in) on axis 0, the output axis and the
// input axis; x [N/c², C/c] (InputBlock), table piece [V/c², C/c] (vocabulary rows block a_out·c + a0 of c², hidden
// block a_in), logits [N/c², V/c] (OutputBlock: rows block a0·c + a_in, vocabulary block a_out).

/// <summary>
/// The language-model head logits = x·Tᵀ of a 2D (or 2.5D) grid, with T the [V, C] table (a tied embedding or an
/// untied head) block-partitioned as an embedding table: the [out, in] layout, so one table serves the embedding and
/// the head without a transposed copy. Forward (the SUMMA A·Bᵀ order): step k broadcasts T_kj down column j (root row
/// k); rank (i, j) forms x_ij·T_kjᵀ, a term of logits block (i, k); the q terms are reduce-scattered over row i.
/// Backward: dx_ij = Σ_k dlogits_ik·T_kj is the SUMMA forward; dT_kj = Σ_i dlogits_ikᵀ·x_ij its weight gradient
/// (reduce-scattered over column j); on 2.5D the table is replicated over the layers and dT is all-reduced over the
/// depth group. Per rank and step with e bytes: forward (q−1)·|T_ij|·e + (q−1)·|logits|·e; backward
/// (q−1)·(2·|dlogits| + 2·|T_ij|)·e, plus 2·(d−1)/d·|T_ij|·e on 2.5D. Logits block (i, j) holds vocabulary block j:
/// the row group is the group a vocabulary-parallel softmax reduces over.
/// </summary>
public sealed class VocabHead2D : IDisposable
{
    private readonly GridCollectives _comm;
    private readonly ICommunicator _row, _column;
    private readonly ICommunicator? _depth;

    /// <summary>A head over a 2D grid.</summary>
    /// <exception cref="ArgumentNullException">A null argument.</exception>
    public VocabHead2D(Ops ops, TensorGrid2D grid)
    {
        ArgumentNullException.ThrowIfNull(grid);
        _comm = new GridCollectives(ops, grid.Tp);
        _row = grid.RowGroup;
        _column = grid.ColumnGroup;
    }

    /// <summary>A head over a 2.5D grid (each layer runs the 2D head on its rows; table gradients summed over depth).</summary>
    /// <exception cref="ArgumentNullException">A null argument.</exception>
    public VocabHead2D(Ops ops, TensorGrid25D grid)
    {
        ArgumentNullException.ThrowIfNull(grid);
        _comm = new GridCollectives(ops, grid.Tp);
        _row = grid.RowGroup;
        _column = grid.ColumnGroup;
        _depth = grid.DepthGroup;
    }

    /// <summary>Bytes this rank has sent so far (ring count).</summary>
    public long BytesCommunicated => _comm.BytesCommunicated;

    /// <summary>logits [Nb, Vb] = block (i, j) of x·Tᵀ. Collective.</summary>
    /// <exception cref="ShapeMismatchException">The blocks do not fit together.</exception>
    public void Forward(Tensor x, Tensor table, Tensor logits)
    {
        Check(x, table, logits);
        var ops = _comm.Ops;
        int q = _row.Size;
        var tk = _comm.Scratch("head2d.t", table.Shape, table.DType);
        var terms = _comm.Scratch("head2d.terms", new Shape(q, logits.Shape[0], logits.Shape[1]), logits.DType);
        for (int k = 0; k < q; k++)
        {
            var ts = _column.Rank == k ? table : tk;
            _comm.Broadcast(_column, ts, k);
            ops.Gemm(x, ts, terms.View((long)k * logits.ElementCount, logits.Shape), transB: true);
        }
        _comm.ReduceScatter(_row, terms, logits);
    }

    /// <summary>Adds this rank's block of dT into <paramref name="tableGrad"/> and writes dx (when given). Collective.</summary>
    /// <exception cref="ShapeMismatchException">The blocks do not fit together.</exception>
    public void Backward(Tensor x, Tensor dLogits, Tensor table, Tensor tableGrad, Tensor? dx)
    {
        Check(x, table, dLogits);
        Linear2D.CheckGrads("2D head backward", dLogits, table, tableGrad, null);
        if (dx is not null)
        {
            Summa.Check("2D head backward", dLogits, table, null, dx);
            Summa.Forward(_comm, _row, _column, dLogits, table, null, dx);
        }
        var sum = _comm.Scratch("head2d.dt", table.Shape, table.DType);
        Summa.Backward(_comm, _row, _column, dLogits, x, table, sum, null);
        if (_depth is not null)
        {
            _comm.AllReduce(_depth, sum);
        }
        Summa.Accumulate(_comm.Ops, sum, tableGrad);
    }

    /// <summary>Frees the scratch.</summary>
    public void Dispose() => _comm.Dispose();

    private static void Check(Tensor x, Tensor table, Tensor logits)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(table);
        ArgumentNullException.ThrowIfNull(logits);
        if (x.Rank != 2 || table.Rank != 2 || x.Shape[1] != table.Shape[1] || logits.Shape != new Shape(x.Shape[0], table.Shape[0]))
        {
            throw new ShapeMismatchException("2D head", new Shape(x.Shape[0], table.Shape[0]), logits.Shape,
                $"x block [Nb, Cb] {x.Shape} and table block [Vb, Cb] {table.Shape} give logits [Nb, Vb]");
        }
    }
}

/// <summary>
/// The language-model head logits = x·Tᵀ on a 3D cube, T the [V, C] table in the [out, in] layout with the
/// vocabulary rows split c² ways (block a_out·c + a0) and the hidden features over the input axis. As
/// <see cref="Linear3D"/>: x is all-gathered along the output axis, T along axis 0 (giving T's block a_out of c,
/// hidden a_in), and the c terms of the logits block are reduce-scattered along the input axis. Backward: dlogits is
/// all-gathered along the input axis; dx = dlogits·T is reduce-scattered along the output axis and dT = dlogitsᵀ·x
/// along axis 0, each landing in its operand's layout. Per rank and step: forward (c−1)·(|x| + |T| + |logits|)·e,
/// backward (c−1)·(2·|x| + 2·|T| + 2·|logits|)·e. The logits' vocabulary block lies on the output axis: its group is
/// the one a vocabulary-parallel softmax reduces over.
/// </summary>
public sealed class VocabHead3D : IDisposable
{
    private readonly TensorGrid3D _grid;
    private readonly GridCollectives _comm;

    /// <summary>A head whose input features lie on <paramref name="inputAxis"/> (1 or 2).</summary>
    /// <exception cref="ArgumentNullException">A null argument.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="inputAxis"/> is not 1 or 2.</exception>
    public VocabHead3D(Ops ops, TensorGrid3D grid, int inputAxis)
    {
        ArgumentNullException.ThrowIfNull(grid);
        OutputAxis = TensorGrid3D.OtherAxis(inputAxis);
        InputAxis = inputAxis;
        _grid = grid;
        _comm = new GridCollectives(ops, grid.Tp);
    }

    /// <summary>The cube axis the input features are split over.</summary>
    public int InputAxis { get; }

    /// <summary>The cube axis the vocabulary blocks of the logits lie on.</summary>
    public int OutputAxis { get; }

    /// <summary>This rank's vocabulary rows block of the table, of c² blocks: a_out·c + a0.</summary>
    public int TableRowBlock => (_grid.Coordinate(OutputAxis) * _grid.C) + _grid.Coordinate(0);

    /// <summary>Bytes this rank has sent so far (ring count).</summary>
    public long BytesCommunicated => _comm.BytesCommunicated;

    /// <summary>logits [N/c², V/c] = this rank's piece of x·Tᵀ. Collective.</summary>
    /// <exception cref="ShapeMismatchException">The pieces do not fit together.</exception>
    public void Forward(Tensor x, Tensor table, Tensor logits)
    {
        Check(x, table, logits);
        var (xFull, tFull) = Gather(x, table);
        var terms = _comm.Scratch("head3d.terms", new Shape(xFull.Shape[0], tFull.Shape[0]), logits.DType);
        _comm.Ops.Gemm(xFull, tFull, terms, transB: true);
        _comm.ReduceScatter(_grid.Group(InputAxis), terms, logits);
    }

    /// <summary>Adds this rank's piece of dT into <paramref name="tableGrad"/> and writes dx (when given). Collective.</summary>
    /// <exception cref="ShapeMismatchException">The pieces do not fit together.</exception>
    public void Backward(Tensor x, Tensor dLogits, Tensor table, Tensor tableGrad, Tensor? dx)
    {
        Check(x, table, dLogits);
        Linear2D.CheckGrads("3D head backward", x, table, tableGrad, dx);
        var ops = _comm.Ops;
        int c = _grid.C;
        var dyFull = _comm.Scratch("head3d.dy", new Shape(dLogits.Shape[0] * c, dLogits.Shape[1]), dLogits.DType);
        _comm.AllGather(_grid.Group(InputAxis), dLogits, dyFull);
        var (xFull, tFull) = Gather(x, table);
        if (dx is not null)
        {
            var dxTerms = _comm.Scratch("head3d.dx.terms", xFull.Shape, dx.DType);
            ops.Gemm(dyFull, tFull, dxTerms);
            _comm.ReduceScatter(_grid.Group(OutputAxis), dxTerms, dx);
        }
        var dtTerms = _comm.Scratch("head3d.dt.terms", tFull.Shape, table.DType);
        ops.Gemm(dyFull, xFull, dtTerms, transA: true);
        var dt = _comm.Scratch("head3d.dt", table.Shape, table.DType);
        _comm.ReduceScatter(_grid.Group(0), dtTerms, dt);
        Summa.Accumulate(ops, dt, tableGrad);
    }

    /// <summary>Frees the scratch.</summary>
    public void Dispose() => _comm.Dispose();

    private (Tensor X, Tensor T) Gather(Tensor x, Tensor table)
    {
        int c = _grid.C;
        var xFull = _comm.Scratch("head3d.x", new Shape(x.Shape[0] * c, x.Shape[1]), x.DType);
        _comm.AllGather(_grid.Group(OutputAxis), x, xFull);
        var tFull = _comm.Scratch("head3d.t", new Shape(table.Shape[0] * c, table.Shape[1]), table.DType);
        _comm.AllGather(_grid.Group(0), table, tFull);
        return (xFull, tFull);
    }

    private void Check(Tensor x, Tensor table, Tensor logits)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(table);
        ArgumentNullException.ThrowIfNull(logits);
        int c = _grid.C;
        if (x.Rank != 2 || table.Rank != 2 || x.Shape[1] != table.Shape[1] || logits.Shape != new Shape(x.Shape[0], table.Shape[0] * c))
        {
            throw new ShapeMismatchException("3D head", new Shape(x.Shape[0], table.Shape[0] * c), logits.Shape,
                $"x piece [N/c², C/c] {x.Shape} and table piece [V/c², C/c] {table.Shape} give logits [N/c², V/c]");
        }
    }
}

/// <summary>
/// A token embedding on a grid whose table block holds vocabulary rows block <c>vocabBlock</c> of the vocabulary
/// group's size and this rank's hidden block: every rank looks up all the group's ids in its rows (zero rows for ids
/// it does not hold) and one reduce-scatter over the vocabulary group sums them and leaves each rank the row block of
/// its group rank. Lets a head's table layout (<see cref="VocabHead3D.TableRowBlock"/>) serve the embedding too.
/// Per rank and step: forward (g−1)/g·N·Hl·e, backward the same (an all-gather of dy).
/// </summary>
public sealed class GridTokenEmbedding : IDisposable
{
    private readonly GridEmbedding _embedding;

    /// <summary>An embedding of <paramref name="vocabSize"/> rows whose vocabulary is split over <paramref name="vocabGroup"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException">vocabBlock outside the group's size, or vocabSize below 1.</exception>
    public GridTokenEmbedding(Ops ops, ICommunicator vocabGroup, int vocabSize, int vocabBlock, string layer)
    {
        ArgumentNullException.ThrowIfNull(vocabGroup);
        _embedding = new GridEmbedding(ops, vocabGroup, vocabSize, layer, vocabBlock);
    }

    /// <summary>This rank's vocabulary rows.</summary>
    public VocabShard Shard => _embedding.Shard;

    /// <summary>Bytes this rank has sent so far (ring count).</summary>
    public long BytesCommunicated => _embedding.BytesCommunicated;

    /// <summary>y [N/g, Hl] = row block (group rank) of table[ids] over this rank's hidden block; ids are the group's N. Collective.</summary>
    /// <exception cref="ArgumentException">ids not integer or not divisible by g, or the table block is not [Vl, Hl].</exception>
    public void Forward(Tensor weight, Tensor ids, Tensor y) => _embedding.Forward(weight, ids, y);

    /// <summary>Adds into the table gradient block the rows of dy (gathered over the group) whose ids this rank holds. Collective.</summary>
    /// <exception cref="ArgumentException">ids not integer or not divisible by g, or the gradient block is not [Vl, Hl].</exception>
    public void Backward(Tensor ids, Tensor dy, Tensor weightGrad) => _embedding.Backward(ids, dy, weightGrad);

    /// <summary>Frees the scratch.</summary>
    public void Dispose() => _embedding.Dispose();
}
