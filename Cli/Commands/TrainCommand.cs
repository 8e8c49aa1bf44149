using System.CommandLine;
using System.Globalization;
using Hal.Cli.Training;
using Hal.Collectives.Mpi;
using Hal.Models.Training;
using Hal.Models.Transformer;
using Hal.Models.Zero;

namespace Hal.Cli.Commands;

/// <summary>
/// <c>hal train</c>: trains a GPT-2 or LLaMA model on any backend, on one device or data-parallel over ranks (in this
/// process, or one rank per process under mpirun), and reports the loss curve as a progress line, JSON lines
/// (<c>--json-log</c>) and a plot (<c>--plot</c>). Every option is checked before any work.
/// </summary>
internal static class TrainCommand
{
    public static Command Create(GlobalOptions globals)
    {
        var d = new TrainConfig();
        string Inv(double x) => x.ToString(CultureInfo.InvariantCulture);
        // Defaults are applied from TrainConfig in the action (not by DefaultValueFactory), so that the record stays the
        // one place they live and an option's absence is visible (--model with --init, --dp under mpirun).
        var model = new Option<string?>("--model") { Description = $"Model to train: {string.Join(", ", ModelConfig.Names)} (default {d.Model}).", HelpName = "NAME" };
        var init = new Option<string?>("--init") { Description = "Start from a Hugging Face directory (config.json + model.safetensors) instead of --model.", HelpName = "DIR" };
        var backend = new Option<string?>("--backend") { Description = "Backend to train on; rank i uses its device i mod the device count (default cpu).", HelpName = "NAME" };
        var dp = new Option<int?>("--dp") { Description = $"Data-parallel ranks (default {d.Dp}; under mpirun the world size).", HelpName = "N" };
        var tp = new Option<int?>("--tp") { Description = $"Tensor-parallel ranks per data-parallel replica: heads, MLP units and vocabulary split over them; the job runs on dp × tp ranks (default {d.Tp}).", HelpName = "N" };
        var tpMode = Choice("--tp-mode", TrainArguments.TpModes.Keys, "How the tp ranks split the model: 1d (Megatron: heads, MLP units and vocabulary), 2d (a q×q grid, --tp q²), 2.5d (q×q×d, --tp q²·d) or 3d (a c×c×c cube, --tp c³); the grids block-partition activations and weights (default 1d).");
        var tpDepth = new Option<int?>("--tp-depth") { Description = "2.5d's depth d (--tp = q²·d; default: the d ≥ 2 with the largest q).", HelpName = "D" };
        var sp = new Option<int?>("--sp") { Description = $"Sequence-parallel ranks per data-parallel replica: each holds seq/sp tokens of every sequence; the job runs on dp × tp × sp ranks; with --sp-mode split-gather give 1 or the --tp value, which uses the tp ranks and no extra ones (default {d.Sp}).", HelpName = "N" };
        var spMode = Choice("--sp-mode", TrainArguments.SpModes.Keys, $"How the sequence is split: ring (--sp ranks; key/value blocks pass around, zig-zag placement; seq a multiple of 2·sp), ulysses (--sp ranks; all-to-all to whole sequences of heads; heads a multiple of sp), or split-gather (Megatron sequence parallelism over the --tp ranks, no extra ranks: norms and residuals hold 1/tp of the tokens, gathered around attention and the MLP; needs --tp 2 or more, --sp 1 or equal to --tp, and batch/dp/grad-accum × seq a multiple of tp) (default {TrainArguments.Name(d.SpMode)}).");
        var pp = new Option<int?>("--pp") { Description = $"Pipeline stages per data-parallel replica: the blocks split into contiguous chunks, activations passed between stages; the job runs on dp × tp × pp × sp ranks (default {d.Pp}).", HelpName = "N" };
        var ppSchedule = Choice("--pp-schedule", TrainArguments.PpSchedules.Keys, $"Pipeline schedule: gpipe (all forwards, then all backwards), 1f1b (one forward, one backward: at most pp micro-batches of activations per stage) or interleaved (1f1b over --pp-chunks virtual chunks per stage, a smaller bubble; microbatches a multiple of pp) (default {TrainArguments.Name(d.PpSchedule)}).");
        var ppChunks = new Option<int?>("--pp-chunks") { Description = $"Model chunks per pipeline stage (2 or more with --pp-schedule interleaved) (default {d.PpChunks}).", HelpName = "V" };
        var microBatches = new Option<int?>("--microbatches") { Description = "Micro-batches per step per data-parallel replica, each batch/(dp × M) sequences (default: --grad-accum; at --pp 1 it is gradient accumulation).", HelpName = "M" };
        var zero = new Option<int?>("--zero") { Description = $"ZeRO stage: 0 off, 1 shards optimizer states over the ranks holding the same parameters (dp, and sp; per pipeline stage and tp shard), 2 also gradients, 3 also parameters (gathered per layer) (default {d.Zero}).", HelpName = "0|1|2|3" };
        var offload = new Option<OffloadSpec?>("--offload")
        {
            Description = "Model states off the device: none, static:PARAMS,OPTIM (fractions offloaded) or auto (a warm-up step measures memory, then the budget is filled) (default none).",
            HelpName = "none|static:P,O|auto",
            CustomParser = result =>
            {
                try
                {
                    return OffloadSpec.Parse(result.Tokens.Count > 0 ? result.Tokens[0].Value : "");
                }
                catch (FormatException e)
                {
                    result.AddError(e.Message);
                    return null;
                }
            },
        };
        var nvmeDir = new Option<string?>("--nvme-dir") { Description = "With --offload: a directory for optimizer-state chunks beyond --host-memory.", HelpName = "DIR" };
        var hostMemory = new Option<long?>("--host-memory")
        {
            Description = "With --offload: bytes of host memory the optimizer states may take, e.g. 256MiB (default: no limit).",
            HelpName = "SIZE",
            CustomParser = result =>
            {
                string text = result.Tokens.Count > 0 ? result.Tokens[0].Value : "";
                if (ByteSize.TryParse(text, out long bytes, out string error))
                {
                    return bytes;
                }
                result.AddError($"--host-memory: {error}");
                return null;
            },
        };
        var precision = Choice("--precision", TrainArguments.Precisions.Keys, $"Compute precision; bf16/fp16 keep fp32 master weights (default {TrainArguments.Name(d.Precision)}).");
        var optimizer = Choice("--optimizer", TrainArguments.Optimizers.Keys, $"Optimizer (default {TrainArguments.Name(d.Optimizer)}).");
        var lr = new Option<double?>("--lr") { Description = $"Peak learning rate (default {Inv(d.LearningRate)}).", HelpName = "X" };
        var schedule = Choice("--schedule", TrainArguments.Schedules.Keys, $"Learning-rate schedule: constant, or cosine (linear warm-up, then decay to 10% of the peak) (default {d.Schedule.ToString().ToLowerInvariant()}).");
        var warmup = new Option<int?>("--warmup") { Description = $"Warm-up steps (default {d.WarmupSteps}).", HelpName = "N" };
        var weightDecay = new Option<double?>("--weight-decay") { Description = $"Weight decay on tensors of rank ≥ 2 (default {Inv(d.WeightDecay)}).", HelpName = "X" };
        var clip = new Option<double?>("--clip") { Description = $"Global gradient-norm clipping threshold; 0 turns it off (default {Inv(d.Clip)}).", HelpName = "X" };
        var steps = new Option<int?>("--steps") { Description = $"Optimizer steps (default {d.Steps}).", HelpName = "N" };
        var batch = new Option<int?>("--batch") { Description = $"Global batch in sequences, all ranks together; divisible by dp × grad-accum (default {d.Batch}).", HelpName = "N" };
        var seq = new Option<int?>("--seq") { Description = $"Sequence length, at most the model's context (default {d.Seq}).", HelpName = "N" };
        var gradAccum = new Option<int?>("--grad-accum") { Description = $"Micro-batches per step per rank (default {d.GradAccum}).", HelpName = "N" };
        var seed = new Option<ulong?>("--seed") { Description = $"Seed of the initial weights, the synthetic corpus and shuffling (default {d.Seed}).", HelpName = "N" };
        var data = new Option<string?>("--data") { Description = $"'synthetic' (a corpus of known entropy), a text file (GPT-2 BPE) or a .bin token file (default {d.Data}).", HelpName = "synthetic|PATH" };
        var shuffle = new Option<bool>("--shuffle") { Description = "Visit training windows in a seeded random order." };
        var outDir = new Option<string?>("--out") { Description = "Write safetensors checkpoints (Hugging Face names) to this folder.", HelpName = "DIR" };
        var checkpointEvery = new Option<int?>("--checkpoint-every") { Description = "With --out: a checkpoint every N steps as well as at the end (default 0: only at the end).", HelpName = "N" };
        var resume = new Option<string?>("--resume") { Description = "Continue from a checkpoint folder written by --out.", HelpName = "DIR" };
        var checkpointActivations = new Option<bool>("--checkpoint-activations") { Description = "Recompute each block's activations in backward instead of keeping them (less memory, more compute)." };
        var logEvery = new Option<int?>("--log-every") { Description = $"Steps between progress lines when the output is not a terminal (default {d.LogEvery}).", HelpName = "N" };
        var jsonLog = new Option<string?>("--json-log") { Description = "Write JSON lines: a start line, one per step, an end line (see docs/training.md).", HelpName = "FILE" };
        var plot = new Option<string?>("--plot") { Description = "Write the loss curve (with the corpus entropy when known) to this PNG at the end.", HelpName = "FILE.png" };
        var command = new Command("train", "Train a GPT-2 or LLaMA model on one device or over data, tensor, pipeline and sequence-parallel ranks; on the synthetic corpus the loss should approach its entropy.")
        {
            model, init, backend, dp, tp, tpMode, tpDepth, pp, ppSchedule, ppChunks, microBatches, sp, spMode, zero, offload, nvmeDir, hostMemory, precision, optimizer, lr, schedule, warmup, weightDecay, clip, steps, batch, seq, gradAccum, seed,
            data, shuffle, outDir, checkpointEvery, resume, checkpointActivations, logEvery, jsonLog, plot,
        };
        command.SetAction(parse =>
        {
            var args = new TrainArguments
            {
                Config = d with
                {
                    Model = parse.GetValue(model) ?? d.Model,
                    InitDir = parse.GetValue(init),
                    DeviceMemoryBytes = parse.GetValue(globals.DeviceMemory),
                    Dp = parse.GetValue(dp) ?? d.Dp,
                    Tp = parse.GetValue(tp) ?? d.Tp,
                    TpMode = parse.GetValue(tpMode) is { } tm ? TrainArguments.TpModes[tm] : d.TpMode,
                    TpDepth = parse.GetValue(tpDepth) ?? d.TpDepth,
                    Sp = parse.GetValue(sp) ?? d.Sp,
                    Pp = parse.GetValue(pp) ?? d.Pp,
                    PpSchedule = parse.GetValue(ppSchedule) is { } ps ? TrainArguments.PpSchedules[ps] : d.PpSchedule,
                    PpChunks = parse.GetValue(ppChunks) ?? d.PpChunks,
                    MicroBatches = parse.GetValue(microBatches),
                    SpMode = parse.GetValue(spMode) is { } m ? TrainArguments.SpModes[m] : d.SpMode,
                    Zero = parse.GetValue(zero) ?? d.Zero,
                    Offload = parse.GetValue(offload) ?? OffloadSpec.None,
                    NvmeDir = parse.GetValue(nvmeDir),
                    HostMemoryBytes = parse.GetValue(hostMemory),
                    Precision = parse.GetValue(precision) is { } p ? TrainArguments.Precisions[p] : d.Precision,
                    Optimizer = parse.GetValue(optimizer) is { } o ? TrainArguments.Optimizers[o] : d.Optimizer,
                    LearningRate = parse.GetValue(lr) ?? d.LearningRate,
                    Schedule = parse.GetValue(schedule) is { } s ? TrainArguments.Schedules[s] : d.Schedule,
                    WarmupSteps = parse.GetValue(warmup) ?? d.WarmupSteps,
                    WeightDecay = parse.GetValue(weightDecay) ?? d.WeightDecay,
                    Clip = parse.GetValue(clip) ?? d.Clip,
                    Steps = parse.GetValue(steps) ?? d.Steps,
                    Batch = parse.GetValue(batch) ?? d.Batch,
                    Seq = parse.GetValue(seq) ?? d.Seq,
                    GradAccum = parse.GetValue(gradAccum) ?? d.GradAccum,
                    Seed = parse.GetValue(seed) ?? d.Seed,
                    Data = parse.GetValue(data) ?? d.Data,
                    Shuffle = parse.GetValue(shuffle),
                    OutDir = parse.GetValue(outDir),
                    CheckpointEvery = parse.GetValue(checkpointEvery) ?? d.CheckpointEvery,
                    ResumeDir = parse.GetValue(resume),
                    CheckpointActivations = parse.GetValue(checkpointActivations),
                    LogEvery = parse.GetValue(logEvery) ?? d.LogEvery,
                },
                Backend = parse.GetValue(backend) ?? "cpu",
                ModelGiven = parse.GetValue(model) is not null,
                DpGiven = parse.GetValue(dp) is not null,
                JsonLog = parse.GetValue(jsonLog),
                Plot = parse.GetValue(plot),
            };
            return Run(globals, parse, args);
        });
        return command;
    }

