using Hal.Models.Transformer;
using Hal.Parallel.TensorParallel;

namespace Hal.Models.Nn;

// Legend: see GridGeometry (residual stream and inner activations per layout). x [rows, In/·] blocks, W [In, Out] blocks.

/// <summary>A grid linear layer over blocks (a 2D, 2.5D or 3D linear behind one shape).</summary>
internal sealed class GridLinear(Action<Tensor, Tensor, Tensor?, Tensor> forward, Action<Tensor, Tensor, Tensor, Tensor, Tensor?, Tensor?> backward, Func<long> bytes, IDisposable owner) : IDisposable
{
    /// <summary>y = x·W (+ b) over the blocks. Collective.</summary>
    public void Forward(Tensor x, Tensor weight, Tensor? bias, Tensor y) => forward(x, weight, bias, y);

    /// <summary>Adds the weight (and bias) gradient blocks and writes dx when given. Collective.</summary>
    public void Backward(Tensor x, Tensor dy, Tensor weight, Tensor weightGrad, Tensor? biasGrad, Tensor? dx) => backward(x, dy, weight, weightGrad, biasGrad, dx);

    public long BytesCommunicated => bytes();

    public void Dispose() => owner.Dispose();
}

/// <summary>
/// This rank's view of a 2D, 2.5D or 3D tp grid: the grid's communicator groups, and factories for the grid layers a
/// transformer uses (linears from and to the residual stream, norms over the residual features, the token embedding,
/// the vocabulary head and its softmax group). Owns the grid.
/// </summary>
internal sealed class GridContext : IDisposable
{
    private readonly TensorGrid2D? _grid2;
    private readonly TensorGrid25D? _grid25;
    private readonly TensorGrid3D? _grid3;

    public GridContext(Ops ops, ICommunicator tp, GridGeometry geometry)
    {
        Ops = ops;
        Tp = tp;
        Geometry = geometry;
        Rank = tp.Rank;
        switch (geometry.Mode)
        {
            case TensorParallelMode.TwoD:
                _grid2 = new TensorGrid2D(tp);
                break;
            case TensorParallelMode.TwoAndHalfD:
                _grid25 = new TensorGrid25D(tp, geometry.Depth);
                break;
            default:
                _grid3 = new TensorGrid3D(tp);
                break;
        }
    }

    public Ops Ops { get; }

    public ICommunicator Tp { get; }

    public GridGeometry Geometry { get; }

    public int Rank { get; }

    /// <summary>The ranks holding the other feature blocks of this rank's residual rows (a norm's statistics group).</summary>
    public ICommunicator ResidualHiddenGroup => _grid2?.RowGroup ?? _grid25?.RowGroup ?? _grid3!.Group(1);

    /// <summary>The groups over which a residual-feature vector (norm parameters, positions) is replicated.</summary>
    public ICommunicator[] ResidualReplicaGroups => _grid2 is not null ? [_grid2.ColumnGroup]
        : _grid25 is not null ? [_grid25.ColumnGroup, _grid25.DepthGroup]
        : [_grid3!.Group(0), _grid3.Group(2)];

    /// <summary>The ranks holding the other vocabulary blocks of this rank's logit rows.</summary>
    public ICommunicator LogitsGroup => _grid2?.RowGroup ?? _grid25?.RowGroup ?? _grid3!.Group(2);

    /// <summary>The group over which a table's gradient is replicated besides its own blocks (2.5D depth), or null.</summary>
    public ICommunicator? TableReplicaGroup => _grid25?.DepthGroup;

    /// <summary>A linear from the residual stream to inner activations (<paramref name="fromResidual"/>) or back.</summary>
    public GridLinear Linear(bool fromResidual)
    {
        if (_grid2 is not null)
        {
            var l = new Linear2D(Ops, _grid2);
            return new GridLinear(l.Forward, l.Backward, () => l.BytesCommunicated, l);
        }
        if (_grid25 is not null)
        {
            var l = new Linear25D(Ops, _grid25);
            return new GridLinear(l.Forward, l.Backward, () => l.BytesCommunicated, l);
        }
        var l3 = new Linear3D(Ops, _grid3!, fromResidual ? 1 : 2);
        return new GridLinear(l3.Forward, l3.Backward, () => l3.BytesCommunicated, l3);
    }

    /// <summary>A norm over the residual features (RMS for LLaMA).</summary>
    public GridNorm Norm(double eps, bool rms, string layer) => new(Ops, Tp, ResidualHiddenGroup, ResidualReplicaGroups, eps, rms, layer);

    /// <summary>The token embedding over a table in the <see cref="GridTensorKind.Table"/> layout.</summary>
    public GridTokenEmbedding Embedding(int vocabSize)
    {
        if (_grid3 is not null)
        {
            // Vocabulary rows block a2·c + a0 of the head's layout, over the plane of axis 1 (ranks sharing a1, ordered a0·c + a2).
            int block = (_grid3.Coordinate(2) * _grid3.C) + _grid3.Coordinate(0);
            return new GridTokenEmbedding(Ops, _grid3.Plane(1), vocabSize, block, "3D embedding");
        }
        var column = _grid2?.ColumnGroup ?? _grid25!.ColumnGroup;
        return new GridTokenEmbedding(Ops, column, vocabSize, column.Rank, "grid embedding");
    }

    /// <summary>The rows (of the replica's N ids) the embedding's group looks up: all, or on 2.5D this layer's.</summary>
    public (int First, int Count) EmbeddingIds(int n) => _grid25 is not null ? (_grid25.Layer * (n / _grid25.Depth), n / _grid25.Depth) : (0, n);

    /// <summary>The head logits = x·Tᵀ over the table layout: forward, backward, bytes.</summary>
    public (Action<Tensor, Tensor, Tensor> Forward, Action<Tensor, Tensor, Tensor, Tensor, Tensor?> Backward, Func<long> Bytes, IDisposable Owner) Head()
    {
        if (_grid3 is not null)
        {
            var h3 = new VocabHead3D(Ops, _grid3, 1);
            return (h3.Forward, h3.Backward, () => h3.BytesCommunicated, h3);
        }
        var h = _grid2 is not null ? new VocabHead2D(Ops, _grid2) : new VocabHead2D(Ops, _grid25!);
        return (h.Forward, h.Backward, () => h.BytesCommunicated, h);
    }

    public void Dispose()
    {
        _grid2?.Dispose();
        _grid25?.Dispose();
        _grid3?.Dispose();
    }
}
