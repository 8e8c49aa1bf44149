using System.Diagnostics;
using Hal.Models.Checkpoints;
using Hal.Models.Data;
using Hal.Models.Optim;
using Hal.Models.Transformer;
using Hal.Parallel;
using Hal.Parallel.Mesh;
using Hal.Parallel.Pipeline;

namespace Hal.Models.Training;

// Legend: p pipeline stages, v chunks per stage, m micro-batches per step per replica, B global batch, b = B/(dp·m)
// rows per micro-batch, T sequence length (T/sp per rank under sp). A stage's replicas: the dp × sp ranks that share
// its pp and tp coordinates (DeviceMesh.ReplicaGroup).

public static partial class Trainer
{
    /// <summary>
    /// Runs on the pipeline path: --pp above 1, or ZeRO-1 together with tp or sp (one stage then; the path partitions
    /// the optimizer state over a stage's replica group, which the plain path cannot do under tp or sp).
    /// </summary>
    private static bool UsesPipelinePath(TrainConfig config) => config.Pp > 1 || (config.Zero == 1 && (config.Tp > 1 || config.Sp > 1));

    /// <summary>--microbatches stands for --grad-accum (both given with different values is refused); the result carries it in GradAccum.</summary>
    private static TrainConfig ResolveMicroBatches(TrainConfig config)
    {
        if (config.MicroBatches is not { } m)
        {
            return config;
        }
        if (m < 1)
        {
            throw new TrainConfigException($"--microbatches {m}: give at least 1 micro-batch per step");
        }
        if (config.GradAccum != 1 && config.GradAccum != m)
        {
            throw new TrainConfigException(
                $"--microbatches {m} and --grad-accum {config.GradAccum} disagree: both name the micro-batches per step per replica; give one of them");
        }
        return config with { GradAccum = m };
    }

    /// <summary>dp·tp·pp·sp must be the number of ranks running, each at least 1.</summary>
    private static void CheckPipelineRanks(TrainConfig config, int ranks)
    {
        foreach (var (flag, value) in new[] { ("--dp", config.Dp), ("--tp", config.Tp), ("--pp", config.Pp), ("--sp", config.Sp) })
        {
            if (value < 1)
            {
                throw new TrainConfigException($"{flag} {value}: the number of ranks on each axis must be at least 1");
            }
        }
        long product = (long)config.Dp * config.Tp * config.Pp * config.Sp;
        if (product != ranks)
        {
            throw new TrainConfigException(
                $"--dp {config.Dp} × --tp {config.Tp} × --pp {config.Pp} × --sp {config.Sp} = {product} ranks, but {ranks} are running; give sizes whose product is {ranks}");
        }
    }

    /// <summary>Parameters of the largest stage: 1/pp of <paramref name="local"/> (this rank's tp share), plus a tied token matrix's copy.</summary>
    private static long StageParameterEstimate(ModelConfig model, TrainConfig config, long local)
    {
        long tiedCopy = TransformerModel.TiedTokenName(model) is null ? 0 : (long)model.VocabSize * model.Channels / Math.Max(1, config.Tp);
        return ((local + config.Pp - 1) / config.Pp) + tiedCopy;
    }

    /// <summary>The most micro-batches whose activations a stage keeps at once (stage 0 is the worst).</summary>
    private static int PipelineMicroBatchesInFlight(TrainConfig config)
    {
        int m = Math.Max(1, config.MicroBatches ?? config.GradAccum);
        return config.PpSchedule switch
        {
            PipelineScheduleKind.GPipe => m * config.PpChunks,
            PipelineScheduleKind.OneFOneB => Math.Min(m, config.Pp),
            _ => Math.Min(m * config.PpChunks, (2 * (config.Pp - 1)) + ((config.PpChunks - 1) * config.Pp) + 1),
        };
    }

