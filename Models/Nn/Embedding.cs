using Hal.Parallel.TensorParallel;

namespace Hal.Models.Nn;

/// <summary>
/// Token embedding x [B, T, C] = wte[ids] (+ wpe[t] for GPT-2's learned positions). Backward index-adds dx rows into
/// the table gradients, which accumulates by construction (no scratch table).
/// Legend: B batch, T time, C channels, V vocabulary, N = B·T.
/// </summary>
public sealed class Embedding
{
    private readonly Workspace _ws;
    private readonly ParameterStore _store;
    private readonly string _tokenName;
    private readonly string? _positionName;
    private readonly VocabParallelEmbedding? _vocabParallel;
    private readonly SequenceParallelContext? _sequenceParallel;
    private Tensor? _ids;

    /// <summary>
    /// An embedding over the token table [V, C] and, when named, the position table [T, C]. With
    /// <paramref name="vocabParallel"/> the token table is this rank's vocabulary rows [Vl, C] and the lookup is
    /// summed over the tensor-parallel ranks (the position table stays whole). With <paramref name="sequenceParallel"/>
    /// the ids are this rank's tokens and each adds the position row of its global position.
    /// </summary>
    public Embedding(Workspace ws, ParameterStore store, string tokenName, string? positionName, VocabParallelEmbedding? vocabParallel = null,
        SequenceParallelContext? sequenceParallel = null)
    {
        _ws = ws;
        _sequenceParallel = sequenceParallel;
        _vocabParallel = vocabParallel;
        _store = store;
        _tokenName = tokenName;
        _positionName = positionName;
    }

    /// <summary>x [B, T, C] from ids [B, T] (I32/I64); keeps a reference to ids for backward.</summary>
    public void Forward(Tensor ids, Tensor x)
    {
        ArgumentNullException.ThrowIfNull(ids);
        var ops = _ws.Ops;
        _ids = ids;
        if (_vocabParallel is not null)
        {
            _vocabParallel.Forward(_store.Param(_tokenName), ids, x);
        }
        else
        {
            ops.Embedding(_store.Param(_tokenName), ids, x);
        }
        if (_positionName is not null)
        {
            int time = ids.Shape[1];
            var wpe = _store.Param(_positionName);
            if (_sequenceParallel is { } sp)
            {
                // This rank's tokens sit at scattered global positions: gather their rows [Tl, C], broadcast over B.
                var rows = _ws.Get("emb.wpe.rows", new Shape(time, wpe.Shape[1]), wpe.DType);
                ops.IndexSelect(wpe, 0, sp.PositionIndex(1, time), rows);
                ops.Binary(BinaryOp.Add, x, rows, x);
            }
            else
            {
                ops.Binary(BinaryOp.Add, x, wpe.Slice(0, time), x);
            }
        }
    }

    /// <summary>Adds the table gradients from dx [B, T, C].</summary>
    public void Backward(Tensor dx)
    {
        ArgumentNullException.ThrowIfNull(dx);
        var ids = _ids ?? throw new InvalidOperationException("embedding: backward before forward");
        var ops = _ws.Ops;
        int batch = ids.Shape[0], time = ids.Shape[1], rows = batch * time;
        var dx2 = dx.Reshape(rows, dx.Shape[-1]);
        if (_vocabParallel is not null)
        {
            _vocabParallel.Backward(ids, dx2, _store.Grad(_tokenName));
        }
        else
        {
            ops.IndexAdd(dx2, 0, ids.Reshape(rows), _store.Grad(_tokenName));
        }
        if (_positionName is not null)
        {
            var positions = _sequenceParallel is { } sp ? sp.PositionIndex(batch, time) : _ws.Positions(batch, time);
            ops.IndexAdd(dx2, 0, positions, _store.Grad(_positionName));
        }
    }
}
