using Hal.Models.Checkpoints;
using Hal.Models.Nn;
using Hal.Models.Optim;
using Hal.Models.Transformer;
using Hal.Parallel.Mesh;

namespace Hal.Models.Training;

// Checkpoints of the pipeline path in the one layout-independent format: whole tensors by Hugging Face name.
// Legend: p stages; a full tensor has the single-device shape, a local one this rank's (tp shard) shape.

public static partial class Trainer
{
    /// <summary>
    /// Writes a checkpoint from every stage (collective over the world): each stage's ZeRO shards are gathered over its
    /// replica group; the ranks at dp 0, sp 0 gather whole tensors over tp; the tp rank 0 of each stage sends them to
    /// world rank 0 (stage 0), which writes the files. A head stage's copy of the tied matrix is not sent (stage 0's
    /// is the same tensor). Returns the step directory on world rank 0, null elsewhere.
    /// </summary>
    private static string? SaveStageCheckpoint(string outDir, ModelConfig model, CheckpointState state, DeviceMesh mesh, PipelineStage stage,
        ParameterStore store, Optimizer optimizer, ZeroPartition? partition, Ops ops)
    {
        using var zeroFull = partition is not null ? new ZeroFullState(ops, store, optimizer) : null;
        zeroFull?.Gather(mesh.ReplicaGroup, partition!);
        if (mesh.DpRank != 0 || mesh.SpRank != 0)
        {
            return null;
        }
        var stateTensors = zeroFull?.StateTensors ?? optimizer.StateTensors;
        string? tiedCopy = stage.HoldsHead && !stage.HoldsEmbedding ? TransformerModel.TiedTokenName(model) : null;
        bool Keep(NamedTensor t) => tiedCopy is null || (t.Name != tiedCopy && !t.Name.StartsWith(tiedCopy + ".", StringComparison.Ordinal));
        var localModel = ModelTensors(store, stateTensors).Where(Keep).OrderBy(t => t.Name, StringComparer.Ordinal).ToList();
        var localOptimizer = OptimizerTensors(stateTensors).Where(Keep).OrderBy(t => t.Name, StringComparer.Ordinal).ToList();
        using var full = new ParameterStore();
        TransformerModel.DeclareParameters(full, model);
        var temporaries = new List<Tensor>();
        try
        {
            var tpComm = mesh.Tp > 1 ? mesh.TpGroup : null;
            NamedTensor Whole(NamedTensor t, string parameter)
            {
                var spec = TensorParallelLayout.SpecOf(model, parameter);
                if (tpComm is null || spec.Split == Transformer.TensorParallelSplit.Replicated)
                {
                    return t;
                }
                var whole = ops.Empty(full.Info(parameter).Shape, t.Tensor.DType);
                temporaries.Add(whole);
                TensorParallelLayout.Gather(ops, tpComm, spec, t.Tensor, whole);
                return new NamedTensor(t.Name, whole);
            }
            var wholeModel = localModel.Select(t => Whole(t, t.Name)).ToList();
            var wholeOptimizer = localOptimizer.Select(t => Whole(t, t.Name[..t.Name.LastIndexOf('.')])).ToList();
            if (mesh.TpRank != 0)
            {
                return null;
            }
            if (mesh.PpRank != 0)
            {
                int tag = 0;
                foreach (var t in wholeModel.Concat(wholeOptimizer))
                {
                    mesh.World.Send(t.Tensor, 0, tag++);
                }
                return null;
            }
            // World rank 0: receive every other stage's tensors in the order its sender sorted them.
            var suffixes = stateTensors.Where(s => !s.Name.EndsWith(".master", StringComparison.Ordinal))
                .Select(s => (Suffix: s.Name[(s.Name.LastIndexOf('.') + 1)..], s.Tensor.DType)).DistinctBy(s => s.Suffix).ToList();
            var modelDType = localModel[0].Tensor.DType;
            for (int s = 1; s < stage.Stages; s++)
            {
                var other = new PipelineStage(stage.Blocks, s);
                var infos = full.Infos.Where(info => other.HoldsLayer(info.Layer)).ToList();
                var expectModel = infos.Select(info => (info.Name, info.Shape, modelDType)).OrderBy(e => e.Name, StringComparer.Ordinal);
                var expectOptimizer = infos.SelectMany(info => suffixes.Select(x => ($"{info.Name}.{x.Suffix}", info.Shape, x.DType)))
                    .OrderBy(e => e.Item1, StringComparer.Ordinal).ToList();
                int source = mesh.RankOf(0, s, 0, 0), tag = 0;
                foreach (var (list, expected) in new[] { (wholeModel, expectModel.ToList()), (wholeOptimizer, expectOptimizer) })
                {
                    foreach (var (name, shape, dtype) in expected)
                    {
                        var t = ops.Empty(shape, dtype);
                        temporaries.Add(t);
                        mesh.World.Recv(t, source, tag++);
                        list.Add(new NamedTensor(name, t));
                    }
                }
            }
            var order = full.Infos.Select((info, i) => (info.Name, i)).ToDictionary(e => e.Name, e => e.i, StringComparer.Ordinal);
            wholeModel = [.. wholeModel.OrderBy(t => order[t.Name])];
            return Checkpoint.Save(outDir, model, wholeModel, wholeOptimizer, state, ops);
        }
        finally
        {
            foreach (var t in temporaries)
            {
                t.Dispose();
            }
        }
    }