    /// <summary>What the pipeline cannot split or does not combine with, refused before any work.</summary>
    private static void CheckPipeline(TrainConfig config, ModelConfig model)
    {
        if (config.Pp < 1)
        {
            throw new TrainConfigException($"--pp {config.Pp}: the number of pipeline stages must be at least 1");
        }
        if (config.PpChunks < 1)
        {
            throw new TrainConfigException($"--pp-chunks {config.PpChunks}: give at least 1 model chunk per stage");
        }
        if (config.Pp == 1 && config.PpChunks == 1)
        {
            return;
        }
        if (config.Pp == 1)
        {
            throw new TrainConfigException($"--pp-chunks {config.PpChunks} needs pipeline stages; give --pp 2 or more, or --pp-chunks 1");
        }
        int m = config.GradAccum;
        switch (config.PpSchedule)
        {
            case PipelineScheduleKind.OneFOneB when config.PpChunks > 1:
                throw new TrainConfigException($"--pp-schedule 1f1b runs one model chunk per stage, not --pp-chunks {config.PpChunks}; use --pp-schedule interleaved for virtual chunks");
            case PipelineScheduleKind.Interleaved when config.PpChunks < 2:
                throw new TrainConfigException($"--pp-schedule interleaved needs --pp-chunks 2 or more (got {config.PpChunks}); use 1f1b for one chunk per stage");
            case PipelineScheduleKind.Interleaved when m % config.Pp != 0:
                throw new TrainConfigException(
                    $"--pp-schedule interleaved takes micro-batches in groups of the {config.Pp} stages: --microbatches {m} is not a multiple of {config.Pp}; give --microbatches {((m / config.Pp) + 1) * config.Pp}");
        }
        int chunks = config.Pp * config.PpChunks;
        if (model.Layers < chunks)
        {
            throw new TrainConfigException(
                $"model '{model.Name}' has {model.Layers} layers, fewer than --pp {config.Pp} × --pp-chunks {config.PpChunks} = {chunks} model chunks (each needs a layer); use fewer stages or chunks");
        }
        if (config.UsesChunks)
        {
            string what = config.Zero >= 2 ? $"--zero {config.Zero}" : $"--offload {config.Offload}";
            throw new TrainConfigException($"--pp {config.Pp} and {what} do not run together; use --zero 1 or --zero 0 without --offload");
        }
    }

