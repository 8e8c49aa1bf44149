namespace Hal.Parallel.TensorParallel;

// Legend: q×q grid (2D) or q×q×d (2.5D), (h, i, j) this rank's layer, row and column; N rows of the batch, Nb = N/q
// (2D) or N/(d·q) (2.5D) rows of a block, Kb = In/q, Mb = Out/q. X block [Nb, Kb], W block [Kb, Mb] (InOut layout:
// y = x·W), Y block [Nb, Mb], bias block [Mb]. Blocks per rank: see TensorGrid2D / TensorGrid25D.

/// <summary>
/// A linear layer y = x·W + b with X, W and Y block-partitioned on a q×q grid (2D tensor parallelism, SUMMA; see
/// <see cref="Summa"/> for the steps). Rank (i, j) holds X_ij, W_ij and Y_ij; the bias block b_j is read on row 0 and
/// broadcast down column j, and its gradient accumulates on row 0 only (other rows may pass any bias of the right shape
/// and their bias gradient is left untouched). Per rank and step, with e bytes per element, it sends
/// forward (q−1)·(|X_ij| + |W_ij|)·e + (q−1)/q·|b_j|·e and backward (q−1)·(2·|X_ij| + 2·|W_ij|)·e + 2·(q−1)/q·|b_j|·e
/// (dX: q broadcasts of W, a reduce-scatter of q dX blocks; dW: q broadcasts of X, a reduce-scatter of q dW blocks;
/// db: an all-reduce over the column), so every term falls as 1/√p with p ranks. Functional over its blocks: weights
/// and gradients are passed to every call; gradients accumulate (beta = 1); dx is overwritten.
/// </summary>
public sealed class Linear2D : IDisposable
{
    private readonly TensorGrid2D _grid;
    private readonly GridCollectives _comm;

    /// <summary>A layer over <paramref name="grid"/>.</summary>
    /// <exception cref="ArgumentNullException">A null argument.</exception>
    /// <exception cref="ArgumentException"><paramref name="ops"/> works on another device than the grid.</exception>
    public Linear2D(Ops ops, TensorGrid2D grid)
    {
        ArgumentNullException.ThrowIfNull(grid);
        _grid = grid;
        _comm = new GridCollectives(ops, grid.Tp);
    }

    /// <summary>Bytes this rank has sent so far (ring count, see the class summary).</summary>
    public long BytesCommunicated => _comm.BytesCommunicated;

    /// <summary>Y_ij [Nb, Mb] = Σ_k X_ik·W_kj (+ b_j). Collective over the grid (2q + 1 broadcasts).</summary>
    /// <exception cref="ArgumentException">A block is not 2-D.</exception>
    /// <exception cref="ShapeMismatchException">The blocks do not fit together (checked before any communication).</exception>
    public void Forward(Tensor x, Tensor weight, Tensor? bias, Tensor y)
    {
        Summa.Check("2D linear", x, weight, bias, y);
        Summa.Forward(_comm, _grid.RowGroup, _grid.ColumnGroup, x, weight, bias, y);
    }

    /// <summary>
    /// From the forward input block X_ij and dY_ij: adds dW_ij = Σ_k X_kiᵀ·dY_kj into the weight gradient block, on row
    /// 0 adds db_j = Σ over column j of dY into the bias gradient (when given), and writes dX_ij = Σ_k dY_ik·W_jkᵀ
    /// (when dx is given). Collective.
    /// </summary>
    /// <exception cref="ShapeMismatchException">The blocks do not fit together.</exception>
    public void Backward(Tensor x, Tensor dy, Tensor weight, Tensor weightGrad, Tensor? biasGrad, Tensor? dx)
    {
        ArgumentNullException.ThrowIfNull(weightGrad);
        Summa.Check("2D linear backward", x, weight, biasGrad, dy);
        CheckGrads("2D linear backward", x, weight, weightGrad, dx);
        var sum = _comm.Scratch("linear2d.dw", weight.Shape, weight.DType);
        Summa.Backward(_comm, _grid.RowGroup, _grid.ColumnGroup, x, dy, weight, sum, dx);
        Summa.Accumulate(_comm.Ops, sum, weightGrad);
        if (biasGrad is not null)
        {
            var db = Summa.BiasGradSum(_comm, _grid.ColumnGroup, dy);
            if (_grid.Row == 0)
            {
                Summa.Accumulate(_comm.Ops, db, biasGrad);
            }
        }
    }

    /// <summary>Frees the scratch (the grid stays the caller's).</summary>
    public void Dispose() => _comm.Dispose();

