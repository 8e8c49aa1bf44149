using Hal.Models.Nn;
using Hal.Parallel.TensorParallel;

namespace Hal.Models.Transformer;

// Parameter declaration (Hugging Face names and layouts, forward order), module wiring and initialisation.
// Legend: L layers, H heads, Hkv key/value heads, C channels, D head size, F hidden, V vocabulary, T context.
public sealed partial class TransformerModel
{
    /// <summary>
    /// GPT-2 init from Philox: weights N(0, 0.02), residual output projections (attn c_proj, mlp c_proj, o_proj,
    /// down_proj) N(0, 0.02/√(2L)), biases 0, norm weights 1. Each parameter draws from Philox offset = its slab
    /// offset, so one seed gives the same weights on every backend. Gradients are left as they are.
    /// </summary>
    public void Initialize(ulong seed)
    {
        if (Options.Stage is not null)
        {
            InitializeStage(seed);
            return;
        }
        if (_backing is not null)
        {
            // The backing hands out each parameter, or each row tile of one, with its element offset inside it.
            _backing.Initialize((info, piece, elementOffset) => InitializeParameter(info, piece, seed, elementOffset));
            return;
        }
        if (_fullDeclaration is not null)
        {
            InitializeShards(_fullDeclaration, seed);
            return;
        }
        for (int i = 0; i < Parameters.Infos.Count; i++)
        {
            InitializeParameter(Parameters.Infos[i], Parameters.Param(i), seed, 0);
        }
    }

    /// <summary>
    /// Tensor parallel: each shard is cut from the full tensor the single-device model draws (same Philox offsets,
    /// those of the full declaration), so every layout starts from the same weights. One full tensor at a time.
    /// </summary>
    private void InitializeShards(ParameterStore full, ulong seed)
    {
        var tp = _tensorParallel!;
        for (int i = 0; i < Parameters.Infos.Count; i++)
        {
            var info = full.Infos[i];
            var spec = TensorParallelLayout.SpecOf(Config, info.Name);
            if (spec.Split == TensorParallelSplit.Replicated)
            {
                InitializeParameter(info, Parameters.Param(i), seed, 0);
                continue;
            }
            using var whole = Ops.Empty(info.Shape, Options.ComputeDType);
            InitializeParameter(info, whole, seed, 0);
            TensorParallelLayout.Split(Ops, spec, whole, Parameters.Param(i), tp.Rank, tp.Size);
        }
    }

    private void InitializeParameter(ParameterInfo info, Tensor p, ulong seed, long elementOffset) => InitializeParameter(Ops, Config, info, p, seed, elementOffset);

    /// <summary>Draws one full parameter (or the piece of it at <paramref name="elementOffset"/>) as <see cref="Initialize"/> does; grid layouts cut their blocks from it.</summary>
    internal static void InitializeParameter(Ops ops, ModelConfig config, ParameterInfo info, Tensor p, ulong seed, long elementOffset)
    {
        double residualStd = 0.02 / Math.Sqrt(2.0 * config.Layers);
        if (info.Name.EndsWith(".bias", StringComparison.Ordinal))
        {
            ops.Fill(p, 0);
        }
        else if (info.Shape.Rank == 1)
        {
            ops.Fill(p, 1);
        }
        else
        {
            ops.RandomNormal(p, seed, (ulong)(info.Offset + elementOffset), 0, IsResidualProjection(info.Name) ? residualStd : 0.02);
        }
    }

    /// <summary>The [V, C] vocabulary matrices (token embedding, untied LM head): a chunked backing reaches them by row tiles.</summary>
    public static IReadOnlyList<string> VocabularyParameters(ModelConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        if (config.Family == ModelFamily.Gpt2)
        {
            return ["transformer.wte.weight"];
        }
        return config.TieEmbeddings ? ["model.embed_tokens.weight"] : ["model.embed_tokens.weight", "lm_head.weight"];
    }

