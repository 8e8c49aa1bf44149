using System.Diagnostics;
using Hal.Models.Checkpoints;
using Hal.Models.Data;
using Hal.Models.Nn;
using Hal.Models.Optim;
using Hal.Models.Transformer;
using Hal.Parallel;
using Hal.Parallel.Mesh;

namespace Hal.Models.Training;

// Legend: dp replicas of a tp grid (2D q×q, 2.5D q×q×d, 3D c×c×c); B global batch, b = B/dp rows per replica, m = b/GradAccum
// per micro-batch, T sequence length. A full tensor has its Hugging Face shape, a local one this rank's blocks.

public static partial class Trainer
{
    /// <summary>What a 2D, 2.5D or 3D grid cannot split or does not combine with yet, refused before any work.</summary>
    private static void CheckGrid(TrainConfig config, ModelConfig model)
    {
        string mode = $"--tp-mode {config.TpMode.Name()}";
        var (geometry, problem) = GridGeometry.For(config.TpMode, config.Tp, config.TpDepth);
        if (geometry is null)
        {
            throw new TrainConfigException(problem!);
        }
        if (config.Sp > 1)
        {
            throw new TrainConfigException($"{mode} and --sp {config.Sp} do not run together yet; use --sp 1 with a grid, or --tp-mode 1d");
        }
        if (config.SpMode == SequenceParallelMode.SplitGather)
        {
            throw new TrainConfigException($"{mode} and --sp-mode split-gather do not run together (split-gather shards the rows of the 1-D layout); use one of them");
        }
        if (config.Pp > 1)
        {
            throw new TrainConfigException($"{mode} and --pp {config.Pp} do not run together yet; use --pp 1 with a grid, or --tp-mode 1d with --pp");
        }
        if (config.Zero >= 1 || config.UsesChunks)
        {
            string what = config.Zero >= 1 ? $"--zero {config.Zero}" : $"--offload {config.Offload}";
            throw new TrainConfigException($"{mode} and {what} do not run together yet; use --zero 0 and no --offload with a grid (it already splits every weight and its optimizer state over the tp ranks)");
        }
        if (config.CheckpointActivations)
        {
            throw new TrainConfigException($"{mode} and --checkpoint-activations do not run together yet; drop --checkpoint-activations (a grid already splits the activations over its ranks), or use --tp-mode 1d");
        }
        if (config.Optimizer is OptimizerKind.Lamb or OptimizerKind.Lars)
        {
            throw new TrainConfigException($"{mode} and --optimizer {config.Optimizer.ToString().ToLowerInvariant()} do not run together yet (per-tensor trust ratios need whole-tensor norms); use adamw or sgd");
        }
        if (config.Batch % (config.Dp * config.GradAccum) == 0 && geometry.Problem(model, config.Batch / config.Dp / config.GradAccum) is { } split)
        {
            throw new TrainConfigException(split);
        }
    }

