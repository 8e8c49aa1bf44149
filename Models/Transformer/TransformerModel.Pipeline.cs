using Hal.Models.Nn;
using Hal.Parallel.TensorParallel;

namespace Hal.Models.Transformer;

// One pipeline stage of the model: declaration of the stage's parameters, their initialisation, and forward/backward
// of one local chunk on one micro-batch with several micro-batches in flight.
// Legend: B rows of a micro-batch, T its (local) sequence length, C channels, N = B·T; chunk = local chunk index.

public sealed partial class TransformerModel
{
    private readonly ParameterStore? _stageDeclaration;
    private readonly List<StageSlot>[]? _stageSlots;
    private readonly Dictionary<(int Chunk, int Micro), ChunkRun> _inFlight = [];
    private readonly Dictionary<int, double> _stageLosses = [];
    private readonly Dictionary<int, Stack<StageSlot>> _freeSlots = [];

    /// <summary>
    /// The modules of one local chunk over their own workspace. Modules keep references to what their forward saved,
    /// so each micro-batch in flight needs its own set: a slot is taken by a chunk's forward and returned by its
    /// backward, and slots are kept for the next step (peak memory: the most micro-batches ever in flight per chunk).
    /// </summary>
    private sealed class StageSlot(Workspace ws, Embedding? embedding, Block[] blocks, INorm? finalNorm, LmHead? head, SequenceParallelContext? sp) : IDisposable
    {
        public Workspace Ws { get; } = ws;

        public Embedding? Embedding { get; } = embedding;

        public Block[] Blocks { get; } = blocks;

        public INorm? FinalNorm { get; } = finalNorm;

        public LmHead? Head { get; } = head;

        public void Dispose()
        {
            sp?.Dispose();
            Ws.Dispose();
        }
    }

    /// <summary>A chunk's forward on a micro-batch whose backward has not run: its slot, its input and every block's input.</summary>
    private sealed record ChunkRun(StageSlot Slot, Tensor? Input, Tensor[] BlockInputs, int Batch, int Time);

    /// <summary>The pipeline stage this model is (null: the whole model).</summary>
    public PipelineStage? Stage => Options.Stage;

    /// <summary>Micro-batches whose forward has run on some chunk of this stage and whose backward there has not.</summary>
    public int MicroBatchesInFlight => _inFlight.Count;

    /// <summary>
    /// Runs local chunk <paramref name="chunk"/> of this stage forward on micro-batch <paramref name="micro"/> and keeps
    /// what its backward needs. Model chunk 0 reads <paramref name="ids"/> [B, T] (I32) and embeds them; any other
    /// chunk reads <paramref name="input"/> [B, T, C] (it becomes the model's until the backward, which disposes it).
    /// Returns the chunk's output [B, T, C] as a new tensor the caller disposes, or null for the last model chunk,
    /// which computes the loss against <paramref name="targets"/> [B, T]: its mean over the micro-batch's tokens (under
    /// sp over the whole sequences, collective over the sp group) is then <see cref="StageLoss"/>.
    /// </summary>
    /// <exception cref="InvalidOperationException">the model is not a stage, or the chunk already holds this micro-batch.</exception>
    /// <exception cref="ArgumentException">a missing or misshaped input.</exception>
    public Tensor? StageForward(int chunk, int micro, Tensor? input, Tensor? ids, Tensor? targets)
    {
        var stage = Options.Stage ?? throw new InvalidOperationException("StageForward needs a model built with TransformerOptions.Stage");
        if (_inFlight.ContainsKey((chunk, micro)))
        {
            throw new InvalidOperationException($"local chunk {chunk} already holds micro-batch {micro}: run its backward first");
        }
        bool first = stage.IsFirstChunk(chunk), last = stage.IsLastChunk(chunk);
        int c = Config.Channels;
        if (first)
        {
            CheckIds(ids!, nameof(ids));
        }
        else
        {
            ArgumentNullException.ThrowIfNull(input);
            if (input.Rank != 3 || input.Shape[2] != c || input.DType != Options.ComputeDType)
            {
                throw new ArgumentException($"chunk input must be {Options.ComputeDType} [B, T, {c}], not {input.DType} {input.Shape}", nameof(input));
            }
            _batch = input.Shape[0];
            _time = input.Shape[1];
        }
        int b = _batch, t = _time, n = b * t;
        if (last && (targets is null || targets.Shape != new Shape(b, t) || !targets.DType.IsIndex()))
        {
            throw new ArgumentException($"the last chunk needs I32/I64 targets [{b}, {t}]", nameof(targets));
        }
        var dtype = Options.ComputeDType;
        var slot = RentSlot(chunk);
        var ws = slot.Ws;
        ws.ResetSaved();
        var (start, count) = stage.BlocksOf(chunk);
        var blockInputs = new Tensor[count];
        Tensor? output = null;
        try
        {
            Tensor x;
            if (first)
            {
                var savedIds = ws.Get("ids", ids!.Shape, ids.DType, saved: true);
                Ops.Copy(ids, savedIds);
                x = ws.Get("residual.start", new Shape(b, t, c), dtype, saved: true);
                slot.Embedding!.Forward(savedIds, x);
            }
            else
            {
                x = input!;
            }
            for (int j = 0; j < count; j++)
            {
                blockInputs[j] = x;
                // The chunk's last block writes straight into the tensor that is sent on (not kept: backward needs only block inputs).
                var y = j < count - 1 ? ws.Get($"residual.{start + j + 1}", new Shape(b, t, c), dtype, saved: true)
                    : last ? ws.Get("residual.end", new Shape(b, t, c), dtype, saved: true)
                    : output = Ops.Empty(new Shape(b, t, c), dtype);
                slot.Blocks[j].Forward(x, y);
                x = y;
            }
            if (last)
            {
                var savedTargets = ws.Get("targets", new Shape(n), targets!.DType, saved: true);
                Ops.Copy(targets.Reshape(n), savedTargets);
                var xf = ws.Get("final.out", new Shape(n, c), dtype, saved: true);
                slot.FinalNorm!.Forward(x.Reshape(n, c), xf);
                var losses = slot.Head!.Forward(xf, savedTargets);
                double sum = Ops.ToDoubleArray(losses).Sum();
                _stageLosses[micro] = _sequenceParallel is { } sp ? sp.Sum(sum) / ((double)n * sp.Size) : sum / n;
            }
        }
        catch
        {
            output?.Dispose();
            ReturnSlot(chunk, slot);
            throw;
        }
        _savedBytes = ws.SavedBytes;
        _inFlight.Add((chunk, micro), new ChunkRun(slot, input, blockInputs, b, t));
        return output;
    }