    private static TrainEnd RunPipelineRank(Job job, IDevice device, ICommunicator comm, ITrainingObserver observer, CancellationToken cancellationToken)
    {
        var config = job.Config;
        var ops = new Ops(device);
        int worldRank = comm.Rank;
        using var mesh = new DeviceMesh(comm, config.Dp, config.Tp, config.Pp, config.Sp);
        var tpComm = config.Tp > 1 ? mesh.TpGroup : null;
        var spComm = config.Sp > 1 ? mesh.SpGroup : null;
        var replica = mesh.Dp * mesh.Sp > 1 ? mesh.ReplicaGroup : null;
        var stage = new PipelineStage(PipelineStage.Partition(job.Model, config.Pp, config.PpChunks), mesh.PpRank);
        var computeDType = ComputeDType(config.Precision);
        var optimizerOptions = new OptimizerOptions
        {
            Kind = config.Optimizer,
            WeightDecay = config.WeightDecay,
            Clip = config.Clip,
            Precision = config.Precision,
        };
        using var model = new TransformerModel(ops, job.Model, new TransformerOptions
        {
            ComputeDType = computeDType,
            CheckpointActivations = config.CheckpointActivations,
            TensorParallel = tpComm,
            SequenceParallel = spComm is null ? null : new SequenceParallelOptions(spComm, config.SpMode),
            Stage = stage,
        });
        var store = model.Parameters;
        model.Initialize(config.Seed);
        if (config.InitDir is { } initDir && job.ResumeDir is null)
        {
            LoadStageWeights(initDir, job.Model, store, ops, tpComm);
        }
        var partition = config.Zero == 1 && replica is not null ? new ZeroPartition(store, replica.Size) : null;
        // The clipping norm is the whole model's: each rank's (weighted) sum of squares is summed over the ZeRO shards
        // of its replica group, then over tp, then over the stages.
        double SumOverModel(double value)
        {
            if (partition is not null)
            {
                value = DataParallel.SumScalar(replica!, ops, value);
            }
            if (tpComm is not null)
            {
                value = DataParallel.SumScalar(tpComm, ops, value);
            }
            return config.Pp > 1 ? DataParallel.SumScalar(mesh.PpGroup, ops, value) : value;
        }
        using var optimizer = new Optimizer(ops, store, optimizerOptions, partition?.Shard(replica!.Rank), SumOverModel, NormWeights(job.Model, store, stage, config.Tp));
        optimizer.SyncMasterFromParams();
        var schedule = new LearningRateSchedule(config.Schedule, config.LearningRate, config.WarmupSteps, config.Steps);
        var loader = new BatchLoader(job.Dataset, config.Batch, config.Seq, config.Shuffle, config.Seed);
        var log = new RunLog(job, comm, observer);
        long startStep = 1;
        if (job.ResumeDir is { } resumeDir)
        {
            var state = LoadStageCheckpoint(resumeDir, job.Model, store, optimizer, partition, ops, tpComm);
            startStep = log.Resume(state, resumeDir, loader, optimizer, computeDType);
        }
        if (replica is not null && computeDType == DType.F32)
        {
            // The replicas built the same weights from the same seed and files; the broadcast makes it a guarantee.
            DataParallel.BroadcastParameters(replica, store.Params);
        }
        if (partition is not null)
        {
            long held = (long)MaxScalar(comm, ops, optimizer.StateBytesHeld);
            if (worldRank == 0)
            {
                observer.OnMessage($"ZeRO-1: optimizer state {Mib(held)} per rank at most, each stage's over its {replica!.Size} replicas");
            }
        }
        if (worldRank == 0)
        {
            if (config.Pp > 1)
            {
                observer.OnMessage($"pipeline: {stage.Blocks} (blocks), {PipelineSchedule.KindName(config.PpSchedule)} schedule, {config.GradAccum} micro-batches per step");
            }
            observer.OnStart(new TrainStart(job.Model.Name, job.Model.ParameterCount, device.Id.ToString(), config.Dp, job.Dataset.EntropyRateNats,
                config.Steps, config.Batch, config.Seq, job.Dataset.Description, config.Precision.ToString().ToLowerInvariant(),
                config.Optimizer.ToString().ToLowerInvariant(), startStep)
            {
                Tp = config.Tp,
                Sp = config.Sp,
                SpMode = config.SpMode.ToString().ToLowerInvariant(),
                Zero = config.Zero,
                Offload = config.Offload.ToString(),
                Pp = config.Pp,
                PpSchedule = PipelineSchedule.KindName(config.PpSchedule),
                PpChunks = config.PpChunks,
                MicroBatches = config.GradAccum,
            });
        }

        int m = config.GradAccum;
        var batches = new MicroBatches(job, mesh.DpRank, spComm is null ? null : Nn.SequenceParallelContext.Positions(config.Seq, config.Sp, spComm.Rank, config.SpMode));
        var ids = new List<Tensor>(m);
        var targets = new List<Tensor>(m);
        var adapter = new TransformerStage(model);
        var pipelineSchedule = PipelineSchedule.Build(config.PpSchedule, mesh.PpRank, config.Pp, m, config.PpChunks);
        double bubbleSum = 0, firstBubble = double.NaN;
        int bubbleSteps = 0;
        try
        {
            for (int micro = 0; micro < m; micro++)
            {
                ids.Add(ops.Empty(batches.Shape, DType.I32));
                targets.Add(ops.Empty(batches.Shape, DType.I32));
            }
            using var executor = new PipelineExecutor(mesh.PpGroup, adapter);
            for (long step = startStep; step <= config.Steps; step++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                log.BeginStep();
                batches.Draw(loader);
                store.ZeroGrads(ops);
                for (int micro = 0; micro < m; micro++)
                {
                    batches.Upload(ops, micro, ids[micro], targets[micro]);
                }
                // Each micro-batch's backward differentiates its mean over m; under sp a rank's gradient is its share of
                // the replica's, and the mean over dp × sp replicas below makes the dp mean after scaling by sp.
                adapter.SetStep(ids, targets, optimizer.LossScale * config.Sp / m);
                var report = executor.Run(pipelineSchedule);
                if (log.StepsRun == 0)
                {
                    firstBubble = report.MeanBubbleFraction;
                }
                else
                {
                    // The first step allocates every slot and pays for warm-up: it is not the steady bubble.
                    bubbleSum += report.MeanBubbleFraction;
                    bubbleSteps++;
                }
                SumTiedGradients(job.Model, store, stage, mesh.PpGroup, ops, m);
                if (replica is not null)
                {
                    replica.AllReduce(store.Grads, store.Grads, ReduceOp.Mean);
                }
                // The last stage computed the loss: the pp group's sum hands it to every stage (world rank 0 included),
                // the replicas' mean is then the global batch's (an sp rank's loss is already its replica's).
                double loss = DataParallel.SumScalar(mesh.PpGroup, ops, stage.HoldsHead ? adapter.LossSum / m : 0);
                if (replica is not null)
                {
                    loss = DataParallel.AverageScalar(replica, ops, loss);
                }
                double lr = schedule.At(step);
                var outcome = optimizer.Step(lr, log.Updates + 1);
                if (log.Applied(step, outcome))
                {
                    if (partition is not null)
                    {
                        foreach (var shard in partition.Shards.Where(s => !s.IsEmpty))
                        {
                            replica!.Broadcast(store.Params.View(shard.Start, new Shape(checked((int)shard.ElementCount))), root: shard.Rank);
                        }
                    }
                }
                log.EndStep(device, step, loss, lr, outcome);
                if (log.CheckpointDue(step, out string outDir))
                {
                    var state = log.State(step, loader, optimizer.ScalarState);
                    if (SaveStageCheckpoint(outDir, job.Model, state, mesh, stage, store, optimizer, partition, ops) is { } written)
                    {
                        log.Written(written);
                    }
                    comm.Barrier();
                }
            }
        }
        finally
        {
            model.ResetStage();
            foreach (var t in ids.Concat(targets))
            {
                t.Dispose();
            }
        }

        double modelStateBytes = store.Params.SizeInBytes + store.Grads.SizeInBytes + optimizer.StateTensors.Sum(s => s.Tensor.SizeInBytes);
        double? bubble = config.Pp == 1 || log.StepsRun == 0 ? null : bubbleSteps > 0 ? bubbleSum / bubbleSteps : firstBubble;
        return log.End(ops, device.Allocator.Stats.PeakBytesInUse, modelStateBytes, end => end with
        {
            PipelineBubble = bubble,
            PipelineBubbleTheoretical = config.Pp == 1 ? null : pipelineSchedule.TheoreticalBubbleFraction,
        });
    }

