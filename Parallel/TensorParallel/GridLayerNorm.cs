namespace Hal.Parallel.TensorParallel;

// Legend: R rows of this rank's block, Hl hidden features of the block, H = Hl·g the full hidden size over the g ranks of
// the hidden group. x, y, dy, dx [R, Hl]; gamma, beta and their gradients [Hl]; mean and rstd [R].

/// <summary>
/// Layer norm over a hidden dimension split across the ranks of a hidden group: each row's partial Σx and Σx² over the
/// local features are all-reduced together (one all-reduce of 2·R elements), giving mean = Σx/H and
/// var = Σx²/H − mean² (one pass, so a row whose mean is large against its spread loses digits to cancellation, as any
/// one-pass variance does). Backward all-reduces Σ dŷ and Σ dŷ·x̂ per row the same way, where dŷ = dy·gamma and
/// x̂ = (x − mean)·rstd: dx = rstd·(dŷ − Σdŷ/H − x̂·Σ(dŷ·x̂)/H). gamma and beta blocks are replicated over the ranks that
/// hold other rows of the same features (the replica groups), so their gradients Σ dy·x̂ and Σ dy over the local rows
/// are all-reduced over each replica group in turn and accumulate on every replica.
/// </summary>
internal sealed class GridLayerNorm : IDisposable
{
    private readonly GridCollectives _comm;
    private readonly ICommunicator _hidden;
    private readonly ICommunicator[] _replicas;
    private readonly string _layer;