    /// <summary>Parameters used by more layers than their own: a tied token embedding is also the LM head (layer L+1).</summary>
    public static IReadOnlyDictionary<string, int[]> SharedParameters(ModelConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        var shared = new Dictionary<string, int[]>(StringComparer.Ordinal);
        if (config.Family == ModelFamily.Gpt2)
        {
            shared["transformer.wte.weight"] = [config.Layers + 1];
        }
        else if (config.TieEmbeddings)
        {
            shared["model.embed_tokens.weight"] = [config.Layers + 1];
        }
        return shared;
    }

    private (TiledEmbedding?, TiledLmHead?) BuildTiledModules(IParameterBacking backing)
    {
        var store = Parameters;
        var cfg = Config;
        string token = cfg.Family == ModelFamily.Gpt2 ? "transformer.wte.weight" : "model.embed_tokens.weight";
        string? positions = cfg.Family == ModelFamily.Gpt2 ? "transformer.wpe.weight" : null;
        string head = cfg.Family == ModelFamily.Gpt2 || cfg.TieEmbeddings ? token : "lm_head.weight";
        var tokenTiles = backing.RowTiles(store.IndexOf(token));
        var headTiles = backing.RowTiles(store.IndexOf(head));
        return (tokenTiles is null ? null : new TiledEmbedding(_ws, store, tokenTiles, positions),
            headTiles is null ? null : new TiledLmHead(_ws, headTiles));
    }

    private static bool IsResidualProjection(string name) =>
        name.EndsWith(".attn.c_proj.weight", StringComparison.Ordinal)
        || name.EndsWith(".mlp.c_proj.weight", StringComparison.Ordinal)
        || name.EndsWith(".self_attn.o_proj.weight", StringComparison.Ordinal)
        || name.EndsWith(".mlp.down_proj.weight", StringComparison.Ordinal);

