namespace Hal.Parallel.TensorParallel;

// Legend: p tp ranks, N rows, Nl = N/p rows of this rank in sequence-parallel mode, Il = In/p input features of this
// rank, Out output features. Weight shard [Il, Out] (InOut) or [Out, Il] (OutIn); bias [Out] whole on every rank.

/// <summary>
/// The row-parallel half of a Megatron pair: each rank holds the input rows [r·Il, (r+1)·Il) of the weight and the
/// matching slice of the input (the column-parallel layer's output), so y = Σ over ranks of x_local·W_local is one
/// all-reduce, with the bias added once after it. In sequence-parallel mode the partial sums are reduce-scattered
/// instead, leaving this rank's rows [Nl, Out], and backward all-gathers dy first. Backward needs no other
/// communication: dx_local = dy·W_localᵀ, dW_local = x_localᵀ·dy, db = Σ dy over all N rows (the same on every rank).
/// Functional over its shards: weight and bias gradients accumulate (beta = 1); dx is overwritten.
/// </summary>
public sealed class RowParallelLinear : IDisposable
{
    private readonly TensorParallelGroup _group;

    /// <summary>A layer over the ranks of <paramref name="tpGroup"/>.</summary>
    /// <exception cref="ArgumentNullException">A null argument.</exception>
    /// <exception cref="ArgumentException"><paramref name="ops"/> works on another device than the group.</exception>
    public RowParallelLinear(Ops ops, ICommunicator tpGroup, WeightLayout layout, bool sequenceParallel = false)
    {
        _group = new TensorParallelGroup(ops, tpGroup);
        Layout = layout;
        SequenceParallel = sequenceParallel;
    }

    /// <summary>The weight layout of the shards.</summary>
    public WeightLayout Layout { get; }

    /// <summary>True when the output leaves as this rank's rows and dy arrives as this rank's rows.</summary>
    public bool SequenceParallel { get; }

    /// <summary>Bytes this rank has sent so far (ring count, see <see cref="SequenceParallelRegion"/>).</summary>
    public long BytesCommunicated => _group.BytesCommunicated;

    /// <summary>
    /// y [N, Out] = all-reduce(x_local [N, Il]·W_local) + b, or in sequence-parallel mode y [Nl, Out] = this rank's rows of
    /// that sum, + b. Collective.
    /// </summary>
    /// <exception cref="ArgumentException">The weight shard is not 2-D.</exception>
    /// <exception cref="ShapeMismatchException">x, y or the bias do not fit the weight shard.</exception>
    public void Forward(Tensor x, Tensor weight, Tensor? bias, Tensor y)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(weight);
        ArgumentNullException.ThrowIfNull(y);
        LinearShardMath.Check("row-parallel linear", x, weight, Layout, LinearShardMath.InFeatures(weight, Layout));
        var ops = _group.Ops;
        if (!SequenceParallel)
        {
            LinearShardMath.Forward(ops, x, weight, Layout, null, y);
            _group.AllReduce(y, ReduceOp.Sum);
        }
        else
        {
            var partial = _group.Scratch("row.y.partial", new Shape(x.Shape[0], LinearShardMath.OutFeatures(weight, Layout)), y.DType);
            LinearShardMath.Forward(ops, x, weight, Layout, null, partial);
            SequenceParallelRegion.CheckRows("row-parallel linear", y, partial, _group.Size);
            _group.ReduceScatter(partial, y);
        }
        if (bias is not null)
        {
            // After the reduction, so the bias counts once rather than once per rank.
            ops.Binary(BinaryOp.Add, y, bias, y);
        }
    }

    /// <summary>
    /// From the forward input x_local [N, Il] and dy ([N, Out], or this rank's rows [Nl, Out] in sequence-parallel mode,
    /// all-gathered here: collective): adds x_localᵀ·dy into the weight gradient shard and Σ dy into the bias gradient
    /// (when given; the full sum on every rank); writes dx_local [N, Il] = dy·W_localᵀ when dx is given.
    /// </summary>
    public void Backward(Tensor x, Tensor dy, Tensor weight, Tensor weightGrad, Tensor? biasGrad, Tensor? dx)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(dy);
        ArgumentNullException.ThrowIfNull(weight);
        ArgumentNullException.ThrowIfNull(weightGrad);
        var ops = _group.Ops;
        var dyFull = dy;
        if (SequenceParallel)
        {
            dyFull = _group.Scratch("row.dy.gathered", new Shape(dy.Shape[0] * _group.Size, dy.Shape[1]), dy.DType);
            _group.AllGather(dy, dyFull);
        }
        LinearShardMath.AddWeightGrad(ops, x, dyFull, Layout, weightGrad);
        if (biasGrad is not null)
        {
            LinearShardMath.AddBiasGrad(_group, "row.db", dyFull, biasGrad);
        }
        if (dx is not null)
        {
            LinearShardMath.InputGrad(ops, dyFull, weight, Layout, dx);
        }
    }

    /// <summary>Frees the scratch.</summary>
    public void Dispose() => _group.Dispose();
}
