using System.Diagnostics;
using Hal.Collectives;
using Hal.Collectives.InProcess;
using Hal.Models.Checkpoints;
using Hal.Models.Data;
using Hal.Models.Optim;
using Hal.Models.Transformer;
using Hal.Models.Zero;
using Hal.Parallel;
using Hal.Parallel.Mesh;

namespace Hal.Models.Training;

// Legend: B global batch (sequences), b = B/dp per rank, m = b/GradAccum per micro-batch, T sequence length.

/// <summary>
/// The training loop as a story: open the data, build the model on every rank's device, then per step
/// zero-grad, forward and backward each micro-batch (the last one's backward overlapping the gradient all-reduce),
/// update, log, checkpoint. The same job runs on one device or on dp ranks (threads in this process, or one
/// process per rank under mpirun) and gives the same loss: each rank takes its slice of the same global batch.
/// </summary>
public static partial class Trainer
{
    /// <summary>Runs a training job.</summary>
    /// <param name="config">what to train.</param>
    /// <param name="devices">one device per in-process rank (<paramref name="world"/> null), or this process's device.</param>
    /// <param name="world">the MPI world when this process is one rank of many; null to run every rank here.</param>
    /// <param name="observer">receives start, steps, messages and end (from rank 0, on one thread).</param>
    /// <param name="cancellationToken">stops between steps.</param>
    /// <exception cref="TrainConfigException">the configuration cannot run (before any work).</exception>
    public static TrainEnd Run(TrainConfig config, IReadOnlyList<IDevice> devices, ICommunicator? world, ITrainingObserver observer, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(devices);
        ArgumentNullException.ThrowIfNull(observer);
        int ranks = world?.Size ?? devices.Count;
        if (devices.Count == 0)
        {
            throw new TrainConfigException("no device to train on");
        }
        if (world is not null && devices.Count != 1)
        {
            throw new TrainConfigException($"a rank of a {world.Size}-process world trains on one device, not {devices.Count}");
        }
        config = ResolveSplitGather(config);
        CheckRanks(config, ranks);
        using var dataset = TokenDatasets.Open(config.Data, config.Seed);
        var job = Plan(config, dataset, devices[0]);
        TrainEnd? end = null;
        if (world is not null)
        {
            // The wrapper counts what this rank sends (the caller owns the world: the wrapper is not disposed).
            end = RunRank(job, devices[0], new CountingCommunicator(world), observer, cancellationToken);
        }
        else if (ranks == 1)
        {
            end = RunRank(job, devices[0], null, observer, cancellationToken);
        }
        else
        {
            InProcessWorld.Run(devices, comm =>
            {
                var result = RunRank(job, devices[comm.Rank], new CountingCommunicator(comm), comm.Rank == 0 ? observer : NullObserver.Instance, cancellationToken);
                if (comm.Rank == 0)
                {
                    end = result;
                }
            });
        }
        return end ?? throw new InvalidOperationException("rank 0 produced no result");
    }

    /// <summary>dp·tp·sp must be the number of ranks running, tp and sp at least 1.</summary>
    private static void CheckRanks(TrainConfig config, int ranks)
    {
        if (config.Tp < 1)
        {
            throw new TrainConfigException($"--tp {config.Tp}: the number of tensor-parallel ranks must be at least 1");
        }
        if (config.Sp < 1)
        {
            throw new TrainConfigException($"--sp {config.Sp}: the number of sequence-parallel ranks must be at least 1");
        }
        if (UsesPipelinePath(config))
        {
            CheckPipelineRanks(config, ranks);
            return;
        }
        if (config.Tp == 1 && config.Sp == 1 && config.Dp != ranks)
        {
            throw new TrainConfigException($"--dp {config.Dp} but {ranks} rank(s) are running; give --dp {ranks}");
        }
        if ((long)config.Dp * config.Tp * config.Sp != ranks)
        {
            string sp = config.Sp > 1 ? $" × --sp {config.Sp}" : "";
            throw new TrainConfigException($"--dp {config.Dp} × --tp {config.Tp}{sp} = {(long)config.Dp * config.Tp * config.Sp} ranks, but {ranks} are running; give sizes whose product is {ranks}");
        }
    }