    internal static void CheckGrads(string layer, Tensor x, Tensor weight, Tensor weightGrad, Tensor? dx)
    {
        if (weightGrad.Shape != weight.Shape || weightGrad.DType != weight.DType)
        {
            throw new ShapeMismatchException(layer, weight.Shape, weightGrad.Shape, "the weight gradient block must match the weight block");
        }
        if (dx is not null && (dx.Shape != x.Shape || dx.DType != x.DType))
        {
            throw new ShapeMismatchException(layer, x.Shape, dx.Shape, "dx must match the x block");
        }
    }
}

/// <summary>
/// A linear layer on a q×q×d grid (2.5D tensor parallelism, Tesseract): the batch rows are split over the d layers
/// (rank (h, i, j) holds rows block h·q + i of d·q), W is block-partitioned on each layer's q×q grid and replicated over
/// the layers, and each layer runs the 2D algorithm (<see cref="Summa"/>) on its own rows. The weight gradient of a
/// layer covers only its rows, so the d partial gradients are all-reduced over the depth group; the bias (owned by row 0
/// of every layer) likewise. Per rank and step, with Nb = N/(d·q): forward (q−1)·(|X_hij| + |W_ij|)·e +
/// (q−1)/q·|b_j|·e; backward (q−1)·(2·|X_hij| + 2·|W_ij|)·e + 2·(d−1)/d·|W_ij|·e + (2·(q−1)/q + 2·(d−1)/d)·|b_j|·e.
/// Against 2D on the same p = q²·d ranks the activation blocks are d times smaller in rows and the weight blocks
/// d times larger, trading activation traffic for a depth all-reduce of the weight gradient.
/// </summary>
public sealed class Linear25D : IDisposable
{
    private readonly TensorGrid25D _grid;
    private readonly GridCollectives _comm;

    /// <summary>A layer over <paramref name="grid"/>.</summary>
    /// <exception cref="ArgumentNullException">A null argument.</exception>
    /// <exception cref="ArgumentException"><paramref name="ops"/> works on another device than the grid.</exception>
    public Linear25D(Ops ops, TensorGrid25D grid)
    {
        ArgumentNullException.ThrowIfNull(grid);
        _grid = grid;
        _comm = new GridCollectives(ops, grid.Tp);
    }

    /// <summary>Bytes this rank has sent so far (ring count, see <see cref="Linear2D"/>).</summary>
    public long BytesCommunicated => _comm.BytesCommunicated;

    /// <summary>Y_hij [Nb, Mb] = Σ_k X_hik·W_kj (+ b_j), within layer h. Collective over the layer's grid.</summary>
    /// <exception cref="ArgumentException">A block is not 2-D.</exception>
    /// <exception cref="ShapeMismatchException">The blocks do not fit together (checked before any communication).</exception>
    public void Forward(Tensor x, Tensor weight, Tensor? bias, Tensor y)
    {
        Summa.Check("2.5D linear", x, weight, bias, y);
        Summa.Forward(_comm, _grid.RowGroup, _grid.ColumnGroup, x, weight, bias, y);
    }

    /// <summary>
    /// As <see cref="Linear2D.Backward"/> within layer h, then the weight (and bias) gradient terms are summed over the
    /// depth group, so every layer's copy receives the gradient of the whole batch. Collective.
    /// </summary>
    /// <exception cref="ShapeMismatchException">The blocks do not fit together.</exception>
    public void Backward(Tensor x, Tensor dy, Tensor weight, Tensor weightGrad, Tensor? biasGrad, Tensor? dx)
    {
        ArgumentNullException.ThrowIfNull(weightGrad);
        Summa.Check("2.5D linear backward", x, weight, biasGrad, dy);
        Linear2D.CheckGrads("2.5D linear backward", x, weight, weightGrad, dx);
        var sum = _comm.Scratch("linear25d.dw", weight.Shape, weight.DType);
        Summa.Backward(_comm, _grid.RowGroup, _grid.ColumnGroup, x, dy, weight, sum, dx);
        _comm.AllReduce(_grid.DepthGroup, sum);
        Summa.Accumulate(_comm.Ops, sum, weightGrad);
        if (biasGrad is not null)
        {
            var db = Summa.BiasGradSum(_comm, _grid.ColumnGroup, dy);
            _comm.AllReduce(_grid.DepthGroup, db);
            if (_grid.Row == 0)
            {
                Summa.Accumulate(_comm.Ops, db, biasGrad);
            }
        }
    }

    /// <summary>Frees the scratch (the grid stays the caller's).</summary>
    public void Dispose() => _comm.Dispose();
}
