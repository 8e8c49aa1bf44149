namespace Hal.Parallel.TensorParallel;

// Legend: c×c×c cube; this rank at (i, j, l) = (a0, a_out, a_in): i on axis 0 (batch rows), l on the input axis, j on
// the output axis. N rows, Np = N/c² rows of a piece, Kb = In/c, Kp = In/c², Mb = Out/c. X_il [N/c, Kb] is split by rows
// into c pieces over j; W_lj [Kb, Mb] by rows into c pieces over i; Y_ij [N/c, Mb] by rows into c pieces over l.
// This rank holds x [Np, Kb] (piece j of X_il), w [Kp, Mb] (piece i of W_lj), y [Np, Mb] (piece l of Y_ij), b_j [Mb].

/// <summary>
/// A linear layer y = x·W + b on a c×c×c cube (3D tensor parallelism): rank (i, j, l) computes the term X_il·W_lj of
/// Y_ij = Σ_l X_il·W_lj. Nothing is replicated at rest: X_il is all-gathered from its pieces along the output axis, W_lj
/// along axis 0, and the c terms of Y_ij are reduce-scattered along the input axis into pieces. Backward mirrors it:
/// dY_ij is all-gathered along the input axis; dX_il = Σ_j dY_ij·W_ljᵀ is reduce-scattered along the output axis and
/// dW_lj = Σ_i X_ilᵀ·dY_ij along axis 0, each landing in the layout of its operand (X and W are gathered again rather
/// than kept from forward, so the layer holds no state between calls). The output's features lie on the input axis'
/// partner, so the next layer takes <see cref="TensorGrid3D.OtherAxis"/> as its input axis (layers alternate).
/// The bias b_j is owned by the ranks with i = 0, broadcast along axis 0, and its gradient (all-reduced along axis 0)
/// accumulates there only. Per rank and step with e bytes per element: forward (c−1)·(|x| + |w| + |y|)·e +
/// (c−1)/c·|b|·e; backward (c−1)·(2·|x| + 2·|w| + |y|)·e + 2·(c−1)/c·|b|·e (dy is gathered once; x and w again, and the dx and dW terms
/// are reduce-scattered), every term falling as p^(−2/3).
/// </summary>
public sealed class Linear3D : IDisposable
{
    private readonly TensorGrid3D _grid;
    private readonly GridCollectives _comm;

    /// <summary>A layer over <paramref name="grid"/> whose input features lie on <paramref name="inputAxis"/> (1 or 2).</summary>
    /// <exception cref="ArgumentNullException">A null argument.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="inputAxis"/> is not 1 or 2.</exception>
    /// <exception cref="ArgumentException"><paramref name="ops"/> works on another device than the grid.</exception>
    public Linear3D(Ops ops, TensorGrid3D grid, int inputAxis)
    {
        ArgumentNullException.ThrowIfNull(grid);
        OutputAxis = TensorGrid3D.OtherAxis(inputAxis);
        InputAxis = inputAxis;
        _grid = grid;
        _comm = new GridCollectives(ops, grid.Tp);
    }

    /// <summary>The cube axis (1 or 2) the input features are split over.</summary>
    public int InputAxis { get; }

    /// <summary>The cube axis the output features are split over: the next layer's input axis.</summary>
    public int OutputAxis { get; }

    /// <summary>Bytes this rank has sent so far (ring count, see <see cref="GridCollectives"/>).</summary>
    public long BytesCommunicated => _comm.BytesCommunicated;

    private ICommunicator RowGroup => _grid.Group(0);

    private ICommunicator InGroup => _grid.Group(InputAxis);

    private ICommunicator OutGroup => _grid.Group(OutputAxis);

    /// <summary>y [Np, Mb] = piece l of Σ_l X_il·W_lj (+ b_j). Collective (two all-gathers, a reduce-scatter, a bias broadcast).</summary>
    /// <exception cref="ArgumentException">A block is not 2-D.</exception>
    /// <exception cref="ShapeMismatchException">The pieces do not fit together (checked before any communication).</exception>
    public void Forward(Tensor x, Tensor weight, Tensor? bias, Tensor y)
    {
        Check("3D linear", x, weight, bias, y);
        var ops = _comm.Ops;
        var (xFull, wFull) = GatherOperands(x, weight);
        var terms = _comm.Scratch("linear3d.y.terms", new Shape(x.Shape[0] * _grid.C, weight.Shape[1]), y.DType);
        ops.Gemm(xFull, wFull, terms);
        _comm.ReduceScatter(InGroup, terms, y);
        if (bias is not null)
        {
            var b = _grid.Coordinate(0) == 0 ? bias : _comm.Scratch("linear3d.b", bias.Shape, bias.DType);
            _comm.Broadcast(RowGroup, b, 0);
            ops.Binary(BinaryOp.Add, y, b, y);
        }
    }