    /// <summary>The loss of micro-batch <paramref name="micro"/> computed by the last model chunk's forward on this stage.</summary>
    /// <exception cref="KeyNotFoundException">this stage has not computed it.</exception>
    public double StageLoss(int micro) => _stageLosses[micro];

    /// <summary>
    /// Runs local chunk <paramref name="chunk"/>'s backward on micro-batch <paramref name="micro"/>, adding
    /// d(lossScale · loss)/dθ of its layers into <see cref="ParameterStore.Grads"/> (the loss being that micro-batch's
    /// mean). The last model chunk differentiates its loss (<paramref name="outputGradient"/> null); any other chunk
    /// takes d(output) [B, T, C] (the model's from then on). Returns d(input) [B, T, C] for the caller to dispose, or
    /// null for model chunk 0. Frees the micro-batch's saved activations of this chunk for the next one.
    /// </summary>
    /// <exception cref="InvalidOperationException">no forward of this micro-batch on this chunk is pending.</exception>
    public Tensor? StageBackward(int chunk, int micro, Tensor? outputGradient, double lossScale)
    {
        var stage = Options.Stage ?? throw new InvalidOperationException("StageBackward needs a model built with TransformerOptions.Stage");
        if (!_inFlight.Remove((chunk, micro), out var run))
        {
            throw new InvalidOperationException($"local chunk {chunk} has no forward of micro-batch {micro} to differentiate");
        }
        bool first = stage.IsFirstChunk(chunk), last = stage.IsLastChunk(chunk);
        var slot = run.Slot;
        var ws = slot.Ws;
        int b = run.Batch, t = run.Time, c = Config.Channels, n = b * t;
        var dtype = Options.ComputeDType;
        Tensor? dResidual = null;
        bool ownsResidual = false;
        try
        {
            if (last)
            {
                var dFinal = ws.Get("d.final", new Shape(n, c), dtype);
                // The head differentiates the mean over its N rows; under sp the loss is the mean over sp·N rows.
                slot.Head!.Backward(lossScale / (_sequenceParallel?.Size ?? 1), dFinal);
                dResidual = first ? ws.Get("d.residual", new Shape(b, t, c), dtype) : Ops.Empty(new Shape(b, t, c), dtype);
                ownsResidual = !first;
                slot.FinalNorm!.Backward(dFinal, dResidual.Reshape(n, c), accumulate: false);
            }
            else
            {
                ArgumentNullException.ThrowIfNull(outputGradient);
                dResidual = outputGradient;
                ownsResidual = true;
            }
            int count = run.BlockInputs.Length;
            for (int j = count - 1; j >= 0; j--)
            {
                // The shared block buffers still hold the chunk's last block's forward, so only earlier blocks recompute.
                if (Options.CheckpointActivations && j < count - 1)
                {
                    slot.Blocks[j].Forward(run.BlockInputs[j], ws.Get("recompute.out", new Shape(b, t, c), dtype));
                }
                slot.Blocks[j].Backward(dResidual);
            }
            if (first)
            {
                slot.Embedding!.Backward(dResidual);
                if (ownsResidual)
                {
                    dResidual.Dispose();
                }
                return null;
            }
            ownsResidual = false;
            return dResidual;
        }
        finally
        {
            if (ownsResidual)
            {
                dResidual?.Dispose();
            }
            run.Input?.Dispose();
            _stageLosses.Remove(micro);
            ReturnSlot(chunk, slot);
        }
    }

