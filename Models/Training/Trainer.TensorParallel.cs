using Hal.Models.Checkpoints;
using Hal.Models.Nn;
using Hal.Models.Optim;
using Hal.Models.Transformer;
using Hal.Parallel;

namespace Hal.Models.Training;

// Legend: p tp ranks; a full tensor has the single-device (Hugging Face) shape, a local one this rank's shard shape.

public static partial class Trainer
{
    /// <summary>
    /// An optimizer over this rank's shards whose clipping norm is the full gradient's: the sum of squares is summed
    /// over the tp group, with replicated parameters (identical on every tp rank) weighted 1/p so they count once.
    /// </summary>
    private static Optimizer TensorParallelOptimizer(Ops ops, ModelConfig model, ParameterStore store, OptimizerOptions options, ICommunicator tpGroup)
    {
        double replicated = 1.0 / tpGroup.Size;
        var weights = store.Infos
            .Select(info => TensorParallelLayout.SpecOf(model, info.Name).Split == TensorParallelSplit.Replicated ? replicated : 1.0)
            .ToArray();
        return new Optimizer(ops, store, options, null, v => DataParallel.SumScalar(tpGroup, ops, v), weights);
    }

    /// <summary>Parameters one rank holds: its shards (vocabulary padding included) and the replicated tensors; the whole model at tp 1 or when tp cannot split it.</summary>
    private static long LocalParameterCount(ModelConfig model, int tp)
    {
        if (tp <= 1 || TensorParallelLayout.Problem(model, tp) is not null)
        {
            return model.ParameterCount;
        }
        using var local = new ParameterStore();
        TensorParallelLayout.DeclareShards(local, model, tp).Dispose();
        return local.Count;
    }

    /// <summary>--init under tp: every rank reads the whole Hugging Face weights into full temporaries and keeps its shards.</summary>
    private static void LoadShardsOfWeights(string dir, ModelConfig model, ParameterStore store, Ops ops, ICommunicator tpGroup)
    {
        using var full = new ParameterStore();
        TransformerModel.DeclareParameters(full, model);
        full.Allocate(ops, store.DType);
        HuggingFace.LoadWeights(dir, full, ops);
        for (int i = 0; i < store.Infos.Count; i++)
        {
            var spec = TensorParallelLayout.SpecOf(model, store.Infos[i].Name);
            TensorParallelLayout.Split(ops, spec, full.Param(i), store.Param(i), tpGroup.Rank, tpGroup.Size);
        }
    }
}
