namespace Hal.Parallel.TensorParallel;

// Legend: p tp ranks, N rows, Nl = N/p rows of this rank in sequence-parallel mode, In input features,
// Ol = Out/p output features of this rank. Weight shard [In, Ol] (InOut) or [Ol, In] (OutIn); bias shard [Ol].

/// <summary>
/// The column-parallel half of a Megatron pair: each rank holds the output columns [r·Ol, (r+1)·Ol) of the weight
/// (and bias), so y_local = x·W_local (+ b_local) needs no communication when x is replicated. Backward: dW_local and
/// db_local come from local data alone; dx = Σ over ranks of dy_local·W_localᵀ is all-reduced (one collective), or in
/// sequence-parallel mode reduce-scattered to this rank's rows. In sequence-parallel mode the forward input is this
/// rank's rows [Nl, In]; they are all-gathered to [N, In] first and the gathered copy is kept for the weight gradient
/// (one gather per step, at the cost of an [N, In] buffer per layer until backward).
/// Functional over its shards: weights and gradients are passed to every call; weight and bias gradients accumulate
/// (beta = 1) so micro-batches add up; dx is overwritten.
/// </summary>
public sealed class ColumnParallelLinear : IDisposable
{
    private const string GatheredInput = "column.x.gathered";
    private readonly TensorParallelGroup _group;

    /// <summary>A layer over the ranks of <paramref name="tpGroup"/>.</summary>
    /// <exception cref="ArgumentNullException">A null argument.</exception>
    /// <exception cref="ArgumentException"><paramref name="ops"/> works on another device than the group.</exception>
    public ColumnParallelLinear(Ops ops, ICommunicator tpGroup, WeightLayout layout, bool sequenceParallel = false)
    {
        _group = new TensorParallelGroup(ops, tpGroup);
        Layout = layout;
        SequenceParallel = sequenceParallel;
    }

    /// <summary>The weight layout of the shards.</summary>
    public WeightLayout Layout { get; }

    /// <summary>True when the input arrives as this rank's rows and dx leaves as this rank's rows.</summary>
    public bool SequenceParallel { get; }

    /// <summary>Bytes this rank has sent so far (ring count, see <see cref="SequenceParallelRegion"/>).</summary>
    public long BytesCommunicated => _group.BytesCommunicated;

    /// <summary>
    /// y [N, Ol] = x·W_local (+ b_local). x is [N, In] (the same on every rank), or in sequence-parallel mode this rank's
    /// rows [Nl, In], gathered here (collective).
    /// </summary>
    /// <exception cref="ArgumentException">The weight shard is not 2-D.</exception>
    /// <exception cref="ShapeMismatchException">x, y or the bias do not fit the weight shard.</exception>
    public void Forward(Tensor x, Tensor weight, Tensor? bias, Tensor y)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(weight);
        ArgumentNullException.ThrowIfNull(y);
        LinearShardMath.Check("column-parallel linear", x, weight, Layout, LinearShardMath.InFeatures(weight, Layout));
        LinearShardMath.Forward(_group.Ops, FullInput(x), weight, Layout, bias, y);
    }

    /// <summary>
    /// From the forward input x (as passed to <see cref="Forward"/>) and dy [N, Ol]: adds x_fullᵀ·dy into the weight
    /// gradient shard and Σ dy into the bias gradient shard (when given); writes dx (when given) = all-reduce over
    /// ranks of dy·W_localᵀ [N, In], or in sequence-parallel mode this rank's rows [Nl, In] of that sum (collective
    /// when dx is given). In sequence-parallel mode the gathered input of the latest <see cref="Forward"/> is used.
    /// </summary>
    /// <exception cref="InvalidOperationException">Sequence-parallel backward before any forward.</exception>
    public void Backward(Tensor x, Tensor dy, Tensor weight, Tensor weightGrad, Tensor? biasGrad, Tensor? dx)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(dy);
        ArgumentNullException.ThrowIfNull(weight);
        ArgumentNullException.ThrowIfNull(weightGrad);
        var ops = _group.Ops;
        var input = x;
        if (SequenceParallel)
        {
            input = _group.Existing(GatheredInput) ?? throw new InvalidOperationException("column-parallel linear: sequence-parallel backward before forward");
        }
        LinearShardMath.AddWeightGrad(ops, input, dy, Layout, weightGrad);
        if (biasGrad is not null)
        {
            LinearShardMath.AddBiasGrad(_group, "column.db", dy, biasGrad);
        }
        if (dx is null)
        {
            return;
        }
        if (!SequenceParallel)
        {
            LinearShardMath.InputGrad(ops, dy, weight, Layout, dx);
            _group.AllReduce(dx, ReduceOp.Sum);
            return;
        }
        var partial = _group.Scratch("column.dx.partial", input.Shape, dy.DType);
        LinearShardMath.InputGrad(ops, dy, weight, Layout, partial);
        SequenceParallelRegion.CheckRows("column-parallel linear backward", dx, partial, _group.Size);
        _group.ReduceScatter(partial, dx);
    }

    /// <summary>Frees the gathered input and the scratch.</summary>
    public void Dispose() => _group.Dispose();

    /// <summary>x itself, or in sequence-parallel mode every rank's rows gathered into the kept buffer.</summary>
    private Tensor FullInput(Tensor x)
    {
        if (!SequenceParallel)
        {
            return x;
        }
        var full = _group.Scratch(GatheredInput, new Shape(x.Shape[0] * _group.Size, x.Shape[1]), x.DType);
        _group.AllGather(x, full);
        return full;
    }
}