    /// <summary>Forgets every pending forward (after a failed step), freeing the inputs it kept.</summary>
    public void ResetStage()
    {
        foreach (var ((chunk, _), run) in _inFlight)
        {
            run.Input?.Dispose();
            ReturnSlot(chunk, run.Slot);
        }
        _inFlight.Clear();
        _stageLosses.Clear();
    }

    private StageSlot RentSlot(int chunk)
    {
        if (_freeSlots.TryGetValue(chunk, out var free) && free.Count > 0)
        {
            return free.Pop();
        }
        var slot = BuildSlot(chunk);
        _stageSlots![chunk].Add(slot);
        return slot;
    }

    private void ReturnSlot(int chunk, StageSlot slot)
    {
        if (!_freeSlots.TryGetValue(chunk, out var free))
        {
            _freeSlots[chunk] = free = new Stack<StageSlot>();
        }
        free.Push(slot);
    }

    /// <summary>The modules of local chunk <paramref name="chunk"/> over a new workspace.</summary>
    private StageSlot BuildSlot(int chunk)
    {
        var stage = Options.Stage!;
        var ws = new Workspace(Ops);
        SequenceParallelContext? sp = null;
        try
        {
            var tp = Options.TensorParallel is { } tpGroup ? new TensorParallelContext(ws, tpGroup) : null;
            sp = Options.SequenceParallel is { } spOptions ? new SequenceParallelContext(ws, spOptions) : null;
            var (start, count) = stage.BlocksOf(chunk);
            var blocks = new Block[count];
            for (int j = 0; j < count; j++)
            {
                int i = start + j;
                blocks[j] = BuildBlock(ws, tp, sp, i, Options.CheckpointActivations ? "block" : $"block{i}");
            }
            bool last = stage.IsLastChunk(chunk);
            return new StageSlot(ws, stage.IsFirstChunk(chunk) ? BuildEmbedding(ws, tp, sp) : null, blocks,
                last ? BuildFinalNorm(ws) : null, last ? BuildHead(ws, tp) : null, sp);
        }
        catch
        {
            sp?.Dispose();
            ws.Dispose();
            throw;
        }
    }

    private void DisposeStageSlots()
    {
        if (_stageSlots is null)
        {
            return;
        }
        foreach (var run in _inFlight.Values)
        {
            run.Input?.Dispose();
        }
        _inFlight.Clear();
        foreach (var slot in _stageSlots.SelectMany(s => s))
        {
            slot.Dispose();
        }
        _stageDeclaration?.Dispose();
    }

    private void ThrowIfStaged()
    {
        if (Options.Stage is not null)
        {
            throw new InvalidOperationException("a pipeline-stage model runs chunk by chunk: use StageForward and StageBackward");
        }
    }

    /// <summary>
    /// Declares the parameters of <paramref name="stage"/>'s layers (under tp their shards) in forward order, plus a
    /// copy of the tied token matrix on a head stage that does not hold the embedding. Returns the whole model's
    /// declaration (full shapes: its offsets seed the initialisation, so every layout draws the same weights).
    /// </summary>
    private static ParameterStore DeclareStage(ParameterStore store, ModelConfig config, PipelineStage stage, int tp)
    {
        var full = new ParameterStore();
        using var shards = tp > 1 ? new ParameterStore() : null;
        if (shards is not null)
        {
            full.Dispose();
            full = TensorParallelLayout.DeclareShards(shards, config, tp);
        }
        else
        {
            DeclareParameters(full, config);
        }
        var declared = shards ?? full;
        foreach (var info in declared.Infos)
        {
            if (stage.HoldsLayer(info.Layer))
            {
                store.Declare(info.Name, info.Shape, info.Layer, info.Decay);
            }
        }
        if (TiedTokenName(config) is { } token && stage.HoldsHead && !stage.HoldsEmbedding)
        {
            var info = declared.Info(token);
            store.Declare(info.Name, info.Shape, config.Layers + 1, info.Decay);
        }
        return full;
    }

    /// <summary>The token matrix the head shares (GPT-2, or LLaMA with tied embeddings); null when the head has its own.</summary>
    public static string? TiedTokenName(ModelConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        return config.Family == ModelFamily.Gpt2 ? "transformer.wte.weight" : config.TieEmbeddings ? "model.embed_tokens.weight" : null;
    }

    /// <summary>Each stage parameter (or tp shard) is cut from the tensor the single-device model draws, by its full declaration's offset.</summary>
    private void InitializeStage(ulong seed)
    {
        var full = _stageDeclaration!;
        for (int i = 0; i < Parameters.Infos.Count; i++)
        {
            var info = full.Info(Parameters.Infos[i].Name);
            var spec = _tensorParallel is null ? null : TensorParallelLayout.SpecOf(Config, info.Name);
            if (spec is null || spec.Split == TensorParallelSplit.Replicated)
            {
                InitializeParameter(info, Parameters.Param(i), seed, 0);
                continue;
            }
            using var whole = Ops.Empty(info.Shape, Options.ComputeDType);
            InitializeParameter(info, whole, seed, 0);
            TensorParallelLayout.Split(Ops, spec, whole, Parameters.Param(i), _tensorParallel!.Rank, _tensorParallel.Size);
        }
    }
}