    /// <summary>Bytes per rank the configuration needs (model states exactly, activations estimated).</summary>
    /// <exception cref="TrainConfigException">an unknown model name.</exception>
    public static ModelFootprint Estimate(TrainConfig config, int vocabSize)
    {
        ArgumentNullException.ThrowIfNull(config);
        var model = ResolveModel(config, vocabSize);
        return Estimate(model, config);
    }

    private static ModelFootprint Estimate(ModelConfig model, TrainConfig config)
    {
        long n = config.TpMode == TensorParallelMode.OneD ? LocalParameterCount(model, config.Tp) : GridLocalParameterCount(model, config);
        if (config.Pp > 1)
        {
            // A stage holds about 1/pp of the model, the head stage a copy of a tied token matrix besides.
            n = StageParameterEstimate(model, config, n);
        }
        var computeDType = ComputeDType(config.Precision);
        int computeBytes = computeDType.SizeInBytes();
        // What the optimizer allocates: moments or momentum, and under 16-bit compute the fp32 master and gradient copies.
        long optimizerBytes = Optimizer.StateBytes(new OptimizerOptions { Kind = config.Optimizer, Precision = config.Precision }, n, computeDType);
        if (config.Zero == 1 && config.Dp > 1)
        {
            // ZeRO-1: each rank holds about 1/dp of it (whole parameters per rank, so a little more on some).
            optimizerBytes = (optimizerBytes + config.Dp - 1) / config.Dp;
        }
        // Activations kept per token: about 24·C values per block (norm outputs, q/k/v and their head-major copies,
        // attention output, MLP hidden before and after the activation, residuals) and the logits with their gradient.
        long tokens = (long)config.Batch / Math.Max(1, config.Dp) / Math.Max(1, config.MicroBatches ?? config.GradAccum) * config.Seq / Math.Max(1, config.Sp);
        if (config.Pp > 1)
        {
            // A stage keeps its 1/pp of the blocks for every micro-batch in flight: all m under GPipe, at most pp under 1F1B.
            tokens *= PipelineMicroBatchesInFlight(config);
            model = model with { Layers = Math.Max(1, (model.Layers + config.Pp - 1) / config.Pp) };
        }
        long perTokenValues = config.CheckpointActivations
            ? (model.Layers * (long)model.Channels) + (24L * model.Channels) + (2L * model.VocabSize)
            : (model.Layers * 24L * model.Channels) + (2L * model.VocabSize);
        return new ModelFootprint(n, n * computeBytes, n * computeBytes, optimizerBytes, tokens * perTokenValues * computeBytes);
    }

    private sealed record Job(TrainConfig Config, ModelConfig Model, ITokenDataset Dataset, string? ResumeDir, int RowsPerRank, int RowsPerMicro);

