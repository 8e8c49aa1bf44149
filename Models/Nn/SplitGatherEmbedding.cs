using Hal.Parallel.TensorParallel;

namespace Hal.Models.Nn;

// Legend: B batch, T time, C channels, V vocabulary, p tp ranks, N = B·T rows, Nl = N/p rows of this rank
// (rank r holds rows [r·Nl, (r+1)·Nl)), Vl vocabulary rows of this rank.

/// <summary>
/// The token (and GPT-2 position) embedding under Megatron sequence parallelism: the vocabulary-parallel lookup's
/// partial rows are reduce-scattered to this rank's Nl rows (instead of all-reduced), and each adds the position row
/// of its own token. Backward all-gathers the rows' gradient (the dual of the reduce-scatter) and then adds the whole
/// batch's rows into the token shard and the position table, so the position gradient is whole and the same on every
/// rank without a further sum.
/// </summary>
public sealed class SplitGatherEmbedding : IDisposable
{
    private readonly Workspace _ws;
    private readonly ParameterStore _store;
    private readonly string _tokenName;
    private readonly string? _positionName;
    private readonly TensorParallelContext _tp;
    private readonly VocabParallelEmbedding _lookup;
    private readonly VocabParallelEmbedding _gradient;
    private Tensor? _ids;

    /// <summary>An embedding over this rank's rows [Vl, C] of the named token table and, when named, the whole position table [T, C].</summary>
    public SplitGatherEmbedding(Workspace ws, ParameterStore store, string tokenName, string? positionName, TensorParallelContext tensorParallel, int vocabSize)
    {
        ArgumentNullException.ThrowIfNull(ws);
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(tensorParallel);
        _ws = ws;
        _store = store;
        _tokenName = tokenName;
        _positionName = positionName;
        _tp = tensorParallel;
        _lookup = new VocabParallelEmbedding(ws.Ops, tensorParallel.Group, vocabSize, sequenceParallel: true);
        try
        {
            // Backward gets the whole batch's gradient rows (gathered here), so it runs the lookup's plain backward.
            _gradient = new VocabParallelEmbedding(ws.Ops, tensorParallel.Group, vocabSize);
        }
        catch
        {
            _lookup.Dispose();
            throw;
        }
    }

    /// <summary>Bytes this rank has sent in the lookup's reduce-scatters (the backward gathers count in the context).</summary>
    public long BytesCommunicated => _lookup.BytesCommunicated + _gradient.BytesCommunicated;

    /// <summary>x [Nl, C] = this rank's rows of the embedding of ids [B, T] (I32/I64); keeps a reference to ids. Collective.</summary>
    public void Forward(Tensor ids, Tensor x)
    {
        ArgumentNullException.ThrowIfNull(ids);
        ArgumentNullException.ThrowIfNull(x);
        var ops = _ws.Ops;
        _ids = ids;
        _lookup.Forward(_store.Param(_tokenName), ids, x);
        if (_positionName is not null)
        {
            int batch = ids.Shape[0], time = ids.Shape[1], local = x.Shape[0];
            var wpe = _store.Param(_positionName);
            // Row i of the flattened batch sits at position i mod T: this rank's rows are a contiguous run of them.
            var positions = _ws.Positions(batch, time).Slice(_tp.Rank * local, local);
            var rows = _ws.Get(SplitGatherBlock.LocalScratchKey, new Shape(local, wpe.Shape[1]), wpe.DType);
            ops.IndexSelect(wpe, 0, positions, rows);
            ops.Binary(BinaryOp.Add, x, rows, x);
        }
    }

    /// <summary>Adds the table gradients from this rank's rows dx [Nl, C]. Collective.</summary>
    public void Backward(Tensor dx)
    {
        ArgumentNullException.ThrowIfNull(dx);
        var ids = _ids ?? throw new InvalidOperationException("split-gather embedding: backward before forward");
        var ops = _ws.Ops;
        int batch = ids.Shape[0], time = ids.Shape[1], c = dx.Shape[1];
        var full = _ws.Get(SplitGatherBlock.FullGradientKey, new Shape(batch * time, c), dx.DType);
        _tp.AllGather(dx, full);
        _gradient.Backward(ids, full, _store.Grad(_tokenName));
        if (_positionName is not null)
        {
            ops.IndexAdd(full, 0, _ws.Positions(batch, time), _store.Grad(_positionName));
        }
    }

    /// <summary>Frees the lookups' scratch.</summary>
    public void Dispose()
    {
        _lookup.Dispose();
        _gradient.Dispose();
    }
}