    public GridLayerNorm(Ops ops, ICommunicator tp, ICommunicator hidden, ICommunicator[] replicas, double eps, string layer)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(eps);
        _comm = new GridCollectives(ops, tp);
        _hidden = hidden;
        _replicas = replicas;
        _layer = layer;
        Eps = eps;
    }

    public double Eps { get; }

    public long BytesCommunicated => _comm.BytesCommunicated;

    public void Forward(Tensor x, Tensor gamma, Tensor? beta, Tensor y, Tensor mean, Tensor rstd)
    {
        ArgumentNullException.ThrowIfNull(y);
        var (rows, features) = Check(x, gamma, beta, mean, rstd);
        CheckSame(x, y, "y");
        var ops = _comm.Ops;
        var dt = x.DType;
        double h = (double)features * _hidden.Size;
        // stats [2, R]: Σx then Σx², one all-reduce for both.
        var stats = _comm.Scratch("layernorm.stats", new Shape(2 * rows), dt);
        var sum = stats.View(0, new Shape(rows, 1));
        var squares = stats.View(rows, new Shape(rows, 1));
        var square = _comm.Scratch("layernorm.square", x.Shape, dt);
        ops.Reduce(ReduceOp.Sum, x, 1, sum);
        ops.Unary(UnaryOp.Square, x, square);
        ops.Reduce(ReduceOp.Sum, square, 1, squares);
        _comm.AllReduce(_hidden, stats);

        var m = mean.Reshape(rows, 1);
        var r = rstd.Reshape(rows, 1);
        var inverseH = _comm.Constant(1 / h, dt);
        ops.Binary(BinaryOp.Mul, sum, inverseH, m);
        ops.Binary(BinaryOp.Mul, squares, inverseH, r);
        var meanSquare = _comm.Scratch("layernorm.mean2", new Shape(rows, 1), dt);
        ops.Binary(BinaryOp.Mul, m, m, meanSquare);
        ops.Binary(BinaryOp.Sub, r, meanSquare, r);
        ops.Binary(BinaryOp.Add, r, _comm.Constant(Eps, dt), r);
        ops.Unary(UnaryOp.Rsqrt, r, r);

        Normalized(x, m, r, y);
        ops.Binary(BinaryOp.Mul, y, gamma, y);
        if (beta is not null)
        {
            ops.Binary(BinaryOp.Add, y, beta, y);
        }
    }

    public void Backward(Tensor dy, Tensor x, Tensor gamma, Tensor mean, Tensor rstd, Tensor? dx, Tensor gammaGrad, Tensor? betaGrad)
    {
        ArgumentNullException.ThrowIfNull(dy);
        ArgumentNullException.ThrowIfNull(gammaGrad);
        var (rows, features) = Check(x, gamma, null, mean, rstd);
        CheckSame(x, dy, "dy");
        CheckSame(gamma, gammaGrad, "the gamma gradient");
        if (betaGrad is not null)
        {
            CheckSame(gamma, betaGrad, "the beta gradient");
        }
        if (dx is not null)
        {
            CheckSame(x, dx, "dx");
        }
        var ops = _comm.Ops;
        var dt = x.DType;
        var m = mean.Reshape(rows, 1);
        var r = rstd.Reshape(rows, 1);
        var xHat = _comm.Scratch("layernorm.xhat", x.Shape, dt);
        Normalized(x, m, r, xHat);
        var product = _comm.Scratch("layernorm.product", x.Shape, dt);

        // Parameter gradients: [2, Hl] = Σ over rows of dy·x̂ and of dy, summed over every replica group.
        int parameterRows = betaGrad is null ? 1 : 2;
        var parameterSums = _comm.Scratch("layernorm.dparams", new Shape(parameterRows * features), dt);
        ops.Binary(BinaryOp.Mul, dy, xHat, product);
        ops.Reduce(ReduceOp.Sum, product, 0, parameterSums.View(0, new Shape(1, features)));
        if (betaGrad is not null)
        {
            ops.Reduce(ReduceOp.Sum, dy, 0, parameterSums.View(features, new Shape(1, features)));
        }

        if (dx is not null)
        {
            double h = (double)features * _hidden.Size;
            var dxHat = _comm.Scratch("layernorm.dxhat", x.Shape, dt);
            ops.Binary(BinaryOp.Mul, dy, gamma, dxHat);
            var stats = _comm.Scratch("layernorm.dstats", new Shape(2 * rows), dt);
            var sum = stats.View(0, new Shape(rows, 1));
            var projection = stats.View(rows, new Shape(rows, 1));
            ops.Reduce(ReduceOp.Sum, dxHat, 1, sum);
            ops.Binary(BinaryOp.Mul, dxHat, xHat, product);
            ops.Reduce(ReduceOp.Sum, product, 1, projection);
            _comm.AllReduce(_hidden, stats);
            var inverseH = _comm.Constant(1 / h, dt);
            ops.Binary(BinaryOp.Mul, stats, inverseH, stats);
            // dx = rstd·(dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂))
            ops.Binary(BinaryOp.Mul, xHat, projection, product);
            ops.Binary(BinaryOp.Sub, dxHat, sum, dx);
            ops.Binary(BinaryOp.Sub, dx, product, dx);
            ops.Binary(BinaryOp.Mul, dx, r, dx);
        }

        foreach (var group in _replicas)
        {
            _comm.AllReduce(group, parameterSums);
        }
        Summa.Accumulate(ops, parameterSums.View(0, new Shape(features)), gammaGrad);
        if (betaGrad is not null)
        {
            Summa.Accumulate(ops, parameterSums.View(features, new Shape(features)), betaGrad);
        }
    }

    public void Dispose() => _comm.Dispose();

    /// <summary>out = (x − mean)·rstd.</summary>
    private void Normalized(Tensor x, Tensor mean, Tensor rstd, Tensor output)
    {
        var ops = _comm.Ops;
        ops.Binary(BinaryOp.Sub, x, mean, output);
        ops.Binary(BinaryOp.Mul, output, rstd, output);
    }

    private (int Rows, int Features) Check(Tensor x, Tensor gamma, Tensor? beta, Tensor mean, Tensor rstd)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(gamma);
        ArgumentNullException.ThrowIfNull(mean);
        ArgumentNullException.ThrowIfNull(rstd);
        if (x.Rank != 2)
        {
            throw new ArgumentException($"{_layer}: x must be a 2-D block [rows, Hl], got {x.Shape}", nameof(x));
        }
        int rows = x.Shape[0], features = x.Shape[1];
        var vector = new Shape(features);
        if (gamma.Shape != vector || gamma.DType != x.DType)
        {
            throw new ShapeMismatchException(_layer, vector, gamma.Shape, $"gamma must be this rank's {features} features of {x.DType.Name()}");
        }
        if (beta is not null)
        {
            CheckSame(gamma, beta, "beta");
        }
        var perRow = new Shape(rows);
        if (mean.Shape != perRow || rstd.Shape != perRow || mean.DType != x.DType || rstd.DType != x.DType)
        {
            throw new ShapeMismatchException(_layer, perRow, mean.Shape != perRow ? mean.Shape : rstd.Shape, $"mean and rstd hold one {x.DType.Name()} per row");
        }
        return (rows, features);
    }

    private void CheckSame(Tensor expected, Tensor actual, string what)
    {
        ArgumentNullException.ThrowIfNull(actual);
        if (actual.Shape != expected.Shape || actual.DType != expected.DType)
        {
            throw new ShapeMismatchException(_layer, expected.Shape, actual.Shape, $"{what} must be {expected.DType.Name()} {expected.Shape}");
        }
    }
}