    /// <summary>Exit code of a run stopped by Ctrl+C (128 + SIGINT, as shells report it).</summary>
    internal const int InterruptedExitCode = 130;

    private static int Run(GlobalOptions globals, ParseResult parse, TrainArguments args)
    {
        var stdout = parse.InvocationConfiguration.Output;
        using var interrupt = new CancellationTokenSource();
        // The first Ctrl+C asks the trainer to stop before the next step (the JSON-lines log keeps every step so far); a
        // second one ends the process as usual.
        ConsoleCancelEventHandler onCtrlC = (_, e) =>
        {
            if (!interrupt.IsCancellationRequested)
            {
                e.Cancel = true;
                interrupt.Cancel();
            }
        };
        bool console = ReferenceEquals(stdout, Console.Out);
        if (console)
        {
            Console.CancelKeyPress += onCtrlC;
        }
        try
        {
            return Run(globals, parse, args, stdout, interrupt.Token);
        }
        catch (OperationCanceledException) when (interrupt.IsCancellationRequested)
        {
            parse.InvocationConfiguration.Error.WriteLine("hal: training interrupted (Ctrl+C)");
            return InterruptedExitCode;
        }
        finally
        {
            if (console)
            {
                Console.CancelKeyPress -= onCtrlC;
            }
        }
    }

