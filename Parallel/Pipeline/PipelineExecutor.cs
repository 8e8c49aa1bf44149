using System.Collections.Concurrent;
using System.Diagnostics;

namespace Hal.Parallel.Pipeline;

// Legend: p stages, s this stage, m micro-batches, v local chunks per stage; local chunk k of stage s is model chunk k·p + s.

/// <summary>
/// Runs a <see cref="PipelineSchedule"/> on this rank: for each action, receive the input from the neighbour stage,
/// run the chunk, hand the result to the neighbour. Ranks of the pipeline group are the stages, in order.
/// </summary>
/// <remarks>
/// Deadlock: two neighbours in the steady 1F1B phase both send at once (an activation one way, a gradient the other),
/// so a send that waits for its receive (MPI's rendezvous protocol for large messages) would stall both. Sends are
/// therefore posted to one sender thread per executor and go out in schedule order, while this thread only ever
/// blocks in a receive. That cannot deadlock when (a) the schedules, run with sends that never block, finish, and
/// (b) on every link the sender's order of messages is the receiver's order of receives, so the sender thread never
/// waits on a message the receiver will only take after one queued behind it. Both are properties of the schedules
/// alone, and the tests check them for every schedule kind. Receives match on tags (unique per direction, micro-batch
/// and chunk), so even a transport that delivers out of order cannot hand a chunk another's tensor.
/// Timing: the stages start their clocks after a barrier; busy time is the time spent inside the stage's Forward and
/// Backward (the device synchronised before the clock stops); the step's wall time is the slowest stage's, from the
/// barrier to its last send delivered; a stage's bubble fraction is 1 − busy/wall over that shared interval.
/// </remarks>
public sealed class PipelineExecutor : IDisposable
{
    private readonly ICommunicator _group;
    private readonly IPipelineStage _stage;
    private readonly Ops _ops;
    private readonly BlockingCollection<(Tensor Tensor, int Peer, int Tag)> _outbox = [];
    private readonly Thread _sender;
    // An object, not a Lock: the drain waits on it with Monitor.Wait.
    private readonly object _pendingLock = new();
    private readonly Dictionary<int, Tensor> _local = [];
    private int _pending;
    private Exception? _sendError;
    private bool _disposed;

    /// <summary>Creates the executor for this rank's stage (stage = the rank in <paramref name="pipelineGroup"/>) and starts its sender thread.</summary>
    /// <exception cref="ArgumentNullException">An argument is null.</exception>
    public PipelineExecutor(ICommunicator pipelineGroup, IPipelineStage stage)
    {
        ArgumentNullException.ThrowIfNull(pipelineGroup);
        ArgumentNullException.ThrowIfNull(stage);
        _group = pipelineGroup;
        _stage = stage;
        _ops = new Ops(pipelineGroup.Device);
        _sender = new Thread(SendLoop)
        {
            IsBackground = true,
            Name = $"pipeline sender, stage {pipelineGroup.Rank}/{pipelineGroup.Size}",
        };
        _sender.Start();
    }

    /// <summary>
    /// Runs one step of <paramref name="schedule"/> (collective over the pipeline group: every stage runs its own
    /// schedule of the same kind and sizes; a barrier starts the step and an all-reduce of the timings ends it) and
    /// reports this stage's busy time, the step's wall time, every stage's bubble fraction and their mean.
    /// </summary>
    /// <exception cref="PipelineException">The schedule is for another stage, stage count or chunk count, or the stage returned null where a tensor has to be sent.</exception>
    /// <exception cref="CollectiveTimeoutException">A neighbour did not send in time.</exception>
    public PipelineStepReport Run(PipelineSchedule schedule)
    {
        ArgumentNullException.ThrowIfNull(schedule);
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (schedule.Stage != _group.Rank || schedule.Stages != _group.Size || schedule.ChunksPerStage != _stage.ChunkCount)
        {
            throw new PipelineException(
                $"schedule for stage {schedule.Stage} of {schedule.Stages} with {schedule.ChunksPerStage} chunks per stage, but this is rank {_group.Rank} " +
                $"of a {_group.Size}-rank pipeline group whose stage has {_stage.ChunkCount} chunks; build the schedule with this rank's numbers");
        }
        ThrowIfSendFailed();
        var device = _group.Device;
        long busyTicks = 0;
        // Every stage starts its clock together, so the step's wall time is one interval shared by all stages.
        _group.Barrier();
        long start = Stopwatch.GetTimestamp();
        foreach (var action in schedule.Actions)
        {
            bool forward = action.Kind == PipelineActionKind.Forward;
            Tensor? input = null;
            if (action.ReceiveFrom == _group.Rank)
            {
                input = TakeLocal(action.ReceiveTag, action);
            }
            else if (action.ReceiveFrom >= 0)
            {
                var spec = forward ? _stage.InputSpec(action.Chunk) : _stage.OutputSpec(action.Chunk);
                input = _ops.Empty(spec.Shape, spec.DType);
                try
                {
                    _group.Recv(input, action.ReceiveFrom, action.ReceiveTag);
                }
                catch
                {
                    input.Dispose();
                    throw;
                }
            }
            long computeStart = Stopwatch.GetTimestamp();
            var output = forward ? _stage.Forward(action.Chunk, action.Micro, input) : _stage.Backward(action.Chunk, action.Micro, input);
            device.Synchronize();
            busyTicks += Stopwatch.GetTimestamp() - computeStart;
            if (action.SendTo >= 0)
            {
                if (output is null)
                {
                    throw new PipelineException($"stage {schedule.Stage} returned no tensor from {action} of model chunk {action.ModelChunk}, which the next chunk needs");
                }
                if (action.SendTo == _group.Rank)
                {
                    // One stage with several chunks (p = 1): a communicator cannot address itself, and needs not.
                    _local.Add(action.SendTag, output);
                }
                else
                {
                    Post(output, action.SendTo, action.SendTag);
                }
            }
            else
            {
                output?.Dispose();
            }
        }
        Drain();
        long wallTicks = Stopwatch.GetTimestamp() - start;

        double wallSeconds = wallTicks / (double)Stopwatch.Frequency;
        double busySeconds = busyTicks / (double)Stopwatch.Frequency;
        return Summarize(schedule, busySeconds, wallSeconds);
    }

