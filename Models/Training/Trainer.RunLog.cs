using System.Diagnostics;
using Hal.Collectives;
using Hal.Models.Checkpoints;
using Hal.Models.Data;
using Hal.Models.Optim;
using Hal.Parallel;

namespace Hal.Models.Training;

public static partial class Trainer
{
    /// <summary>
    /// What every step loop (plain, pipeline, grid) records and reports the same way: the losses, updates and skipped
    /// steps, per-step time and traffic, the observer's step and checkpoint lines (from world rank 0), the checkpoint
    /// state, and the end of the run.
    /// </summary>
    private sealed class RunLog
    {
        private readonly Job _job;
        private readonly ICommunicator? _comm;
        private readonly ITrainingObserver _observer;
        private readonly StepTraffic _traffic;
        private readonly Stopwatch _runClock = Stopwatch.StartNew();
        private readonly Stopwatch _stepClock = new();
        private readonly int _tokensPerStep;

        /// <summary>Starts the run's clock; <paramref name="comm"/> is the rank's (counting) world, null on one device.</summary>
        public RunLog(Job job, ICommunicator? comm, ITrainingObserver observer)
        {
            _job = job;
            _comm = comm;
            _observer = observer;
            _traffic = new StepTraffic(comm);
            _tokensPerStep = job.Config.Batch * job.Config.Seq;
            Losses = new List<double>(job.Config.Steps);
        }

        /// <summary>The loss of every step so far (a resumed run starts with the checkpoint's).</summary>
        public List<double> Losses { get; }

        /// <summary>Optimizer updates applied (the AdamW bias-correction step).</summary>
        public long Updates { get; set; }

        /// <summary>Steps whose update was skipped (an Inf/NaN gradient under loss scaling).</summary>
        public long Skipped { get; private set; }

        /// <summary>Steps this run made.</summary>
        public long StepsRun { get; private set; }

        /// <summary>The checkpoint written last, or null.</summary>
        public string? LastCheckpoint { get; private set; }

        /// <summary>Whether this rank reports (world rank 0).</summary>
        public bool Reports => (_comm?.Rank ?? 0) == 0;

        /// <summary>
        /// Continues from a loaded checkpoint: the optimizer's scalars, the update count, the data position and the
        /// losses so far; 16-bit parameters become the rounding of the checkpoint's fp32 masters. Returns the next step.
        /// </summary>
        public long Resume(CheckpointState state, string directory, BatchLoader loader, Optimizer? optimizer, DType computeDType)
        {
            optimizer?.LoadScalarState(state.OptimizerScalars);
            Updates = state.OptimizerScalars.TryGetValue("updates", out double u) ? (long)u : state.Step;
            loader.Seek(state.BatchesDrawn);
            Losses.AddRange(state.Losses);
            if (computeDType != DType.F32)
            {
                optimizer?.SyncParamsFromMaster();
            }
            if (Reports)
            {
                _observer.OnMessage($"resumed from {directory} at step {state.Step}");
            }
            return state.Step + 1;
        }

        /// <summary>Marks the start of a step (its clock and traffic).</summary>
        public void BeginStep()
        {
            _stepClock.Restart();
            _traffic.BeginStep();
        }

        /// <summary>Counts the optimizer's outcome; true when the update was applied.</summary>
        public bool Applied(long step, StepOutcome outcome)
        {
            if (!outcome.Skipped)
            {
                Updates++;
                return true;
            }
            Skipped++;
            if (Reports)
            {
                _observer.OnMessage($"step {step}: a gradient was Inf/NaN; the update was skipped and the loss scale is now {outcome.LossScale}");
            }
            return false;
        }

        /// <summary>Ends a step: waits for the device, records loss and traffic, reports the step.</summary>
        public void EndStep(IDevice device, long step, double loss, double learningRate, StepOutcome outcome)
        {
            device.Synchronize();
            _traffic.EndStep();
            Losses.Add(loss);
            StepsRun++;
            if (Reports)
            {
                double tokensPerSec = _tokensPerStep / Math.Max(1e-9, _stepClock.Elapsed.TotalSeconds);
                _observer.OnStep(new TrainStep(step, loss, learningRate, tokensPerSec, outcome.GradNorm, outcome.Skipped, outcome.LossScale));
            }
        }

        /// <summary>Whether a checkpoint is due after <paramref name="step"/> (the last step, or every --checkpoint-every).</summary>
        public bool CheckpointDue(long step, out string outDir)
        {
            var config = _job.Config;
            outDir = config.OutDir ?? "";
            return config.OutDir is not null && (step == config.Steps || (config.CheckpointEvery > 0 && step % config.CheckpointEvery == 0));
        }

        /// <summary>The run's state after <paramref name="step"/>, for a checkpoint.</summary>
        public CheckpointState State(long step, BatchLoader loader, IReadOnlyDictionary<string, double> optimizerScalars)
        {
            var config = _job.Config;
            return new CheckpointState
            {
                Step = step,
                BatchesDrawn = loader.BatchesDrawn,
                Seed = config.Seed,
                Model = _job.Model.Name,
                Optimizer = config.Optimizer.ToString().ToLowerInvariant(),
                Precision = config.Precision.ToString().ToLowerInvariant(),
                Dp = config.Dp,
                OptimizerScalars = new Dictionary<string, double>(optimizerScalars) { ["updates"] = Updates },
                Losses = [.. Losses],
            };
        }

