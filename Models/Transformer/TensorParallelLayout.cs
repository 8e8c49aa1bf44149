using Hal.Models.Nn;
using Hal.Parallel.TensorParallel;

namespace Hal.Models.Transformer;

// Legend: p tp ranks, r this rank, C channels, H heads, Hkv key/value heads, D head size, F hidden, V vocabulary,
// Vl = ⌈V/p⌉ vocabulary rows per rank.

/// <summary>How one parameter is split over the tensor-parallel ranks.</summary>
public enum TensorParallelSplit
{
    /// <summary>Whole on every rank (norms, position table, row-parallel biases).</summary>
    Replicated,

    /// <summary>Output features split (column-parallel linear: GPT-2 c_attn and c_fc, LLaMA q/k/v, gate and up).</summary>
    Output,

    /// <summary>Input features split (row-parallel linear: the output projections c_proj, o_proj, down_proj).</summary>
    Input,

    /// <summary>Vocabulary rows split, padded to a multiple of p (token embedding and LM head).</summary>
    Vocabulary,
}

/// <summary>The split of one parameter: which features, the weight layout, and how many segments (c_attn's q | k | v).</summary>
/// <param name="Split">Which axis is split.</param>
/// <param name="Layout">The weight layout (GPT-2 Conv1D [in, out] or nn.Linear [out, in]).</param>
/// <param name="Segments">Blocks of the split axis sharded separately (3 for GPT-2's fused q | k | v), else 1.</param>
public sealed record TensorParallelSpec(TensorParallelSplit Split, WeightLayout Layout, int Segments = 1);

/// <summary>
/// The 1-D (Megatron) tensor-parallel layout of GPT-2 and LLaMA: every parameter keeps its Hugging Face name and each
/// rank declares its local shard shape under it. Attention is split by heads (q, k and v columns of a rank's heads,
/// then the output projection's matching input rows), the MLP by hidden units, the token embedding and LM head by
/// vocabulary rows; everything else is replicated. Converts between full tensors and shards for initialisation and
/// layout-independent checkpoints.
/// </summary>
public static class TensorParallelLayout
{
    private static readonly TensorParallelSpec ReplicatedSpec = new(TensorParallelSplit.Replicated, WeightLayout.InOut);