/// <summary>
/// Layer norm on the 2D layout: rank (i, j) holds rows block i and hidden block j, so Σx and Σx² are all-reduced over the
/// row group (the q ranks sharing the rows); gamma_j and beta_j are replicated down column j and their gradients
/// all-reduced over the column group. Per rank and step with R rows and e bytes: forward 2·(q−1)/q·2R·e, backward
/// 2·(q−1)/q·(2R + 2·Hl)·e (with beta; 2R + Hl without).
/// </summary>
public sealed class LayerNorm2D : IDisposable
{
    private readonly GridLayerNorm _norm;

    /// <summary>A layer norm over <paramref name="grid"/> with variance floor <paramref name="eps"/>.</summary>
    /// <exception cref="ArgumentException"><paramref name="ops"/> works on another device than the grid.</exception>
    public LayerNorm2D(Ops ops, TensorGrid2D grid, double eps = 1e-5)
    {
        ArgumentNullException.ThrowIfNull(grid);
        _norm = new GridLayerNorm(ops, grid.Tp, grid.RowGroup, [grid.ColumnGroup], eps, "2D layer norm");
    }

    /// <summary>Bytes this rank has sent so far (ring count).</summary>
    public long BytesCommunicated => _norm.BytesCommunicated;

    /// <summary>y [R, Hl] = (x − mean)·rstd·gamma (+ beta) over the whole hidden row; writes mean and rstd [R] for backward. Collective.</summary>
    /// <exception cref="ShapeMismatchException">The blocks do not fit together.</exception>
    public void Forward(Tensor x, Tensor gamma, Tensor? beta, Tensor y, Tensor mean, Tensor rstd) => _norm.Forward(x, gamma, beta, y, mean, rstd);

    /// <summary>Writes dx (when given) and adds the gamma and beta gradients (summed over every row of the batch). Collective.</summary>
    /// <exception cref="ShapeMismatchException">The blocks do not fit together.</exception>
    public void Backward(Tensor dy, Tensor x, Tensor gamma, Tensor mean, Tensor rstd, Tensor? dx, Tensor gammaGrad, Tensor? betaGrad) =>
        _norm.Backward(dy, x, gamma, mean, rstd, dx, gammaGrad, betaGrad);

    /// <summary>Frees the scratch.</summary>
    public void Dispose() => _norm.Dispose();
}

/// <summary>
/// Layer norm on the 2.5D layout: as <see cref="LayerNorm2D"/> within a layer; gamma and beta are replicated over the
/// column and the depth, so their gradients are all-reduced over the column group, then the depth group.
/// </summary>
public sealed class LayerNorm25D : IDisposable
{
    private readonly GridLayerNorm _norm;