    private static Job Plan(TrainConfig config, ITokenDataset dataset, IDevice device)
    {
        if (config.Steps < 1)
        {
            throw new TrainConfigException($"--steps must be at least 1, not {config.Steps}");
        }
        if (config.Zero is < 0 or > 3)
        {
            throw new TrainConfigException($"--zero {config.Zero}: the ZeRO stage is 0 (off), 1 (optimizer states sharded), 2 (+ gradients) or 3 (+ parameters)");
        }
        if (config.UsesChunks)
        {
            CheckChunkedConfig(config);
        }
        config = ResolveMicroBatches(config);
        if (config.Batch < 1 || config.Seq < 1 || config.GradAccum < 1)
        {
            throw new TrainConfigException("--batch, --seq and --grad-accum must be positive");
        }
        if (config.Batch % (config.Dp * config.GradAccum) != 0)
        {
            throw new TrainConfigException($"--batch {config.Batch} is not divisible by dp × grad-accum = {config.Dp * config.GradAccum}; give a multiple of it");
        }
        if (!(config.LearningRate > 0) || !double.IsFinite(config.LearningRate))
        {
            throw new TrainConfigException($"--lr must be a positive finite number, not {config.LearningRate}");
        }
        string? resume = config.ResumeDir is null ? null : Checkpoint.Resolve(config.ResumeDir);
        var model = resume is not null ? Checkpoint.ReadConfig(resume) : ResolveModel(config, dataset.VocabSize);
        try
        {
            model.Validate();
        }
        catch (ArgumentException e)
        {
            throw new TrainConfigException(e.Message);
        }
        CheckTensorParallel(config, model);
        CheckSequenceParallel(config, model);
        CheckPipeline(config, model);
        if (dataset.VocabSize > model.VocabSize)
        {
            throw new TrainConfigException($"the data's vocabulary ({dataset.VocabSize}) is larger than model '{model.Name}''s ({model.VocabSize}); pick a model with a vocabulary of at least {dataset.VocabSize}");
        }
        if (config.Seq > model.ContextLength)
        {
            throw new TrainConfigException($"--seq {config.Seq} is longer than model '{model.Name}''s context of {model.ContextLength}; give --seq {model.ContextLength} or less");
        }
        if (dataset.Length < config.Seq + 1)
        {
            throw new TrainConfigException($"the data has {dataset.Length} tokens, fewer than one window of --seq {config.Seq} + 1");
        }
        var footprint = Estimate(model, config);
        long? limit = config.DeviceMemoryBytes ?? device.Allocator.Stats.LimitBytes;
        // In chunks the model states need not fit on the device: the engine keeps the budget and says when it cannot.
        if (limit is { } l && footprint.TotalBytes > l && !config.UsesChunks)
        {
            throw new TrainConfigException(
                $"model '{model.Name}' needs about {Mib(footprint.TotalBytes)} per rank (parameters {Mib(footprint.ParameterBytes)}, gradients {Mib(footprint.GradientBytes)}, " +
                $"optimizer {Mib(footprint.OptimizerBytes)}, activations {Mib(footprint.ActivationBytes)}) but the device limit is {Mib(l)}; " +
                "use a smaller --batch or --seq, --checkpoint-activations, more --dp ranks, --precision bf16, or a larger --device-memory");
        }
        int rows = config.Batch / config.Dp;
        return new Job(config, model, dataset, resume, rows, rows / config.GradAccum);
    }

    /// <summary>What tensor parallelism cannot split or does not combine with yet, refused before any work.</summary>
    private static void CheckTensorParallel(TrainConfig config, ModelConfig model)
    {
        if (config.TpMode != TensorParallelMode.OneD)
        {
            CheckGrid(config, model);
            return;
        }
        if (TensorParallelLayout.Problem(model, config.Tp) is { } problem)
        {
            throw new TrainConfigException(problem);
        }
        if (config.Tp == 1)
        {
            return;
        }
        if (config.UsesChunks)
        {
            string what = config.Zero >= 2 ? $"--zero {config.Zero}" : $"--offload {config.Offload}";
            throw new TrainConfigException($"--tp {config.Tp} and {what} do not run together yet; use --tp 1 with {what}, or --tp {config.Tp} with --zero 0 or 1 and no --offload");
        }
        if (config.Optimizer is OptimizerKind.Lamb or OptimizerKind.Lars)
        {
            // Their trust ratios are norms of whole tensors, which a tp rank holds only a shard of.
            throw new TrainConfigException($"--tp {config.Tp} and --optimizer {config.Optimizer.ToString().ToLowerInvariant()} do not run together yet (per-tensor trust ratios need whole-tensor norms); use adamw or sgd");
        }
    }

    /// <summary>What sequence parallelism cannot split or does not combine with yet, refused before any work.</summary>
    private static void CheckSequenceParallel(TrainConfig config, ModelConfig model)
    {
        if (config.Sp == 1)
        {
            return;
        }
        // ZeRO-1 with sp runs on the pipeline path (Trainer.Pipeline.cs), which partitions over the dp × sp replicas.
        if (config.Zero >= 2 || config.UsesChunks)
        {
            string what = config.Zero >= 1 ? $"--zero {config.Zero}" : $"--offload {config.Offload}";
            throw new TrainConfigException($"--sp {config.Sp} and {what} do not run together yet; use --zero 0 or 1 and no --offload with sequence parallelism");
        }
        // Under tp each rank attends with its H/tp heads: Ulysses re-shards those over sp.
        if (Transformer.SequenceParallelOptions.Problem(model, config.Sp, config.SpMode, config.Seq, config.Tp) is { } problem)
        {
            throw new TrainConfigException(problem);
        }
    }