    /// <summary>
    /// Norm weights per stage parameter: a head stage's copy of the tied token matrix counts 0 (the embedding stage's
    /// counts it), a tensor replicated over tp ranks 1/tp, everything else 1.
    /// </summary>
    private static double[] NormWeights(ModelConfig model, Nn.ParameterStore store, PipelineStage stage, int tp)
    {
        string? tiedCopy = stage.HoldsHead && !stage.HoldsEmbedding ? TransformerModel.TiedTokenName(model) : null;
        return [.. store.Infos.Select(info =>
            info.Name == tiedCopy ? 0.0
            : tp > 1 && TensorParallelLayout.SpecOf(model, info.Name).Split == TensorParallelSplit.Replicated ? 1.0 / tp
            : 1.0)];
    }

    /// <summary>
    /// The embedding stage and the head stage each hold the tied token matrix and its gradient from their own use: both
    /// end up with the sum, so the two copies take the same update. First stage sends then receives, the last receives
    /// then sends (no deadlock when a send waits for its receive).
    /// </summary>
    private static void SumTiedGradients(ModelConfig model, Nn.ParameterStore store, PipelineStage stage, ICommunicator ppGroup, Ops ops, int microBatches)
    {
        if (stage.Stages == 1 || TransformerModel.TiedTokenName(model) is not { } token || !(stage.HoldsEmbedding || stage.HoldsHead))
        {
            return;
        }
        // Past every tag the schedule uses (2·m·p·v of them), so it cannot match a pipeline message.
        int tag = 2 * microBatches * stage.Stages * stage.ChunksPerStage;
        var grad = store.Grad(token);
        using var other = ops.Empty(grad.Shape, grad.DType);
        int peer = stage.HoldsEmbedding ? stage.Stages - 1 : 0;
        if (stage.HoldsEmbedding)
        {
            ppGroup.Send(grad, peer, tag);
            ppGroup.Recv(other, peer, tag);
        }
        else
        {
            ppGroup.Recv(other, peer, tag);
            ppGroup.Send(grad, peer, tag);
        }
        ops.Binary(BinaryOp.Add, grad, other, grad);
    }

    /// <summary>Every rank's value, by world rank (one all-reduce of a vector with this rank's slot set).</summary>
    private static long[] PerRank(ICommunicator comm, Ops ops, long value)
    {
        var slots = new double[comm.Size];
        slots[comm.Rank] = value;
        using var t = ops.FromArray(slots, new Shape(comm.Size), DType.F64);
        comm.AllReduce(t, t, ReduceOp.Sum);
        return [.. ops.ToDoubleArray(t).Select(v => (long)v)];
    }

    /// <summary>--init on a stage: the whole Hugging Face weights into full temporaries, keeping this stage's tensors (and tp shards).</summary>
    private static void LoadStageWeights(string dir, ModelConfig model, Nn.ParameterStore store, Ops ops, ICommunicator? tpComm)
    {
        using var full = new Nn.ParameterStore();
        TransformerModel.DeclareParameters(full, model);
        full.Allocate(ops, store.DType);
        HuggingFace.LoadWeights(dir, full, ops);
        for (int i = 0; i < store.Infos.Count; i++)
        {
            var whole = full.Param(store.Infos[i].Name);
            if (tpComm is null)
            {
                ops.Copy(whole, store.Param(i));
            }
            else
            {
                TensorParallelLayout.Split(ops, TensorParallelLayout.SpecOf(model, store.Infos[i].Name), whole, store.Param(i), tpComm.Rank, tpComm.Size);
            }
        }
    }
}
