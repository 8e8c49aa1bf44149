using Hal.Models.Nn;
using Hal.Parallel;
using Hal.Parallel.TensorParallel;

namespace Hal.Models.Transformer;

// Legend: B sequences of the replica's batch, T time, N = B·T, C channels, V vocabulary; R = N / row blocks rows of this
// rank's residual and inner blocks, Cb = C/f residual features, Vp = V padded to the table's vocabulary blocks (see
// GridGeometry.PaddedVocabSize), Vb = Vp/f vocabulary columns of its logits block, Vl rows of its table block (Vp/q,
// or Vp/c² on 3D). See GridGeometry for which blocks a rank holds.

/// <summary>
/// GPT-2 or LLaMA on a 2D, 2.5D or 3D tensor-parallel grid: every linear of every block, the norms, the token
/// embedding and the vocabulary head run on block-partitioned activations and weights (see <see cref="GridGeometry"/>),
/// attention runs on the heads of the rank's feature block, and the cross-entropy's softmax is reduced over the ranks
/// holding a row's vocabulary blocks (logits are never gathered). Parameters keep their Hugging Face names with this
/// rank's block shapes (<see cref="GridParameterLayout"/>); GPT-2's tied wte is one table serving the embedding and
/// the head, its gradient the sum of both. Forward takes the whole replica's batch on every tp rank (each picks its
/// rows); the loss is the mean over its B·T tokens on every rank.
/// </summary>
public sealed class GridTransformerModel : IDisposable
{
    private readonly GridContext _grid;
    private readonly Workspace _ws;
    private readonly GridTransformerBlock[] _blocks;
    private readonly GridNorm _finalNorm;
    private readonly GridTokenEmbedding _embedding;
    private readonly (Action<Tensor, Tensor, Tensor> Forward, Action<Tensor, Tensor, Tensor, Tensor, Tensor?> Backward, Func<long> Bytes, IDisposable Owner) _head;
    private readonly VocabParallelCrossEntropy _loss;
    private readonly RotaryTables? _rotary;
    private readonly bool _gpt;
    private readonly string _table, _headName;
    private long _ownBytes;
    private int _batch, _time;
    private Tensor? _ids, _targets;
    private bool _canBackward;

    /// <summary>This rank's part of <paramref name="config"/> on the grid <paramref name="geometry"/> over <paramref name="tp"/>. Collective (builds the grid's groups).</summary>
    /// <exception cref="ArgumentException">The grid does not fit the tp group or cannot split the model.</exception>
    public GridTransformerModel(Ops ops, ModelConfig config, ICommunicator tp, GridGeometry geometry, DType computeDType = DType.F32)
    {
        ArgumentNullException.ThrowIfNull(ops);
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(tp);
        ArgumentNullException.ThrowIfNull(geometry);
        if (tp.Size != geometry.Ranks)
        {
            throw new ArgumentException($"the {geometry.Mode.Name()} grid needs {geometry.Ranks} tp ranks, the group has {tp.Size}", nameof(tp));
        }
        if (geometry.Problem(config, geometry.RowBlocks) is { } problem)
        {
            throw new ArgumentException(problem, nameof(config));
        }
        Ops = ops;
        Config = config;
        Geometry = geometry;
        Layout = GridParameterLayout.Of(config);
        Parameters = new ParameterStore();
        GridParameterLayout.Declare(Parameters, Layout, geometry);
        Parameters.Allocate(ops, computeDType);
        _gpt = config.Family == ModelFamily.Gpt2;
        _table = _gpt ? "transformer.wte.weight" : "model.embed_tokens.weight";
        _headName = _gpt || config.TieEmbeddings ? _table : "lm_head.weight";
        _grid = new GridContext(ops, tp, geometry);
        _ws = new Workspace(ops);
        _rotary = _gpt ? null : new RotaryTables(ops, config.ContextLength, config.HeadSize, config.RopeTheta);
        _blocks = [.. Enumerable.Range(0, config.Layers).Select(i => new GridTransformerBlock(_ws, Parameters, _grid, config, i, _rotary))];
        _finalNorm = _grid.Norm(config.NormEps, rms: !_gpt, "final norm");
        _embedding = _grid.Embedding(config.VocabSize);
        _head = _grid.Head();
        // The logits block holds Vp/f columns (Vp = V padded to the table's vocabulary blocks, which on 3D are finer
        // than the f logit blocks): the softmax's shards are those columns, the padding masked out of the loss.
        var logitsGroup = _grid.LogitsGroup;
        _loss = new VocabParallelCrossEntropy(ops, logitsGroup, new VocabShard(config.VocabSize, logitsGroup.Size, logitsGroup.Rank, LogitColumns));
    }

