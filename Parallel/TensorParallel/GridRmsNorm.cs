namespace Hal.Parallel.TensorParallel;

// Legend: R rows of this rank's block, Hl hidden features of the block, H = Hl·g the full hidden size over the g ranks of
// the hidden group. x, y, dy, dx [R, Hl]; gamma and its gradient [Hl]; rstd [R].

/// <summary>
/// RMS norm (LLaMA's: y = x·rstd·gamma, rstd = 1/√(mean(x²) + eps), no mean and no bias) over a hidden dimension split
/// across the ranks of a hidden group: each row's partial Σx² is all-reduced over the hidden group (one all-reduce of R
/// elements). Backward all-reduces Σ dx̂·x̂ per row, where dx̂ = dy·gamma and x̂ = x·rstd:
/// dx = rstd·(dx̂ − x̂·Σ(dx̂·x̂)/H). gamma is replicated over the replica groups (the ranks holding other rows of the
/// same features), so its gradient Σ dy·x̂ over the local rows is all-reduced over each in turn and accumulates on
/// every replica. Per rank and step with e bytes: forward 2·(g−1)/g·R·e, backward 2·(g−1)/g·R·e plus
/// 2·(r−1)/r·Hl·e for each replica group of r ranks.
/// </summary>
internal sealed class GridRmsNorm : IDisposable
{
    private readonly GridCollectives _comm;
    private readonly ICommunicator _hidden;
    private readonly ICommunicator[] _replicas;
    private readonly string _layer;

    public GridRmsNorm(Ops ops, ICommunicator tp, ICommunicator hidden, ICommunicator[] replicas, double eps, string layer)
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

    public void Forward(Tensor x, Tensor gamma, Tensor y, Tensor rstd)
    {
        int rows = Check(x, gamma, rstd);
        Same(x, y, "y");
        var ops = _comm.Ops;
        var dt = x.DType;
        double h = (double)x.Shape[1] * _hidden.Size;
        var square = _comm.Scratch("rmsnorm.square", x.Shape, dt);
        var r = rstd.Reshape(rows, 1);
        ops.Unary(UnaryOp.Square, x, square);
        ops.Reduce(ReduceOp.Sum, square, 1, r);
        _comm.AllReduce(_hidden, rstd);
        ops.Binary(BinaryOp.Mul, r, _comm.Constant(1 / h, dt), r);
        ops.Binary(BinaryOp.Add, r, _comm.Constant(Eps, dt), r);
        ops.Unary(UnaryOp.Rsqrt, r, r);
        ops.Binary(BinaryOp.Mul, x, r, y);
        ops.Binary(BinaryOp.Mul, y, gamma, y);
    }

    public void Backward(Tensor dy, Tensor x, Tensor gamma, Tensor rstd, Tensor? dx, Tensor gammaGrad)
    {
        int rows = Check(x, gamma, rstd);
        Same(x, dy, "dy");
        Same(gamma, gammaGrad, "the gamma gradient");
        if (dx is not null)
        {
            Same(x, dx, "dx");
        }
        var ops = _comm.Ops;
        var dt = x.DType;
        int features = x.Shape[1];
        var r = rstd.Reshape(rows, 1);
        var xHat = _comm.Scratch("rmsnorm.xhat", x.Shape, dt);
        var product = _comm.Scratch("rmsnorm.product", x.Shape, dt);
        ops.Binary(BinaryOp.Mul, x, r, xHat);
        var gammaSum = _comm.Scratch("rmsnorm.dgamma", new Shape(1, features), dt);
        ops.Binary(BinaryOp.Mul, dy, xHat, product);
        ops.Reduce(ReduceOp.Sum, product, 0, gammaSum);
        if (dx is not null)
        {
            double h = (double)features * _hidden.Size;
            var dxHat = _comm.Scratch("rmsnorm.dxhat", x.Shape, dt);
            ops.Binary(BinaryOp.Mul, dy, gamma, dxHat);
            var projection = _comm.Scratch("rmsnorm.projection", new Shape(rows, 1), dt);
            ops.Binary(BinaryOp.Mul, dxHat, xHat, product);
            ops.Reduce(ReduceOp.Sum, product, 1, projection);
            _comm.AllReduce(_hidden, projection);
            ops.Binary(BinaryOp.Mul, projection, _comm.Constant(1 / h, dt), projection);
            // dx = rstd·(dx̂ − x̂·mean(dx̂·x̂))
            ops.Binary(BinaryOp.Mul, xHat, projection, product);
            ops.Binary(BinaryOp.Sub, dxHat, product, dx);
            ops.Binary(BinaryOp.Mul, dx, r, dx);
        }
        foreach (var group in _replicas)
        {
            _comm.AllReduce(group, gammaSum);
        }
        Summa.Accumulate(ops, gammaSum, gammaGrad);
    }