    /// <summary>One rank of a dp × grid job: the step loop of <see cref="RunRank"/> over a <see cref="GridTransformerModel"/>.</summary>
    private static TrainEnd RunGridRank(Job job, IDevice device, ICommunicator comm, ITrainingObserver observer, CancellationToken cancellationToken)
    {
        var config = job.Config;
        var ops = new Ops(device);
        int worldRank = comm.Rank;
        using var mesh = new DeviceMesh(comm, config.Dp, config.Tp, 1, 1);
        var dpComm = mesh.Dp > 1 ? mesh.DpGroup : null;
        var tpComm = mesh.TpGroup;
        int rank = mesh.DpRank;
        var computeDType = ComputeDType(config.Precision);
        var geometry = GridGeometry.For(config.TpMode, config.Tp, config.TpDepth).Geometry!;
        using var model = new GridTransformerModel(ops, job.Model, tpComm, geometry, computeDType);
        var store = model.Parameters;
        model.Initialize(config.Seed);
        if (config.InitDir is { } initDir && job.ResumeDir is null)
        {
            using var full = new ParameterStore();
            TransformerModel.DeclareParameters(full, job.Model);
            full.Allocate(ops, computeDType);
            HuggingFace.LoadWeights(initDir, full, ops);
            model.LoadFull(full);
        }
        var optimizerOptions = new OptimizerOptions { Kind = config.Optimizer, WeightDecay = config.WeightDecay, Clip = config.Clip, Precision = config.Precision };
        // The clipping norm is the full gradient's: squares summed over the tp group, each block weighted by 1/(ranks holding it).
        var weights = model.Layout.Select(p => 1.0 / geometry.Copies(p.Kind)).ToArray();
        using var optimizer = new Optimizer(ops, store, optimizerOptions, null, v => DataParallel.SumScalar(tpComm, ops, v), weights);
        optimizer.SyncMasterFromParams();
        var schedule = new LearningRateSchedule(config.Schedule, config.LearningRate, config.WarmupSteps, config.Steps);
        var loader = new BatchLoader(job.Dataset, config.Batch, config.Seq, config.Shuffle, config.Seed);
        var log = new RunLog(job, comm, observer);
        long startStep = 1;
        if (job.ResumeDir is { } resumeDir)
        {
            // The checkpoint holds whole tensors whatever layout wrote it: load them whole, keep this rank's blocks.
            using var full = new GridFullState(ops, model, optimizer);
            var state = Checkpoint.Load(resumeDir, job.Model, full.ModelTensors, full.OptimizerTensors, ops);
            full.Scatter();
            startStep = log.Resume(state, resumeDir, loader, optimizer, computeDType);
        }
        if (worldRank == 0)
        {
            observer.OnMessage($"{geometry.Mode.Name()} tensor parallelism: {config.Tp} ranks as {GridName(geometry)}; rank 0 holds {store.Count} of {job.Model.ParameterCount} parameters");
            observer.OnStart(new TrainStart(job.Model.Name, job.Model.ParameterCount, device.Id.ToString(), config.Dp, job.Dataset.EntropyRateNats,
                config.Steps, config.Batch, config.Seq, job.Dataset.Description, config.Precision.ToString().ToLowerInvariant(),
                config.Optimizer.ToString().ToLowerInvariant(), startStep)
            {
                Tp = config.Tp,
                TpMode = config.TpMode.Name(),
                Sp = config.Sp,
                SpMode = config.SpMode.ToString().ToLowerInvariant(),
                Zero = config.Zero,
                Offload = config.Offload.ToString(),
            });
        }

        // Every tp rank of a replica takes the replica's whole micro-batch; the grid picks each rank's rows.
        var batches = new MicroBatches(job, rank, null);
        using var ids = ops.Empty(batches.Shape, DType.I32);
        using var targets = ops.Empty(batches.Shape, DType.I32);
        for (long step = startStep; step <= config.Steps; step++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            log.BeginStep();
            batches.Draw(loader);
            store.ZeroGrads(ops);
            double lossSum = 0;
            for (int micro = 0; micro < config.GradAccum; micro++)
            {
                batches.Upload(ops, micro, ids, targets);
                lossSum += model.Forward(ids, targets);
                model.Backward(optimizer.LossScale / config.GradAccum);
            }
            double loss = lossSum / config.GradAccum;
            if (dpComm is not null)
            {
                // Replicas of a grid rank hold the same blocks: average their gradients and the loss over dp.
                dpComm.AllReduce(store.Grads, store.Grads, ReduceOp.Mean);
                loss = DataParallel.AverageScalar(dpComm, ops, loss);
            }
            double lr = schedule.At(step);
            var outcome = optimizer.Step(lr, log.Updates + 1);
            log.Applied(step, outcome);
            log.EndStep(device, step, loss, lr, outcome);
            if (log.CheckpointDue(step, out string outDir))
            {
                // The replica at dp 0 gathers whole tensors over its grid; the world's rank 0 (dp 0, tp 0) writes them.
                if (rank == 0)
                {
                    using var full = new GridFullState(ops, model, optimizer);
                    full.Gather(tpComm);
                    if (worldRank == 0)
                    {
                        log.Written(Checkpoint.Save(outDir, job.Model, full.ModelTensors, full.OptimizerTensors, log.State(step, loader, optimizer.ScalarState), ops));
                    }
                }
                comm.Barrier();
            }
        }
        double modelStateBytes = store.Params.SizeInBytes + store.Grads.SizeInBytes + optimizer.StateTensors.Sum(s => s.Tensor.SizeInBytes);
        return log.End(ops, device.Allocator.Stats.PeakBytesInUse, modelStateBytes);
    }

    /// <summary>Parameters one grid rank holds (its blocks, replicated ones included), or the whole model when the grid cannot split it.</summary>
    private static long GridLocalParameterCount(ModelConfig model, TrainConfig config)
    {
        var geometry = GridGeometry.For(config.TpMode, config.Tp, config.TpDepth).Geometry;
        if (geometry is null || geometry.Problem(model, geometry.RowBlocks) is not null)
        {
            return model.ParameterCount;
        }
        return GridParameterLayout.Of(model).Sum(p => p.LocalShape(geometry).ElementCount);
    }

    private static string GridName(GridGeometry g) => g.Mode switch
    {
        TensorParallelMode.TwoAndHalfD => $"{g.Side}×{g.Side}×{g.Depth}",
        TensorParallelMode.ThreeD => $"{g.Side}×{g.Side}×{g.Side}",
        _ => $"{g.Side}×{g.Side}",
    };
}