    /// <summary>The model's shape.</summary>
    public ModelConfig Config { get; }

    /// <summary>The grid and which blocks this rank holds.</summary>
    public GridGeometry Geometry { get; }

    /// <summary>Every parameter's grid mapping, in <see cref="Parameters"/>' order.</summary>
    public IReadOnlyList<GridParameter> Layout { get; }

    /// <summary>This rank's blocks under Hugging Face names.</summary>
    public ParameterStore Parameters { get; }

    /// <summary>The entry the model computes through.</summary>
    public Ops Ops { get; }

    /// <summary>This rank's tp rank.</summary>
    public int TpRank => _grid.Rank;

    /// <summary>Bytes this rank has sent in the grid layers so far (ring count, every layer together).</summary>
    public long BytesCommunicated => EmbeddingBytesCommunicated + _blocks.Sum(b => b.BytesCommunicated) + HeadBytesCommunicated;

    /// <summary>Bytes the embedding (and, on 2.5D and GPT-2's positions, their gradient all-reduces) has sent so far.</summary>
    public long EmbeddingBytesCommunicated => _embedding.BytesCommunicated + _ownBytes;

    /// <summary>Bytes the final norm, head and softmax have sent so far.</summary>
    public long HeadBytesCommunicated => _finalNorm.BytesCommunicated + _head.Bytes() + _loss.BytesCommunicated;

    /// <summary>Bytes block <paramref name="layer"/> (0-based) has sent so far.</summary>
    public long BlockBytesCommunicated(int layer) => _blocks[layer].BytesCommunicated;

    /// <summary>Initialises every block from the full tensors the single-device model draws from <paramref name="seed"/> (one layout-independent start).</summary>
    public void Initialize(ulong seed)
    {
        // One full tensor at a time, drawn at its single-device Philox offset: no rank ever holds the whole model.
        using var full = new ParameterStore();
        TransformerModel.DeclareParameters(full, Config);
        for (int i = 0; i < Layout.Count; i++)
        {
            using var whole = Ops.Empty(Layout[i].FullShape, Parameters.DType);
            TransformerModel.InitializeParameter(Ops, Config, full.Infos[i], whole, seed, 0);
            GridParameterLayout.Split(Ops, Layout[i], Geometry, TpRank, whole, Parameters.Param(i));
        }
    }

    /// <summary>Every local block = this rank's blocks of the same-named full tensor of <paramref name="full"/>.</summary>
    public void LoadFull(ParameterStore full)
    {
        ArgumentNullException.ThrowIfNull(full);
        for (int i = 0; i < Layout.Count; i++)
        {
            GridParameterLayout.Split(Ops, Layout[i], Geometry, TpRank, full.Param(Layout[i].Name), Parameters.Param(i));
        }
    }