    private static int Run(GlobalOptions globals, ParseResult parse, TrainArguments args, TextWriter stdout, CancellationToken cancellationToken)
    {
        args = args.ResolveSplitGather();
        int? worldSize = null;
        if (MpiCommunicator.IsUnderMpirun)
        {
            worldSize = RankDevices.RequireMpiWorld("hal train under mpirun", null);
            if (!args.DpGiven)
            {
                // Under tp, pp and sp the world is dp × tp × pp × sp ranks: the replicas are what is left after those groups.
                int group = Math.Max(1, args.Config.Tp) * Math.Max(1, args.Config.Sp) * Math.Max(1, args.Config.Pp);
                args = args with { Config = args.Config with { Dp = worldSize.Value % group == 0 ? worldSize.Value / group : worldSize.Value } };
            }
        }
        args.Validate(worldSize);
        using var session = globals.OpenSession(parse);
        var b = session.Runtime.GetBackend(args.Backend);
        var probe = b.Probe();
        if (!probe.Available || probe.Devices.Count == 0)
        {
            throw new BackendUnavailableException(b.Name, probe.Reason ?? "it has no devices");
        }
        if (worldSize is null)
        {
            var devices = RankDevices.Open(session, b.Name, args.Config.Dp * args.Config.Tp * args.Config.Pp * args.Config.Sp);
            try
            {
                using var observers = Observers.Create(args, stdout, ConsoleProgressObserver.StdoutIsTerminal(stdout));
                RunTrainer(args.Config, devices, null, observers.Observer, cancellationToken);
            }
            finally
            {
                RankDevices.Dispose(devices);
            }
            return 0;
        }
        // One rank of an mpirun job: this process's device is rank mod the device count; rank 0 reports.
        int rank = int.Parse(Environment.GetEnvironmentVariable("OMPI_COMM_WORLD_RANK") ?? "0", NumberStyles.None, CultureInfo.InvariantCulture);
        using var device = b.Open(rank % probe.Devices.Count);
        using var world = MpiCommunicator.InitWorld(device);
        if (world.Size != worldSize)
        {
            throw new HalException($"MPI reports {world.Size} ranks but OMPI_COMM_WORLD_SIZE says {worldSize}");
        }
        using (var observers = world.Rank == 0 ? Observers.Create(args, stdout, interactive: false) : Observers.Silent())
        {
            RunTrainer(args.Config, [device], world, observers.Observer, cancellationToken);
        }
        return 0;
    }

    /// <summary>
    /// Replaces the trainer for the calls made in this asynchronous flow (tests check what the command hands over without
    /// training); null runs the real one.
    /// </summary>
    internal static readonly AsyncLocal<TrainerRun?> TrainerOverride = new();

    /// <summary>The trainer's entry point, as <see cref="TrainerOverride"/> takes it.</summary>
    internal delegate TrainEnd TrainerRun(TrainConfig config, IReadOnlyList<IDevice> devices, ICommunicator? world, ITrainingObserver observer, CancellationToken cancellationToken);

    /// <summary>The one call into the trainer.</summary>
    private static TrainEnd RunTrainer(TrainConfig config, IReadOnlyList<IDevice> devices, ICommunicator? world, ITrainingObserver observer, CancellationToken cancellationToken)
    {
        if (TrainerOverride.Value is { } run)
        {
            return run(config, devices, world, observer, cancellationToken);
        }
        return Trainer.Run(config, devices, world, observer, cancellationToken);
    }

    private static Option<string?> Choice(string name, IEnumerable<string> values, string description)
    {
        var option = new Option<string?>(name) { Description = description, HelpName = string.Join('|', values) };
        option.AcceptOnlyFromAmong([.. values]);
        return option;
    }
}