    /// <summary>What the chunked path (ZeRO 2/3, offload) does not do yet, refused before any work.</summary>
    private static void CheckChunkedConfig(TrainConfig config)
    {
        string what = config.Zero >= 2 ? $"--zero {config.Zero}" : $"--offload {config.Offload}";
        if (config.Optimizer != OptimizerKind.AdamW)
        {
            throw new TrainConfigException($"{what} updates with AdamW (on the device or, for host chunks, the CPU); for --optimizer {config.Optimizer.ToString().ToLowerInvariant()} use --zero 0 or 1 without --offload");
        }
        if (config.Precision == Precision.Fp16)
        {
            throw new TrainConfigException($"{what} trains in fp32 or bf16 (fp16 needs dynamic loss scaling, which the chunked path does not do); use --precision bf16");
        }
        if (config.InitDir is not null)
        {
            throw new TrainConfigException($"{what} does not start from a Hugging Face directory yet (--init); start with --zero 0 or 1, write a checkpoint with --out, then --resume it with {what}");
        }
    }

    private static ModelConfig ResolveModel(TrainConfig config, int vocabSize)
    {
        if (config.InitDir is { } dir)
        {
            return HuggingFace.ReadConfig(dir);
        }
        try
        {
            return ModelConfig.Named(config.Model, vocabSize);
        }
        catch (ArgumentException e)
        {
            throw new TrainConfigException(e.Message);
        }
    }

    private static DType ComputeDType(Precision precision) => precision switch
    {
        Precision.Bf16 => DType.BF16,
        Precision.Fp16 => DType.F16,
        _ => DType.F32,
    };

    private static string Mib(long bytes) => $"{bytes / (1024.0 * 1024.0):F1} MiB";