    /// <summary>
    /// Runs the forward on the replica's ids and targets [B, T] (I32, the same on every tp rank) and returns the mean
    /// cross-entropy over its B·T tokens. Collective over the tp group.
    /// </summary>
    /// <exception cref="ArgumentException">ids or targets of the wrong shape, or B not divisible by the row blocks.</exception>
    public double Forward(Tensor ids, Tensor targets)
    {
        ArgumentNullException.ThrowIfNull(ids);
        ArgumentNullException.ThrowIfNull(targets);
        if (ids.Rank != 2 || targets.Shape != ids.Shape || ids.Shape[1] > Config.ContextLength || ids.Shape[0] % Geometry.RowBlocks != 0)
        {
            throw new ArgumentException($"ids and targets must be [B, T] with T ≤ {Config.ContextLength} and B divisible by {Geometry.RowBlocks}, got {ids.Shape} and {targets.Shape}", nameof(ids));
        }
        _canBackward = false;
        _ws.ResetSaved();
        var ops = Ops;
        var dt = Parameters.DType;
        _batch = ids.Shape[0];
        _time = ids.Shape[1];
        int n = _batch * _time, rows = n / Geometry.RowBlocks, local = rows / _time, cb = Config.Channels / Geometry.FeatureBlocks;
        _ids = ids.Reshape(n);
        _targets = targets.Reshape(n);
        var x = Residual(0, rows, cb, dt);
        var (first, count) = _grid.EmbeddingIds(n);
        _embedding.Forward(Parameters.Param(_table), _ids.View(first, new Shape(count)), x);
        if (_gpt)
        {
            var positions = _ws.Get("g.pos", x.Shape, dt);
            ops.IndexSelect(Parameters.Param("transformer.wpe.weight"), 0, _ws.Positions(local, _time), positions);
            ops.Binary(BinaryOp.Add, x, positions, x);
        }
        for (int l = 0; l < _blocks.Length; l++)
        {
            _blocks[l].Forward(Residual(l, rows, cb, dt), local, _time, Residual(l + 1, rows, cb, dt));
        }
        var xl = Residual(_blocks.Length, rows, cb, dt);
        var xf = _ws.Get("g.final", xl.Shape, dt, saved: true);
        _finalNorm.Forward(xl, Parameters.Param(FinalNorm), _gpt ? Parameters.Param("transformer.ln_f.bias") : null, xf,
            _ws.Get("g.final.mean", new Shape(rows), dt, saved: true), _ws.Get("g.final.rstd", new Shape(rows), dt, saved: true));
        var logits = _ws.Get("g.logits", new Shape(rows, LogitColumns), dt, saved: true);
        _head.Forward(xf, Parameters.Param(_headName), logits);
        var losses = _loss.Forward(logits, _targets.View((long)Geometry.InnerRowBlock(TpRank) * rows, new Shape(rows)));
        double sum = ops.ToDoubleArray(losses).Sum();
        // Every row's loss is on the f ranks holding its vocabulary blocks: the tp sum counts it f times.
        double total = DataParallel.SumScalar(_grid.Tp, ops, sum);
        _canBackward = true;
        return total / ((double)n * Geometry.FeatureBlocks);
    }