    /// <summary>The split of the parameter named <paramref name="name"/> in a model of <paramref name="config"/>.</summary>
    public static TensorParallelSpec SpecOf(ModelConfig config, string name)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(name);
        if (config.Family == ModelFamily.Gpt2)
        {
            if (name == "transformer.wte.weight")
            {
                return new(TensorParallelSplit.Vocabulary, WeightLayout.OutIn);
            }
            if (name.EndsWith(".attn.c_attn.weight", StringComparison.Ordinal) || name.EndsWith(".attn.c_attn.bias", StringComparison.Ordinal))
            {
                return new(TensorParallelSplit.Output, WeightLayout.InOut, 3);
            }
            if (name.EndsWith(".mlp.c_fc.weight", StringComparison.Ordinal) || name.EndsWith(".mlp.c_fc.bias", StringComparison.Ordinal))
            {
                return new(TensorParallelSplit.Output, WeightLayout.InOut);
            }
            if (name.EndsWith(".attn.c_proj.weight", StringComparison.Ordinal) || name.EndsWith(".mlp.c_proj.weight", StringComparison.Ordinal))
            {
                return new(TensorParallelSplit.Input, WeightLayout.InOut);
            }
            return ReplicatedSpec;
        }
        if (name is "model.embed_tokens.weight" or "lm_head.weight")
        {
            return new(TensorParallelSplit.Vocabulary, WeightLayout.OutIn);
        }
        if (name.EndsWith(".self_attn.q_proj.weight", StringComparison.Ordinal) || name.EndsWith(".self_attn.k_proj.weight", StringComparison.Ordinal)
            || name.EndsWith(".self_attn.v_proj.weight", StringComparison.Ordinal) || name.EndsWith(".mlp.gate_proj.weight", StringComparison.Ordinal)
            || name.EndsWith(".mlp.up_proj.weight", StringComparison.Ordinal))
        {
            return new(TensorParallelSplit.Output, WeightLayout.OutIn);
        }
        if (name.EndsWith(".self_attn.o_proj.weight", StringComparison.Ordinal) || name.EndsWith(".mlp.down_proj.weight", StringComparison.Ordinal))
        {
            return new(TensorParallelSplit.Input, WeightLayout.OutIn);
        }
        return ReplicatedSpec;
    }

    /// <summary>Why <paramref name="config"/> cannot be split over <paramref name="tp"/> ranks; null when it can.</summary>
    public static string? Problem(ModelConfig config, int tp)
    {
        ArgumentNullException.ThrowIfNull(config);
        if (tp < 1)
        {
            return $"--tp {tp}: the number of tensor-parallel ranks must be at least 1";
        }
        if (config.Heads % tp != 0)
        {
            return $"--tp {tp}: model '{config.Name}' has {config.Heads} attention heads, not divisible by {tp}; tensor parallelism gives every rank whole heads, so choose a tp that divides {config.Heads}";
        }
        if (config.KvHeads % tp != 0)
        {
            return $"--tp {tp}: model '{config.Name}' has {config.KvHeads} key/value heads, not divisible by {tp}; choose a tp that divides {config.KvHeads}";
        }
        if (config.Hidden % tp != 0)
        {
            return $"--tp {tp}: model '{config.Name}''s MLP hidden size {config.Hidden} is not divisible by {tp}; choose a tp that divides it";
        }
        return null;
    }

    /// <summary>The shape every rank holds of a parameter whose full shape is <paramref name="full"/> (all shards are equal).</summary>
    public static Shape LocalShape(TensorParallelSpec spec, Shape full, int tp)
    {
        ArgumentNullException.ThrowIfNull(spec);
        ArgumentNullException.ThrowIfNull(full);
        return spec.Split switch
        {
            TensorParallelSplit.Replicated => full,
            TensorParallelSplit.Vocabulary => new Shape(new VocabShard(full[0], tp, 0).LocalRows, full[1]),
            TensorParallelSplit.Output => TensorParallelShards.ShardShape(full, spec.Layout, ShardedFeatures.Output, tp, spec.Segments),
            _ => TensorParallelShards.ShardShape(full, spec.Layout, ShardedFeatures.Input, tp, spec.Segments),
        };
    }

    /// <summary>shard = rank <paramref name="rank"/>'s part of the full tensor (a copy for a replicated parameter).</summary>
    public static void Split(Ops ops, TensorParallelSpec spec, Tensor full, Tensor shard, int rank, int tp)
    {
        ArgumentNullException.ThrowIfNull(ops);
        ArgumentNullException.ThrowIfNull(spec);
        switch (spec.Split)
        {
            case TensorParallelSplit.Replicated:
                ops.Copy(full, shard);
                break;
            case TensorParallelSplit.Vocabulary:
                TensorParallelShards.SplitVocab(ops, full, shard, rank, tp);
                break;
            default:
                TensorParallelShards.Split(ops, full, shard, spec.Layout, Features(spec), rank, tp, spec.Segments);
                break;
        }
    }

    /// <summary>full (on every rank of the group) = the ranks' shards put together. Collective over <paramref name="tpGroup"/> except for a replicated parameter.</summary>
    public static void Gather(Ops ops, ICommunicator tpGroup, TensorParallelSpec spec, Tensor shard, Tensor full)
    {
        ArgumentNullException.ThrowIfNull(ops);
        ArgumentNullException.ThrowIfNull(spec);
        switch (spec.Split)
        {
            case TensorParallelSplit.Replicated:
                ops.Copy(shard, full);
                break;
            case TensorParallelSplit.Vocabulary:
                TensorParallelShards.GatherVocab(ops, tpGroup, shard, full);
                break;
            default:
                TensorParallelShards.Gather(ops, tpGroup, shard, full, spec.Layout, Features(spec), spec.Segments);
                break;
        }
    }

    /// <summary>
    /// Declares the parameters of <paramref name="config"/> as rank-local shards over <paramref name="tp"/> ranks:
    /// the same names, order, layers and decay as <see cref="TransformerModel.DeclareParameters"/>, with local shapes.
    /// Returns the full (single-device) declaration, whose offsets are the Philox offsets of initialisation.
    /// </summary>
    public static ParameterStore DeclareShards(ParameterStore store, ModelConfig config, int tp)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(config);
        var full = new ParameterStore();
        TransformerModel.DeclareParameters(full, config);
        foreach (var info in full.Infos)
        {
            store.Declare(info.Name, LocalShape(SpecOf(config, info.Name), info.Shape, tp), info.Layer, info.Decay);
        }
        return full;
    }

    private static ShardedFeatures Features(TensorParallelSpec spec) =>
        spec.Split == TensorParallelSplit.Output ? ShardedFeatures.Output : ShardedFeatures.Input;
}