    /// <summary>
    /// From the forward input piece x and dy [Np, Mb]: adds this rank's piece of dW into the weight gradient, on the
    /// i = 0 ranks adds db_j (the whole batch's Σ dY over the output block j) into the bias gradient (when given), and
    /// writes this rank's piece of dX (when dx is given). Collective.
    /// </summary>
    /// <exception cref="ShapeMismatchException">The pieces do not fit together.</exception>
    public void Backward(Tensor x, Tensor dy, Tensor weight, Tensor weightGrad, Tensor? biasGrad, Tensor? dx)
    {
        ArgumentNullException.ThrowIfNull(weightGrad);
        Check("3D linear backward", x, weight, biasGrad, dy);
        Linear2D.CheckGrads("3D linear backward", x, weight, weightGrad, dx);
        var ops = _comm.Ops;
        int c = _grid.C;
        var dyFull = _comm.Scratch("linear3d.dy.gathered", new Shape(dy.Shape[0] * c, dy.Shape[1]), dy.DType);
        _comm.AllGather(InGroup, dy, dyFull);
        var (xFull, wFull) = GatherOperands(x, weight);
        if (dx is not null)
        {
            var dxTerms = _comm.Scratch("linear3d.dx.terms", xFull.Shape, dx.DType);
            ops.Gemm(dyFull, wFull, dxTerms, transB: true);
            _comm.ReduceScatter(OutGroup, dxTerms, dx);
        }
        var dwTerms = _comm.Scratch("linear3d.dw.terms", wFull.Shape, weight.DType);
        ops.Gemm(xFull, dyFull, dwTerms, transA: true);
        var dw = _comm.Scratch("linear3d.dw", weight.Shape, weight.DType);
        _comm.ReduceScatter(RowGroup, dwTerms, dw);
        Summa.Accumulate(ops, dw, weightGrad);
        if (biasGrad is not null)
        {
            var db = _comm.Scratch("linear3d.db", new Shape(1, dy.Shape[1]), dy.DType);
            ops.Reduce(ReduceOp.Sum, dyFull, 0, db);
            _comm.AllReduce(RowGroup, db);
            if (_grid.Coordinate(0) == 0)
            {
                Summa.Accumulate(ops, db, biasGrad);
            }
        }
    }

    /// <summary>Frees the scratch (the grid stays the caller's).</summary>
    public void Dispose() => _comm.Dispose();

    /// <summary>X_il [N/c, Kb] gathered along the output axis and W_lj [Kb, Mb] along axis 0.</summary>
    private (Tensor X, Tensor W) GatherOperands(Tensor x, Tensor weight)
    {
        int c = _grid.C;
        var xFull = _comm.Scratch("linear3d.x.gathered", new Shape(x.Shape[0] * c, x.Shape[1]), x.DType);
        _comm.AllGather(OutGroup, x, xFull);
        var wFull = _comm.Scratch("linear3d.w.gathered", new Shape(weight.Shape[0] * c, weight.Shape[1]), weight.DType);
        _comm.AllGather(RowGroup, weight, wFull);
        return (xFull, wFull);
    }

    private void Check(string layer, Tensor x, Tensor weight, Tensor? bias, Tensor y)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(weight);
        ArgumentNullException.ThrowIfNull(y);
        if (x.Rank != 2 || weight.Rank != 2 || y.Rank != 2)
        {
            throw new ArgumentException($"{layer}: x, the weight piece and y must be 2-D, got {x.Shape}, {weight.Shape}, {y.Shape}", nameof(x));
        }
        int c = _grid.C;
        if (x.Shape[1] != weight.Shape[0] * c)
        {
            throw new ShapeMismatchException(layer, new Shape(x.Shape[0], weight.Shape[0] * c), x.Shape,
                $"x piece must be [N/c², In/c] for the weight piece {weight.Shape} ([In/c², Out/c]) on a cube of side {c}");
        }
        var expected = new Shape(x.Shape[0], weight.Shape[1]);
        if (y.Shape != expected)
        {
            throw new ShapeMismatchException(layer, expected, y.Shape, "y piece must be [N/c², Out/c]");
        }
        if (bias is not null && bias.Shape != new Shape(weight.Shape[1]))
        {
            throw new ShapeMismatchException(layer, new Shape(weight.Shape[1]), bias.Shape, "bias block must be [Out/c]");
        }
    }
}