    /// <summary>Adds d(lossScale · meanLoss)/dθ into this rank's gradient blocks. Collective over the tp group.</summary>
    /// <exception cref="InvalidOperationException">No forward since the last backward.</exception>
    public void Backward(double lossScale = 1.0)
    {
        if (!_canBackward)
        {
            throw new InvalidOperationException("Backward needs a Forward first");
        }
        _canBackward = false;
        var ops = Ops;
        var dt = Parameters.DType;
        int n = _batch * _time, rows = n / Geometry.RowBlocks, local = rows / _time, cb = Config.Channels / Geometry.FeatureBlocks;
        var logits = _ws.Get("g.logits", new Shape(rows, LogitColumns), dt);
        var dLogits = _ws.Get("d.g.logits", logits.Shape, dt);
        // The loss differentiates the mean over its own rows; the model's loss is the mean over all n.
        _loss.Backward(lossScale * rows / n, dLogits);
        var xf = _ws.Get("g.final", new Shape(rows, cb), dt);
        var dFinal = _ws.Get("d.g.final", xf.Shape, dt);
        _head.Backward(xf, dLogits, Parameters.Param(_headName), Parameters.Grad(_headName), dFinal);
        var dx = _ws.Get("d.g.residual", xf.Shape, dt);
        _finalNorm.Backward(dFinal, Residual(_blocks.Length, rows, cb, dt), Parameters.Param(FinalNorm),
            _ws.Get("g.final.mean", new Shape(rows), dt), _ws.Get("g.final.rstd", new Shape(rows), dt), dx,
            Parameters.Grad(FinalNorm), _gpt ? Parameters.Grad("transformer.ln_f.bias") : null);
        for (int l = _blocks.Length - 1; l >= 0; l--)
        {
            _blocks[l].Backward(dx);
        }
        if (_gpt)
        {
            // Positions: this rank's rows summed per position, then over the ranks holding other rows of these features.
            var dPositions = _ws.Get("d.g.pos", new Shape(_time, cb), dt);
            ops.Fill(dPositions, 0);
            ops.IndexAdd(dx, 0, _ws.Positions(local, _time), dPositions);
            foreach (var group in _grid.ResidualReplicaGroups)
            {
                AllReduce(group, dPositions);
            }
            var grad = Parameters.Grad("transformer.wpe.weight").View(0, dPositions.Shape);
            ops.Binary(BinaryOp.Add, grad, dPositions, grad);
        }
        var (first, count) = _grid.EmbeddingIds(n);
        var ids = _ids!.View(first, new Shape(count));
        if (_grid.TableReplicaGroup is { } depth)
        {
            // 2.5D: the table is replicated over the layers, each looked up its own rows: sum this step's gradient over them.
            var table = Parameters.Grad(_table);
            var dTable = _ws.Get("d.g.table", table.Shape, dt);
            ops.Fill(dTable, 0);
            _embedding.Backward(ids, dx, dTable);
            AllReduce(depth, dTable);
            ops.Binary(BinaryOp.Add, table, dTable, table);
        }
        else
        {
            _embedding.Backward(ids, dx, Parameters.Grad(_table));
        }
    }

    /// <summary>Every full tensor (Hugging Face shape) of the parameters (or, with <paramref name="gradients"/>, their gradients), gathered on every rank. Collective.</summary>
    public Dictionary<string, Tensor> GatherFull(bool gradients)
    {
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        for (int i = 0; i < Layout.Count; i++)
        {
            var full = Ops.Empty(Layout[i].FullShape, Parameters.DType);
            GridParameterLayout.Gather(Ops, Layout[i], Geometry, _grid.Tp, gradients ? Parameters.Grad(i) : Parameters.Param(i), full);
            result.Add(Layout[i].Name, full);
        }
        return result;
    }

    /// <summary>Frees the grid layers, the grid's groups, the workspace and the parameters.</summary>
    public void Dispose()
    {
        foreach (var b in _blocks)
        {
            b.Dispose();
        }
        _finalNorm.Dispose();
        _embedding.Dispose();
        _head.Owner.Dispose();
        _loss.Dispose();
        _rotary?.Dispose();
        _ws.Dispose();
        _grid.Dispose();
        Parameters.Dispose();
    }

    /// <summary>Vp/f: the vocabulary columns of this rank's logits block, padding included.</summary>
    private int LogitColumns => Geometry.PaddedVocabSize(Config.VocabSize) / Geometry.FeatureBlocks;

    private string FinalNorm => _gpt ? "transformer.ln_f.weight" : "model.norm.weight";

    private Tensor Residual(int index, int rows, int cb, DType dt) => _ws.Get($"g.residual{index}", new Shape(rows, cb), dt, saved: true);

    private void AllReduce(ICommunicator group, Tensor t)
    {
        if (group.Size == 1)
        {
            return;
        }
        group.AllReduce(t, t, ReduceOp.Sum);
        _ownBytes += 2 * (group.Size - 1) * t.SizeInBytes / group.Size;
    }
}