    private static TrainEnd RunRank(Job job, IDevice device, ICommunicator? comm, ITrainingObserver observer, CancellationToken cancellationToken)
    {
        var config = job.Config;
        if (config.TpMode != TensorParallelMode.OneD)
        {
            return RunGridRank(job, device, comm!, observer, cancellationToken);
        }
        if (UsesPipelinePath(config))
        {
            return RunPipelineRank(job, device, comm!, observer, cancellationToken);
        }
        var ops = new Ops(device);
        // The world's rank 0 reports and writes checkpoints; data rows go by the dp coordinate.
        int worldRank = comm?.Rank ?? 0;
        using var mesh = comm is not null && (config.Tp > 1 || config.Sp > 1) ? new DeviceMesh(comm, config.Dp, config.Tp, 1, config.Sp) : null;
        // The ranks that average gradients: the world without tp, the dp group (when more than one) with it. Under sp
        // the replicas of a parameter (or of a tp shard) are the dp × sp ranks sharing its tp coordinate.
        var dpComm = GradientReplicas(config, mesh, comm);
        var tpComm = config.Tp > 1 ? mesh?.TpGroup : null;
        var spComm = config.Sp > 1 ? mesh?.SpGroup : null;
        int rank = mesh?.DpRank ?? worldRank;
        int dp = config.Dp;
        var computeDType = ComputeDType(config.Precision);
        var optimizerOptions = new OptimizerOptions
        {
            Kind = config.Optimizer,
            WeightDecay = config.WeightDecay,
            Clip = config.Clip,
            Precision = config.Precision,
        };
        // ZeRO 2/3 and offload: the parameters, gradients and optimizer states live in the engine's chunks.
        ZeroEngine? engine = null;
        Func<Nn.ParameterStore, Nn.IParameterBacking>? backing = null;
        if (config.UsesChunks)
        {
            backing = declared => engine = new ZeroEngine(ops, declared, TransformerModel.VocabularyParameters(job.Model),
                TransformerModel.SharedParameters(job.Model), comm, computeDType, new ZeroEngineOptions
                {
                    Stage = Math.Max(2, config.Zero),
                    Offload = config.Offload,
                    Optimizer = optimizerOptions,
                    HostLimitBytes = config.HostMemoryBytes,
                    NvmeDirectory = config.NvmeDir,
                });
        }
        using var model = new TransformerModel(ops, job.Model, new TransformerOptions
        {
            ComputeDType = computeDType,
            CheckpointActivations = config.CheckpointActivations,
            Backing = backing,
            TensorParallel = tpComm,
            SequenceParallel = spComm is null ? null : new SequenceParallelOptions(spComm, config.SpMode),
            SequenceParallelRegions = config.SpMode == SequenceParallelMode.SplitGather,
        });
        using var engineScope = engine;
        var store = model.Parameters;
        model.Initialize(config.Seed);
        if (config.InitDir is { } initDir && job.ResumeDir is null)
        {
            if (tpComm is null)
            {
                HuggingFace.LoadWeights(initDir, store, ops);
            }
            else
            {
                LoadShardsOfWeights(initDir, job.Model, store, ops, tpComm);
            }
        }
        // ZeRO-1 with one rank is plain training: the partition exists only when there is something to split.
        var partition = config.Zero == 1 && engine is null && comm is not null && dp > 1 ? new ZeroPartition(store, dp) : null;
        Func<double, double>? sumAcrossRanks = partition is not null ? v => DataParallel.SumScalar(comm!, ops, v) : null;
        using var optimizer = engine is not null ? null
            : tpComm is not null ? TensorParallelOptimizer(ops, job.Model, store, optimizerOptions, tpComm)
            : new Optimizer(ops, store, optimizerOptions, partition?.Shard(rank), sumAcrossRanks);
        optimizer?.SyncMasterFromParams();
        var schedule = new LearningRateSchedule(config.Schedule, config.LearningRate, config.WarmupSteps, config.Steps);
        var loader = new BatchLoader(job.Dataset, config.Batch, config.Seq, config.Shuffle, config.Seed);
        var log = new RunLog(job, comm, observer);
        long startStep = 1;
        if (job.ResumeDir is { } resumeDir)
        {
            CheckpointState state;
            if (engine is not null)
            {
                // Every rank reads the whole tensors and keeps its shards.
                var (modelNames, optimizerNames) = engine.CheckpointNames();
                var parameterNames = modelNames.Select(n => n.Name).ToHashSet(StringComparer.Ordinal);
                state = Checkpoint.LoadHost(resumeDir, job.Model, modelNames, optimizerNames, (modelFile, optimizerFile) =>
                    engine.LoadFullState((name, shape, values) => (parameterNames.Contains(name) ? modelFile : optimizerFile).ReadInto(name, shape, values)));
            }
            else if (partition is not null)
            {
                // The checkpoint holds the whole state: load it into full-size temporaries, keep this rank's shard.
                using var full = new ZeroFullState(ops, store, optimizer!);
                state = Checkpoint.Load(resumeDir, job.Model, ModelTensors(store, full.StateTensors), OptimizerTensors(full.StateTensors), ops);
                full.ScatterToOptimizer();
                if (full.Master is { } master)
                {
                    // Every parameter, not only the owned ones, is the rounding of its checkpointed master.
                    ops.Cast(master, store.Params);
                }
            }
            else if (tpComm is not null)
            {
                // The checkpoint holds full tensors: load them whole, keep this rank's shards.
                using var full = new TensorParallelFullState(ops, job.Model, store, optimizer!);
                state = Checkpoint.Load(resumeDir, job.Model, full.ModelTensors, full.OptimizerTensors, ops);
                full.Scatter(tpComm.Rank, tpComm.Size);
            }
            else
            {
                state = Checkpoint.Load(resumeDir, job.Model, ModelTensors(store, optimizer!.StateTensors), OptimizerTensors(optimizer.StateTensors), ops);
            }
            startStep = log.Resume(state, resumeDir, loader, optimizer, computeDType);
        }
        if (dpComm is not null && computeDType == DType.F32 && engine is null)
        {
            // Every rank built the same weights from the same seed and files; the broadcast makes it a guarantee.
            // (16-bit runs keep fp32 masters that are equal by the same construction and are not re-derived.)
            // Under tp the replicas of one shard are the dp group: shards differ between tp ranks.
            DataParallel.BroadcastParameters(dpComm, store.Params);
        }
        using var bucketer = dpComm is not null && engine is null ? new GradientBucketer(dpComm, store.Grads) : null;
        if (engine is not null && rank == 0)
        {
            var z = engine.Stats;
            observer.OnMessage($"ZeRO-{engine.Options.Stage}, offload {config.Offload}: {engine.ChunkCount} chunks; rank 0 holds optimizer states of {Mib(z.DeviceStateBytes)} on the device, {Mib(z.HostBytes)} in host memory, {Mib(z.NvmeBytes)} on NVMe");
        }

        if (partition is not null)
        {
            long held = (long)MaxScalar(comm!, ops, optimizer!.StateBytesHeld);
            long whole = Optimizer.StateBytes(optimizer!.Options, store.Count, store.DType);
            if (rank == 0)
            {
                observer.OnMessage($"ZeRO-1: optimizer state {Mib(held)} per rank at most ({Mib(whole)} unsharded) over {dp} ranks");
            }
        }
        if (worldRank == 0)
        {
            observer.OnStart(new TrainStart(job.Model.Name, job.Model.ParameterCount, device.Id.ToString(), dp, job.Dataset.EntropyRateNats,
                config.Steps, config.Batch, config.Seq, job.Dataset.Description, config.Precision.ToString().ToLowerInvariant(),
                config.Optimizer.ToString().ToLowerInvariant(), startStep)
            {
                Tp = config.Tp,
                Sp = config.Sp,
                SpMode = SequenceParallelOptions.ModeName(config.SpMode),
                Zero = config.Zero,
                Offload = config.Offload.ToString(),
            });
        }

        // Under sp each rank takes its tokens (zig-zag or contiguous) of its replica's rows: Tl = Seq/sp per row.
        var batches = new MicroBatches(job, rank, spComm is null ? null : Nn.SequenceParallelContext.Positions(config.Seq, config.Sp, spComm.Rank, config.SpMode));
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
                // Under sp a rank's gradients are its share of the replica's (they sum over sp to it), but the
                // all-reduce averages over dp × sp ranks: scaling by sp makes that average the dp mean.
                double gradScale = (optimizer?.LossScale ?? 1) * config.Sp / config.GradAccum;
                if (bucketer is not null && micro == config.GradAccum - 1)
                {
                    bucketer.BeginBackward();
                    model.Backward(gradScale, bucketer.GradientsReadyFrom);
                    bucketer.FinishBackward();
                }
                else
                {
                    model.Backward(gradScale);
                }
            }
            double loss = lossSum / config.GradAccum;
            if (dpComm is not null)
            {
                // Every tp rank of a replica has the same loss: averaging over the dp group is the global mean.
                loss = DataParallel.AverageScalar(dpComm, ops, loss);
            }
            double lr = schedule.At(step);
            var outcome = engine is not null ? engine.Step(lr, log.Updates + 1) : optimizer!.Step(lr, log.Updates + 1);
            if (engine is not null && step == startStep && rank == 0 && engine.PlanDescription is { } plan)
            {
                observer.OnMessage(plan);
            }
            if (log.Applied(step, outcome) && partition is not null)
            {
                // Each rank updated only its shard: the owners hand theirs to everyone.
                foreach (var shard in partition.Shards.Where(s => !s.IsEmpty))
                {
                    comm!.Broadcast(store.Params.View(shard.Start, new Shape(checked((int)shard.ElementCount))), root: shard.Rank);
                }
            }
            log.EndStep(device, step, loss, lr, outcome);
            if (log.CheckpointDue(step, out string outDir))
            {
                CheckpointState StateAt(IReadOnlyDictionary<string, double> optimizerScalars) => log.State(step, loader, optimizerScalars);
                if (engine is not null)
                {
                    // The shards are gathered tensor by tensor into the same layout-independent files.
                    if (engine.GatherFullState() is var (modelTensors, optimizerTensors))
                    {
                        var scalars = new Dictionary<string, double> { ["loss_scale"] = 1, ["clean_steps"] = 0 };
                        log.Written(Checkpoint.SaveHost(outDir, job.Model, modelTensors, optimizerTensors, StateAt(scalars)));
                    }
                }
                else if (tpComm is not null)
                {
                    // The replica at dp 0 (sp 0) gathers full tensors over its tp group; the world's rank 0 (dp 0, sp 0, tp 0) writes them.
                    if (rank == 0 && (mesh?.SpRank ?? 0) == 0)
                    {
                        using var full = new TensorParallelFullState(ops, job.Model, store, optimizer!);
                        full.Gather(tpComm);
                        if (worldRank == 0)
                        {
                            log.Written(Checkpoint.Save(outDir, job.Model, full.ModelTensors, full.OptimizerTensors, StateAt(optimizer!.ScalarState), ops));
                        }
                    }
                }
                else
                {
                    using var full = partition is not null ? new ZeroFullState(ops, store, optimizer!) : null;
                    full?.Gather(comm, partition!);
                    var stateTensors = full?.StateTensors ?? optimizer!.StateTensors;
                    if (worldRank == 0)
                    {
                        log.Written(Checkpoint.Save(outDir, job.Model, ModelTensors(store, stateTensors), OptimizerTensors(stateTensors), StateAt(optimizer!.ScalarState), ops));
                    }
                }
                comm?.Barrier();
            }
        }
        // Model states of this rank: the parameter and gradient slabs and the optimizer's named states (a ZeRO-1 rank
        // holds only its shard of the latter).
        double modelStateBytes = optimizer is not null
            ? store.Params.SizeInBytes + store.Grads.SizeInBytes + optimizer.StateTensors.Sum(s => s.Tensor.SizeInBytes)
            : engine!.ModelStateBytes;
        var tiers = engine?.Stats ?? default;
        if (engine is not null && tiers.NvmeBytes > 0 && rank == 0)
        {
            observer.OnMessage($"NVMe: {engine.PrefetchedReads} parameter fetches of rank 0 were read from disk while the layer before computed");
        }
        double hostBytes = tiers.HostBytes, nvmeBytes = tiers.NvmeBytes, trafficBytes = tiers.TierTrafficBytes;
        if (comm is not null)
        {
            hostBytes = DataParallel.SumScalar(comm, ops, hostBytes);
            nvmeBytes = DataParallel.SumScalar(comm, ops, nvmeBytes);
            trafficBytes = DataParallel.SumScalar(comm, ops, trafficBytes);
        }
        return log.End(ops, engine?.PeakDeviceBytes ?? device.Allocator.Stats.PeakBytesInUse, modelStateBytes, end => end with
        {
            HostBytes = (long)hostBytes,
            NvmeBytes = (long)nvmeBytes,
            TierTrafficBytes = (long)trafficBytes,
        });
    }

    /// <summary>The model's tensors by Hugging Face name as a checkpoint holds them (fp32: the parameters; 16-bit: the fp32 master copies).</summary>
    private static List<NamedTensor> ModelTensors(Nn.ParameterStore store, IReadOnlyList<(string Name, Tensor Tensor)> stateTensors)
    {
        var masters = stateTensors.Where(s => s.Name.EndsWith(".master", StringComparison.Ordinal))
            .ToDictionary(s => s.Name[..^".master".Length], s => s.Tensor, StringComparer.Ordinal);
        return [.. store.Infos.Select((info, i) => new NamedTensor(info.Name, masters.TryGetValue(info.Name, out var m) ? m : store.Param(i)))];
    }

    private static List<NamedTensor> OptimizerTensors(IReadOnlyList<(string Name, Tensor Tensor)> stateTensors) =>
        [.. stateTensors.Where(s => !s.Name.EndsWith(".master", StringComparison.Ordinal)).Select(s => new NamedTensor(s.Name, s.Tensor))];

    /// <summary>
    /// rows × seq tokens from <paramref name="first"/> of the global batch into <paramref name="local"/>: whole rows,
    /// or under sp each row's tokens at <paramref name="positions"/> (rows × Tl).
    /// </summary>
    private static void TakeTokens(int[] global, int first, int rows, int seq, int[]? positions, int[] local)
    {
        if (positions is null)
        {
            global.AsSpan(first, rows * seq).CopyTo(local);
            return;
        }
        for (int r = 0; r < rows; r++)
        {
            for (int i = 0; i < positions.Length; i++)
            {
                local[(r * positions.Length) + i] = global[first + (r * seq) + positions[i]];
            }
        }
    }

    private static void Upload(Ops ops, ReadOnlySpan<int> tokens, double[] scratch, Tensor dst)
    {
        for (int i = 0; i < tokens.Length; i++)
        {
            scratch[i] = tokens[i];
        }
        ops.Upload(scratch, dst);
    }

    private static double MaxScalar(ICommunicator comm, Ops ops, double value)
    {
        using var t = ops.FromArray([value], new Shape(1), DType.F64);
        comm.AllReduce(t, t, ReduceOp.Max);
        return ops.ToDoubleArray(t)[0];
    }

    private sealed class NullObserver : ITrainingObserver
    {
        public static readonly NullObserver Instance = new();

        public void OnStart(TrainStart start)
        {
        }

        public void OnStep(TrainStep step)
        {
        }

        public void OnMessage(string message)
        {
        }

        public void OnEnd(TrainEnd end)
        {
        }
    }
}