    /// <summary>
    /// Resumes a stage from any layout's checkpoint: every rank reads the whole files, keeps its stage's tensors (cut
    /// to its tp shards) and, under ZeRO-1, its optimizer shard. The tied copy on a head stage reads the same tensor as
    /// the embedding stage's.
    /// </summary>
    private static CheckpointState LoadStageCheckpoint(string stepDir, ModelConfig model, ParameterStore store, Optimizer optimizer,
        ZeroPartition? partition, Ops ops, ICommunicator? tpComm)
    {
        using var zeroFull = partition is not null ? new ZeroFullState(ops, store, optimizer) : null;
        var stateTensors = zeroFull?.StateTensors ?? optimizer.StateTensors;
        var localModel = ModelTensors(store, stateTensors);
        var localOptimizer = OptimizerTensors(stateTensors);
        using var full = new ParameterStore();
        TransformerModel.DeclareParameters(full, model);
        string[] suffixes = optimizer.Options.Kind is OptimizerKind.AdamW or OptimizerKind.Lamb ? ["exp_avg", "exp_avg_sq"] : ["momentum_buffer"];
        var modelNames = full.Infos.Select(info => (info.Name, info.Shape)).ToList();
        var optimizerNames = full.Infos.SelectMany(info => suffixes.Select(s => ($"{info.Name}.{s}", info.Shape))).ToList();
        var state = Checkpoint.LoadHost(stepDir, model, modelNames, optimizerNames, (modelFile, optimizerFile) =>
        {
            void Read(SafeTensorsReader file, NamedTensor t, string parameter)
            {
                var spec = TensorParallelLayout.SpecOf(model, parameter);
                if (tpComm is null || spec.Split == Transformer.TensorParallelSplit.Replicated)
                {
                    file.ReadInto(t.Name, t.Tensor, ops);
                    return;
                }
                using var whole = ops.Empty(full.Info(parameter).Shape, t.Tensor.DType);
                file.ReadInto(t.Name, whole, ops);
                TensorParallelLayout.Split(ops, spec, whole, t.Tensor, tpComm.Rank, tpComm.Size);
            }
            foreach (var t in localModel)
            {
                Read(modelFile, t, t.Name);
            }
            foreach (var t in localOptimizer)
            {
                Read(optimizerFile, t, t.Name[..t.Name.LastIndexOf('.')]);
            }
        });
        if (zeroFull is not null)
        {
            zeroFull.ScatterToOptimizer();
            if (zeroFull.Master is { } master)
            {
                // Every parameter, not only the owned ones, is the rounding of its checkpointed master.
                ops.Cast(master, store.Params);
            }
        }
        return state;
    }
}