    /// <summary>Lets the sender thread finish the sends already posted (each gives up at the communicator's timeout), then stops it.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }
        _disposed = true;
        _outbox.CompleteAdding();
        _sender.Join();
        _outbox.Dispose();
        foreach (var tensor in _local.Values)
        {
            tensor.Dispose();
        }
        _local.Clear();
    }

    /// <summary>
    /// Shares every stage's busy and wall time (one all-reduce of 2p numbers: slot r holds rank r's wall, slot p + r
    /// its busy time). The step lasts as long as the slowest stage; each stage's bubble is the rest of that interval.
    /// </summary>
    private PipelineStepReport Summarize(PipelineSchedule schedule, double busySeconds, double wallSeconds)
    {
        int p = _group.Size;
        var slots = new double[2 * p];
        slots[_group.Rank] = wallSeconds;
        slots[p + _group.Rank] = busySeconds;
        using var shared = _ops.FromArray(slots, new Shape(2 * p), DType.F64);
        _group.AllReduce(shared, shared, ReduceOp.Sum);
        var all = _ops.ToDoubleArray(shared);
        double stepWall = all.Take(p).Max();
        var bubbles = new double[p];
        for (int r = 0; r < p; r++)
        {
            bubbles[r] = stepWall > 0 ? Math.Clamp(1 - (all[p + r] / stepWall), 0, 1) : 0;
        }
        return new PipelineStepReport(schedule.Kind, schedule.Stage, p, schedule.MicroBatches, schedule.ChunksPerStage,
            busySeconds, stepWall, bubbles[_group.Rank], bubbles.Average(), schedule.TheoreticalBubbleFraction, bubbles);
    }

    private Tensor TakeLocal(int tag, PipelineAction action)
    {
        if (!_local.Remove(tag, out var tensor))
        {
            throw new PipelineException($"stage {_group.Rank}: {action} needs the tensor with tag {tag} from its own earlier chunk, which has not run");
        }
        return tensor;
    }

    private void Post(Tensor tensor, int peer, int tag)
    {
        lock (_pendingLock)
        {
            _pending++;
        }
        _outbox.Add((tensor, peer, tag));
    }

    /// <summary>Waits until every posted send has gone out (or failed), then rethrows a failure.</summary>
    private void Drain()
    {
        lock (_pendingLock)
        {
            while (_pending > 0)
            {
                Monitor.Wait(_pendingLock);
            }
        }
        ThrowIfSendFailed();
    }

    private void ThrowIfSendFailed()
    {
        if (Volatile.Read(ref _sendError) is { } e)
        {
            throw new PipelineException($"stage {_group.Rank}: a send to a neighbour stage failed: {e.Message}");
        }
    }

    private void SendLoop()
    {
        foreach (var (tensor, peer, tag) in _outbox.GetConsumingEnumerable())
        {
            try
            {
                if (Volatile.Read(ref _sendError) is null)
                {
                    _group.Send(tensor, peer, tag);
                }
            }
            catch (Exception e)
            {
                Volatile.Write(ref _sendError, e);
            }
            finally
            {
                tensor.Dispose();
                lock (_pendingLock)
                {
                    _pending--;
                    Monitor.PulseAll(_pendingLock);
                }
            }
        }
    }
}