    public void Dispose() => _comm.Dispose();

    private int Check(Tensor x, Tensor gamma, Tensor rstd)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(gamma);
        ArgumentNullException.ThrowIfNull(rstd);
        if (x.Rank != 2)
        {
            throw new ArgumentException($"{_layer}: x must be a 2-D block [rows, Hl], got {x.Shape}", nameof(x));
        }
        if (gamma.Shape != new Shape(x.Shape[1]) || gamma.DType != x.DType)
        {
            throw new ShapeMismatchException(_layer, new Shape(x.Shape[1]), gamma.Shape, $"gamma must be this rank's {x.Shape[1]} features of {x.DType.Name()}");
        }
        if (rstd.Shape != new Shape(x.Shape[0]) || rstd.DType != x.DType)
        {
            throw new ShapeMismatchException(_layer, new Shape(x.Shape[0]), rstd.Shape, $"rstd holds one {x.DType.Name()} per row");
        }
        return x.Shape[0];
    }

    private void Same(Tensor expected, Tensor actual, string what)
    {
        ArgumentNullException.ThrowIfNull(actual);
        if (actual.Shape != expected.Shape || actual.DType != expected.DType)
        {
            throw new ShapeMismatchException(_layer, expected.Shape, actual.Shape, $"{what} must be {expected.DType.Name()} {expected.Shape}");
        }
    }
}

/// <summary>
/// A layer norm (GPT-2) or RMS norm (LLaMA) over hidden features split across a hidden group of a 2D, 2.5D or 3D grid,
/// with gamma (and beta) replicated over the given replica groups. The per-row statistics are all-reduced over the
/// hidden group; the parameter gradients over each replica group (see <see cref="LayerNorm2D"/> for the layer norm's
/// byte count, <see cref="GridRmsNorm"/> for the RMS norm's). Layout-free: the caller picks the groups of its grid.
/// </summary>
public sealed class GridNorm : IDisposable
{
    private readonly GridLayerNorm? _layerNorm;
    private readonly GridRmsNorm? _rmsNorm;

    /// <summary>
    /// A norm whose rows' features are split over <paramref name="hidden"/> and whose parameters are replicated over
    /// <paramref name="replicas"/>; <paramref name="rms"/> picks the RMS norm (no mean, no beta).
    /// </summary>
    /// <exception cref="ArgumentNullException">A null argument.</exception>
    /// <exception cref="ArgumentException"><paramref name="ops"/> works on another device than the grid.</exception>
    public GridNorm(Ops ops, ICommunicator tp, ICommunicator hidden, IReadOnlyList<ICommunicator> replicas, double eps, bool rms, string layer)
    {
        ArgumentNullException.ThrowIfNull(hidden);
        ArgumentNullException.ThrowIfNull(replicas);
        if (rms)
        {
            _rmsNorm = new GridRmsNorm(ops, tp, hidden, [.. replicas], eps, layer);
        }
        else
        {
            _layerNorm = new GridLayerNorm(ops, tp, hidden, [.. replicas], eps, layer);
        }
        IsRms = rms;
    }

    /// <summary>True for the RMS norm.</summary>
    public bool IsRms { get; }

    /// <summary>Bytes this rank has sent so far (ring count).</summary>
    public long BytesCommunicated => _layerNorm?.BytesCommunicated ?? _rmsNorm!.BytesCommunicated;

    /// <summary>y [R, Hl] = the norm of x over the whole hidden row; writes mean (layer norm only; ignored for RMS) and rstd [R]. Collective.</summary>
    /// <exception cref="ShapeMismatchException">The blocks do not fit together.</exception>
    public void Forward(Tensor x, Tensor gamma, Tensor? beta, Tensor y, Tensor mean, Tensor rstd)
    {
        if (_rmsNorm is not null)
        {
            _rmsNorm.Forward(x, gamma, y, rstd);
        }
        else
        {
            _layerNorm!.Forward(x, gamma, beta, y, mean, rstd);
        }
    }

    /// <summary>Writes dx (when given) and adds the gamma (and beta) gradients summed over every row of the batch. Collective.</summary>
    /// <exception cref="ShapeMismatchException">The blocks do not fit together.</exception>
    public void Backward(Tensor dy, Tensor x, Tensor gamma, Tensor mean, Tensor rstd, Tensor? dx, Tensor gammaGrad, Tensor? betaGrad)
    {
        if (_rmsNorm is not null)
        {
            _rmsNorm.Backward(dy, x, gamma, rstd, dx, gammaGrad);
        }
        else
        {
            _layerNorm!.Backward(dy, x, gamma, mean, rstd, dx, gammaGrad, betaGrad);
        }
    }

    /// <summary>Frees the scratch.</summary>
    public void Dispose()
    {
        _layerNorm?.Dispose();
        _rmsNorm?.Dispose();
    }
}