    /// <summary>Declares every parameter of <paramref name="config"/> in forward order under its Hugging Face name.</summary>
    public static void DeclareParameters(ParameterStore store, ModelConfig config)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(config);
        int c = config.Channels, f = config.Hidden, v = config.VocabSize, layers = config.Layers;
        if (config.Family == ModelFamily.Gpt2)
        {
            store.Declare("transformer.wte.weight", new Shape(v, c), 0);
            store.Declare("transformer.wpe.weight", new Shape(config.ContextLength, c), 0);
            for (int i = 0; i < layers; i++)
            {
                string p = $"transformer.h.{i}.";
                int layer = i + 1;
                store.Declare(p + "ln_1.weight", new Shape(c), layer);
                store.Declare(p + "ln_1.bias", new Shape(c), layer);
                store.Declare(p + "attn.c_attn.weight", new Shape(c, 3 * c), layer);
                store.Declare(p + "attn.c_attn.bias", new Shape(3 * c), layer);
                store.Declare(p + "attn.c_proj.weight", new Shape(c, c), layer);
                store.Declare(p + "attn.c_proj.bias", new Shape(c), layer);
                store.Declare(p + "ln_2.weight", new Shape(c), layer);
                store.Declare(p + "ln_2.bias", new Shape(c), layer);
                store.Declare(p + "mlp.c_fc.weight", new Shape(c, f), layer);
                store.Declare(p + "mlp.c_fc.bias", new Shape(f), layer);
                store.Declare(p + "mlp.c_proj.weight", new Shape(f, c), layer);
                store.Declare(p + "mlp.c_proj.bias", new Shape(c), layer);
            }
            store.Declare("transformer.ln_f.weight", new Shape(c), layers + 1);
            store.Declare("transformer.ln_f.bias", new Shape(c), layers + 1);
            return;
        }
        int qDim = config.Heads * config.HeadSize, kvDim = config.KvHeads * config.HeadSize;
        store.Declare("model.embed_tokens.weight", new Shape(v, c), 0);
        for (int i = 0; i < layers; i++)
        {
            string p = $"model.layers.{i}.";
            int layer = i + 1;
            store.Declare(p + "input_layernorm.weight", new Shape(c), layer);
            // q, k and v are declared back to back: the attention runs them as one [(H + 2·Hkv)·D, C] GEMM.
            store.Declare(p + "self_attn.q_proj.weight", new Shape(qDim, c), layer);
            store.Declare(p + "self_attn.k_proj.weight", new Shape(kvDim, c), layer);
            store.Declare(p + "self_attn.v_proj.weight", new Shape(kvDim, c), layer);
            store.Declare(p + "self_attn.o_proj.weight", new Shape(c, qDim), layer);
            store.Declare(p + "post_attention_layernorm.weight", new Shape(c), layer);
            store.Declare(p + "mlp.gate_proj.weight", new Shape(f, c), layer);
            store.Declare(p + "mlp.up_proj.weight", new Shape(f, c), layer);
            store.Declare(p + "mlp.down_proj.weight", new Shape(c, f), layer);
        }
        store.Declare("model.norm.weight", new Shape(c), layers + 1);
        if (!config.TieEmbeddings)
        {
            store.Declare("lm_head.weight", new Shape(v, c), layers + 1);
        }
    }

    private (Embedding, Block[], INorm, LmHead) BuildModules()
    {
        var blocks = new Block[Config.Layers];
        for (int i = 0; i < Config.Layers; i++)
        {
            // With checkpointing every block writes its internals into one shared set of buffers.
            blocks[i] = BuildBlock(_ws, _tensorParallel, _sequenceParallel, i, Options.CheckpointActivations ? "block" : $"block{i}");
        }
        return (BuildEmbedding(_ws, _tensorParallel, _sequenceParallel), blocks, BuildFinalNorm(_ws), BuildHead(_ws, _tensorParallel));
    }

    /// <summary>Block <paramref name="i"/> over <paramref name="ws"/>; <paramref name="scope"/> names its buffers.</summary>
    private Block BuildBlock(Workspace ws, TensorParallelContext? tp, SequenceParallelContext? sp, int i, string scope)
    {
        var store = Parameters;
        var cfg = Config;
        int tpSize = tp?.Size ?? 1;
        // Sequence-parallel regions: the output projections leave their reduction to the block, norms sum their gradients.
        bool deferReduction = Options.SequenceParallelRegions;
        var normSum = Options.SequenceParallelRegions ? tp : null;
        // A tensor-parallel rank runs its own heads: H/p query heads and Hkv/p key/value heads.
        int heads = cfg.Heads / tpSize, kvHeads = cfg.KvHeads / tpSize;
        if (cfg.Family == ModelFamily.Gpt2)
        {
            string p = $"transformer.h.{i}.";
            var attention = new CausalSelfAttention(ws,
                new Linear(store, p + "attn.c_attn.weight", p + "attn.c_attn.bias", LinearLayout.InOut),
                new Linear(store, p + "attn.c_proj.weight", p + "attn.c_proj.bias", LinearLayout.InOut) { RowParallel = tp, DeferReduction = deferReduction },
                heads, heads, cfg.HeadSize, null, scope + ".attn", sp);
            var mlp = new GeluMlp(ws,
                new Linear(store, p + "mlp.c_fc.weight", p + "mlp.c_fc.bias", LinearLayout.InOut),
                new Linear(store, p + "mlp.c_proj.weight", p + "mlp.c_proj.bias", LinearLayout.InOut) { RowParallel = tp, DeferReduction = deferReduction },
                scope + ".mlp");
            return new Block(ws,
                new Nn.LayerNorm(ws, store, p + "ln_1.weight", p + "ln_1.bias", cfg.NormEps, scope + ".ln1") { SumGradientsOver = normSum },
                attention,
                new Nn.LayerNorm(ws, store, p + "ln_2.weight", p + "ln_2.bias", cfg.NormEps, scope + ".ln2") { SumGradientsOver = normSum },
                mlp, scope, tp);
        }
        string q = $"model.layers.{i}.";
        var llamaAttention = new CausalSelfAttention(ws,
            new Linear(store, [q + "self_attn.q_proj.weight", q + "self_attn.k_proj.weight", q + "self_attn.v_proj.weight"], null, LinearLayout.OutIn),
            new Linear(store, q + "self_attn.o_proj.weight", null, LinearLayout.OutIn) { RowParallel = tp, DeferReduction = deferReduction },
            heads, kvHeads, cfg.HeadSize, _rotary, scope + ".attn", sp);
        var swiGlu = new SwiGluMlp(ws,
            new Linear(store, q + "mlp.gate_proj.weight", null, LinearLayout.OutIn),
            new Linear(store, q + "mlp.up_proj.weight", null, LinearLayout.OutIn),
            new Linear(store, q + "mlp.down_proj.weight", null, LinearLayout.OutIn) { RowParallel = tp, DeferReduction = deferReduction },
            scope + ".mlp");
        return new Block(ws,
            new Nn.RmsNorm(ws, store, q + "input_layernorm.weight", cfg.NormEps, scope + ".ln1") { SumGradientsOver = normSum },
            llamaAttention,
            new Nn.RmsNorm(ws, store, q + "post_attention_layernorm.weight", cfg.NormEps, scope + ".ln2") { SumGradientsOver = normSum },
            swiGlu, scope, tp);
    }

    private string TokenName => Config.Family == ModelFamily.Gpt2 ? "transformer.wte.weight" : "model.embed_tokens.weight";

    private string HeadName => Config.Family == ModelFamily.Gpt2 || Config.TieEmbeddings ? TokenName : "lm_head.weight";

    /// <summary>The token (and GPT-2 position) embedding over <paramref name="ws"/>; under tp its vocabulary-parallel lookup.</summary>
    private Embedding BuildEmbedding(Workspace ws, TensorParallelContext? tp, SequenceParallelContext? sp)
    {
        string? positions = Config.Family == ModelFamily.Gpt2 ? "transformer.wpe.weight" : null;
        if (tp is null)
        {
            return new Embedding(ws, Parameters, TokenName, positions, null, sp);
        }
        var vocabEmbedding = new VocabParallelEmbedding(Ops, tp.Group, Config.VocabSize);
        _tensorParallelModules.Add(vocabEmbedding);
        // Under sp too, each rank's tokens add the position rows of their global positions.
        return new Embedding(ws, Parameters, TokenName, positions, vocabEmbedding, sp);
    }

    /// <summary>The final norm over <paramref name="ws"/>; under split-gather its gradients are summed over the tp ranks.</summary>
    private INorm BuildFinalNorm(Workspace ws)
    {
        var normSum = Options.SequenceParallelRegions ? _tensorParallel : null;
        return Config.Family == ModelFamily.Gpt2
            ? new Nn.LayerNorm(ws, Parameters, "transformer.ln_f.weight", "transformer.ln_f.bias", Config.NormEps, "final") { SumGradientsOver = normSum }
            : new Nn.RmsNorm(ws, Parameters, "model.norm.weight", Config.NormEps, "final") { SumGradientsOver = normSum };
    }

    /// <summary>The LM head with its loss over <paramref name="ws"/>; under tp over this rank's vocabulary rows.</summary>
    private LmHead BuildHead(Workspace ws, TensorParallelContext? tp)
    {
        if (tp is null)
        {
            return new LmHead(ws, Parameters, HeadName);
        }
        var vocabLoss = new VocabParallelCrossEntropy(Ops, tp.Group, Config.VocabSize);
        _tensorParallelModules.Add(vocabLoss);
        return new LmHead(ws, Parameters, HeadName, vocabLoss, tp) { InputGradientPartial = Options.SequenceParallelRegions };
    }
}