        /// <summary>Records and reports a checkpoint this rank wrote.</summary>
        public void Written(string directory)
        {
            LastCheckpoint = directory;
            _observer.OnMessage($"checkpoint written: {directory}");
        }

        /// <summary>
        /// The end of the run, with every rank's peak, this rank's model-state bytes summed over the ranks and the bytes
        /// per step; reported by world rank 0. Collective over the world.
        /// </summary>
        public TrainEnd End(Ops ops, long ownPeakBytes, double ownModelStateBytes, Func<TrainEnd, TrainEnd>? more = null)
        {
            long[] peaks = _comm is null ? [ownPeakBytes] : PerRank(_comm, ops, ownPeakBytes);
            double modelStateBytes = _comm is null ? ownModelStateBytes : DataParallel.SumScalar(_comm, ops, ownModelStateBytes);
            var (commPerStep, commPerStepMax) = _traffic.PerStep(ops);
            // The final loss is the mean of the last tenth of the steps: one step's loss is noisy.
            int k = Math.Max(1, Losses.Count / 10);
            double finalLoss = Losses.Count == 0 ? double.NaN : Losses.Skip(Losses.Count - k).Average();
            double tokensPerSec = StepsRun * (double)_tokensPerStep / Math.Max(1e-9, _runClock.Elapsed.TotalSeconds);
            var end = new TrainEnd(finalLoss, tokensPerSec, peaks.Max(), _job.Config.Steps, Skipped, _job.Dataset.EntropyRateNats, Losses, LastCheckpoint, _runClock.Elapsed)
            {
                ModelStateBytes = (long)modelStateBytes,
                CommunicationBytesPerStep = commPerStep,
                CommunicationBytesPerStepMax = commPerStepMax,
                PeakDeviceBytesPerRank = peaks,
            };
            end = more?.Invoke(end) ?? end;
            if (Reports)
            {
                _observer.OnEnd(end);
            }
            return end;
        }
    }

    /// <summary>
    /// The step's global batch and this rank's micro-batches of it: micro-batch k of the dp replica
    /// <paramref name="replica"/>'s rows, whole rows or, under sp, each row's tokens at <paramref name="positions"/>.
    /// </summary>
    private sealed class MicroBatches(Job job, int replica, int[]? positions)
    {
        private readonly int[] _globalInputs = new int[job.Config.Batch * job.Config.Seq];
        private readonly int[] _globalTargets = new int[job.Config.Batch * job.Config.Seq];
        private readonly int[] _inputs = new int[job.RowsPerMicro * (positions?.Length ?? job.Config.Seq)];
        private readonly int[] _targets = new int[job.RowsPerMicro * (positions?.Length ?? job.Config.Seq)];
        private readonly double[] _values = new double[job.RowsPerMicro * (positions?.Length ?? job.Config.Seq)];

        /// <summary>[rows per micro-batch, tokens per row on this rank].</summary>
        public Shape Shape { get; } = new(job.RowsPerMicro, positions?.Length ?? job.Config.Seq);

        /// <summary>Draws the step's global batch.</summary>
        public void Draw(BatchLoader loader) => loader.Next(_globalInputs, _globalTargets);

        /// <summary>Uploads micro-batch <paramref name="micro"/>'s ids and targets (I32 of <see cref="Shape"/>).</summary>
        public void Upload(Ops ops, int micro, Tensor ids, Tensor targets)
        {
            int seq = job.Config.Seq;
            int first = ((replica * job.RowsPerRank) + (micro * job.RowsPerMicro)) * seq;
            TakeTokens(_globalInputs, first, job.RowsPerMicro, seq, positions, _inputs);
            TakeTokens(_globalTargets, first, job.RowsPerMicro, seq, positions, _targets);
            Trainer.Upload(ops, _inputs, _values, ids);
            Trainer.Upload(ops, _targets, _values, targets);
        }
    }

    /// <summary>
    /// Bytes a rank sends per step, from the tally of its counting world: the steps after the first (the first may
    /// differ: buffers, warm-up), checkpoints excluded.
    /// </summary>
    private sealed class StepTraffic(ICommunicator? comm)
    {
        private readonly CommunicationTally? _tally = (comm as CountingCommunicator)?.Tally;
        private long _before, _first, _steady;
        private int _steps;

        public void BeginStep() => _before = _tally?.TotalBytes ?? 0;

        public void EndStep()
        {
            long bytes = (_tally?.TotalBytes ?? 0) - _before;
            if (++_steps == 1)
            {
                _first = bytes;
            }
            else
            {
                _steady += bytes;
            }
        }

        /// <summary>Bytes per step: the mean over the ranks and the most any rank sent. Collective over the world.</summary>
        public (double Mean, double Max) PerStep(Ops ops)
        {
            double own = _steps > 1 ? _steady / (double)(_steps - 1) : _first;
            return comm is null ? (own, own) : (DataParallel.SumScalar(comm, ops, own) / comm.Size, MaxScalar(comm, ops, own));
        }
    }
}
