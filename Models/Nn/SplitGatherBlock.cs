namespace Hal.Models.Nn;

// Legend: B batch, T time, C channels, p tp ranks, N = B·T rows, Nl = N/p rows of this rank (rank r holds rows
// [r·Nl, (r+1)·Nl) of the flattened batch).

/// <summary>
/// A pre-norm residual block under Megatron sequence parallelism (split-gather): the residual stream, the norms and
/// the residual adds work on this rank's Nl rows; the normed rows are all-gathered to [N, C] entering the attention
/// and the MLP (whose column-parallel input projections need every row), and the row-parallel output projections'
/// partial sums are reduce-scattered back to this rank's rows, where the bias is added once. Backward runs the duals:
/// the rows' gradient is all-gathered entering each pair and the column-parallel input gradient is reduce-scattered.
/// Per pair that is one all-gather and one reduce-scatter each way: the bytes of plain tensor parallelism's
/// all-reduce. Saved: the gathered norm outputs [N, C] (the input projections' weight gradients need them), mid
/// [Nl, C], and what the norms (their Nl-row statistics), attention and feed-forward save.
/// </summary>
public sealed class SplitGatherBlock
{
    /// <summary>Workspace key of the [Nl, C] scratch the split-gather modules share (a norm's output or input gradient on this rank's rows).</summary>
    public const string LocalScratchKey = "sg.local";

    /// <summary>Workspace key of the [N, C] scratch the split-gather modules share for gathered or partial gradients.</summary>
    public const string FullGradientKey = "sg.d.full";

    private readonly Workspace _ws;
    private readonly Block _block;
    private readonly TensorParallelContext _tp;
    private readonly string _norm1Key, _norm2Key, _midKey;
    private Tensor? _mid;
    private int _batch, _time;

    /// <summary>
    /// Runs the parts of <paramref name="block"/> (its output projections built with
    /// <see cref="Linear.DeferReduction"/>, its norms summing their gradients over <paramref name="tensorParallel"/>)
    /// on this rank's rows; <paramref name="scope"/> names its saved buffers.
    /// </summary>
    /// <exception cref="ArgumentException">an output projection that reduces its own output.</exception>
    public SplitGatherBlock(Workspace ws, Block block, TensorParallelContext tensorParallel, string scope)
    {
        ArgumentNullException.ThrowIfNull(ws);
        ArgumentNullException.ThrowIfNull(block);
        ArgumentNullException.ThrowIfNull(tensorParallel);
        if (!block.Attention.OutputProjection.DeferReduction || !block.FeedForward.OutputProjection.DeferReduction)
        {
            throw new ArgumentException("split-gather: the output projections must leave their reduction to the block (Linear.DeferReduction)", nameof(block));
        }
        _ws = ws;
        _block = block;
        _tp = tensorParallel;
        _norm1Key = scope + ".norm1";
        _norm2Key = scope + ".norm2";
        _midKey = scope + ".mid";
    }

    /// <summary>
    /// output [Nl, C] = block(x [Nl, C]) for this rank's rows of a [<paramref name="batch"/>, <paramref name="time"/>]
    /// batch; x is kept by reference and must stay unchanged until backward. Collective over the tp group.
    /// </summary>
    public void Forward(Tensor x, Tensor output, int batch, int time)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(output);
        var ops = _ws.Ops;
        int local = x.Shape[0], c = x.Shape[1], n = batch * time;
        var dtype = x.DType;
        _batch = batch;
        _time = time;
        // Scratch shared by every block: the local norm output only feeds the gather, and the partial sums reuse
        // the backward's norm-gradient buffer (forward and backward never overlap, recomputation included).
        var normLocal = _ws.Get(LocalScratchKey, new Shape(local, c), dtype);
        var partial = _ws.Get("d.block.norm", new Shape(n, c), dtype);
        var norm1 = _ws.Get(_norm1Key, new Shape(n, c), dtype, saved: true);
        var norm2 = _ws.Get(_norm2Key, new Shape(n, c), dtype, saved: true);
        _mid = _ws.Get(_midKey, new Shape(local, c), dtype, saved: true);

        _block.Norm1.Forward(x, normLocal);
        _tp.AllGather(normLocal, norm1);
        _block.Attention.Forward(norm1.Reshape(batch, time, c), partial.Reshape(batch, time, c), accumulate: false);
        _tp.ReduceScatter(partial, _mid);
        _block.Attention.OutputProjection.AddBias(ops, _mid);
        ops.Binary(BinaryOp.Add, _mid, x, _mid);

        _block.Norm2.Forward(_mid, normLocal);
        _tp.AllGather(normLocal, norm2);
        _block.FeedForward.Forward(norm2, partial, accumulate: false);
        _tp.ReduceScatter(partial, output);
        _block.FeedForward.OutputProjection.AddBias(ops, output);
        ops.Binary(BinaryOp.Add, output, _mid, output);
    }

    /// <summary>
    /// Backward in place on this rank's rows of the residual gradient: <paramref name="dResidual"/> [Nl, C] holds
    /// d(output) on entry and d(x) on return; the parameter gradients are added into the store. Collective.
    /// </summary>
    public void Backward(Tensor dResidual)
    {
        ArgumentNullException.ThrowIfNull(dResidual);
        if (_mid is null)
        {
            throw new InvalidOperationException("split-gather block: backward before forward");
        }
        int local = dResidual.Shape[0], c = dResidual.Shape[1], n = _batch * _time;
        var dtype = dResidual.DType;
        var dFull = _ws.Get(FullGradientKey, new Shape(n, c), dtype);
        var dNormFull = _ws.Get("d.block.norm", new Shape(n, c), dtype);
        var dNormLocal = _ws.Get(LocalScratchKey, new Shape(local, c), dtype);

        _tp.AllGather(dResidual, dFull);
        _block.FeedForward.Backward(dFull, dNormFull, accumulate: false);
        _tp.ReduceScatter(dNormFull, dNormLocal);
        _block.Norm2.Backward(dNormLocal, dResidual, accumulate: true);

        _tp.AllGather(dResidual, dFull);
        _block.Attention.Backward(dFull.Reshape(_batch, _time, c), dNormFull.Reshape(_batch, _time, c), accumulate: false);
        _tp.ReduceScatter(dNormFull, dNormLocal);
        _block.Norm1.Backward(dNormLocal, dResidual, accumulate: true);
    }
}