    /// <summary>A layer norm over <paramref name="grid"/> with variance floor <paramref name="eps"/>.</summary>
    /// <exception cref="ArgumentException"><paramref name="ops"/> works on another device than the grid.</exception>
    public LayerNorm25D(Ops ops, TensorGrid25D grid, double eps = 1e-5)
    {
        ArgumentNullException.ThrowIfNull(grid);
        _norm = new GridLayerNorm(ops, grid.Tp, grid.RowGroup, [grid.ColumnGroup, grid.DepthGroup], eps, "2.5D layer norm");
    }

    /// <summary>Bytes this rank has sent so far (ring count).</summary>
    public long BytesCommunicated => _norm.BytesCommunicated;

    /// <summary>See <see cref="LayerNorm2D.Forward"/>. Collective.</summary>
    /// <exception cref="ShapeMismatchException">The blocks do not fit together.</exception>
    public void Forward(Tensor x, Tensor gamma, Tensor? beta, Tensor y, Tensor mean, Tensor rstd) => _norm.Forward(x, gamma, beta, y, mean, rstd);

    /// <summary>See <see cref="LayerNorm2D.Backward"/>. Collective.</summary>
    /// <exception cref="ShapeMismatchException">The blocks do not fit together.</exception>
    public void Backward(Tensor dy, Tensor x, Tensor gamma, Tensor mean, Tensor rstd, Tensor? dx, Tensor gammaGrad, Tensor? betaGrad) =>
        _norm.Backward(dy, x, gamma, mean, rstd, dx, gammaGrad, betaGrad);

    /// <summary>Frees the scratch.</summary>
    public void Dispose() => _norm.Dispose();
}

/// <summary>
/// Layer norm on the 3D layout, for activations whose hidden features lie on cube axis hiddenAxis
/// (1 or 2: the output axis of the linear before it): Σx and Σx² are all-reduced over that axis' group; gamma and beta
/// are replicated over axis 0 and the other feature axis, and their gradients all-reduced over both.
/// </summary>
public sealed class LayerNorm3D : IDisposable
{
    private readonly GridLayerNorm _norm;

    /// <summary>A layer norm over <paramref name="grid"/> with the hidden features on <paramref name="hiddenAxis"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="hiddenAxis"/> is not 1 or 2.</exception>
    /// <exception cref="ArgumentException"><paramref name="ops"/> works on another device than the grid.</exception>
    public LayerNorm3D(Ops ops, TensorGrid3D grid, int hiddenAxis, double eps = 1e-5)
    {
        ArgumentNullException.ThrowIfNull(grid);
        int other = TensorGrid3D.OtherAxis(hiddenAxis);
        HiddenAxis = hiddenAxis;
        _norm = new GridLayerNorm(ops, grid.Tp, grid.Group(hiddenAxis), [grid.Group(0), grid.Group(other)], eps, "3D layer norm");
    }

    /// <summary>The cube axis the hidden features are split over.</summary>
    public int HiddenAxis { get; }

    /// <summary>Bytes this rank has sent so far (ring count).</summary>
    public long BytesCommunicated => _norm.BytesCommunicated;

    /// <summary>See <see cref="LayerNorm2D.Forward"/>. Collective.</summary>
    /// <exception cref="ShapeMismatchException">The blocks do not fit together.</exception>
    public void Forward(Tensor x, Tensor gamma, Tensor? beta, Tensor y, Tensor mean, Tensor rstd) => _norm.Forward(x, gamma, beta, y, mean, rstd);

    /// <summary>See <see cref="LayerNorm2D.Backward"/>. Collective.</summary>
    /// <exception cref="ShapeMismatchException">The blocks do not fit together.</exception>
    public void Backward(Tensor dy, Tensor x, Tensor gamma, Tensor mean, Tensor rstd, Tensor? dx, Tensor gammaGrad, Tensor? betaGrad) =>
        _norm.Backward(dy, x, gamma, mean, rstd, dx, gammaGrad, betaGrad);

    /// <summary>Frees the scratch.</summary>
    public void Dispose() => _norm.Dispose();
}
