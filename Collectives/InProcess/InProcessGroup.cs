namespace Hal.Collectives.InProcess;

/// <summary>
/// What one rank posts when it enters a collective: the arguments every rank must agree on, plus the host addresses
/// its peers read from during the call.
/// </summary>
internal struct CallPost
{
    public string Op;
    public long Seq;
    public long Count;
    public DType DType;
    public int Root;
    public ReduceOp? ReduceOp;
    public int Color;
    public int Key;
    public IntPtr Send;
    public IntPtr Recv;
}

/// <summary>Why a group can no longer complete collectives.</summary>
internal sealed record GroupFailure(string Description, Exception? Cause, bool IsTimeout);

/// <summary>
/// State shared by the ranks of one in-process group: the per-call posts, a ticket barrier, the send/recv mailboxes
/// and the broken flag. Every rank crosses the same number of rendezvous per collective, so rank r's k-th rendezvous
/// is ticket k on every rank; a rank waiting on ticket k knows exactly which peers have not reached it yet.
/// Posts are double-buffered by call parity: a rank can run at most one call ahead of the slowest peer (it cannot
/// pass the next call's first rendezvous alone), so it never overwrites a post that a peer is still reading.
/// </summary>
internal sealed class InProcessGroup
{
    // Arrival tickets live 64 bytes apart so that ranks spinning on them do not share a cache line.
    private const int TicketStride = 8;

    // A short spin catches peers that are a few microseconds behind (the common case with one core per rank);
    // after that, waiters sleep on a monitor so oversubscribed ranks (more ranks than cores) hand the core over.
    private const int SpinIterations = 40;

    private readonly long[] _arrived;
    private readonly CallPost[][] _posts;
    private readonly object _gate = new();
    private readonly object _mailLock = new();
    private readonly List<Message>[] _mailboxes;
    private readonly List<InProcessGroup> _children = [];
    private readonly Dictionary<(long Seq, int Color), PendingSplit> _pendingSplits = [];
    private int _sleepers;
    private volatile GroupFailure? _failure;

    public InProcessGroup(int size)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(size, 1);
        Size = size;
        _arrived = new long[size * TicketStride];
        _posts = [new CallPost[size], new CallPost[size]];
        _mailboxes = new List<Message>[size * size];
        for (int i = 0; i < _mailboxes.Length; i++)
        {
            _mailboxes[i] = [];
        }
    }

    public int Size { get; }

    public GroupFailure? Failure => _failure;

    /// <summary>The posts of call <paramref name="seq"/>, one per rank (valid after its first rendezvous).</summary>
    public CallPost[] Posts(long seq) => _posts[seq & 1];

    public void Post(int rank, in CallPost post) => _posts[post.Seq & 1][rank] = post;

    /// <summary>Marks the group (and every group split from it) broken; the first failure wins. Wakes every waiter.</summary>
    public void Fail(GroupFailure failure)
    {
        if (Interlocked.CompareExchange(ref _failure, failure, null) is not null)
        {
            return;
        }
        lock (_gate)
        {
            Monitor.PulseAll(_gate);
        }
        lock (_mailLock)
        {
            Monitor.PulseAll(_mailLock);
        }
        InProcessGroup[] children;
        lock (_children)
        {
            children = [.. _children];
        }
        foreach (var child in children)
        {
            child.Fail(failure with { Description = $"{failure.Description} (in the parent group)", IsTimeout = false });
        }
    }

    /// <summary>Raises the fail-fast error for collective call <paramref name="seq"/> when the group is broken.</summary>
    public void ThrowIfBroken(int rank, string op, long seq, bool ignoreTimeouts = false)
    {
        var f = _failure;
        if (f is not null && !(ignoreTimeouts && f.IsTimeout))
        {
            ThrowIfBroken(rank, $"{op} #{seq}", ignoreTimeouts);
        }
    }

    /// <summary>Raises the fail-fast error when the group is broken.</summary>
    public void ThrowIfBroken(int rank, string call, bool ignoreTimeouts = false)
    {
        var f = _failure;
        if (f is not null && !(ignoreTimeouts && f.IsTimeout))
        {
            throw new HalException($"rank {rank}: {call} cannot complete because {f.Description}", f.Cause);
        }
    }

    /// <summary>
    /// Rendezvous: records that <paramref name="rank"/> reached <paramref name="ticket"/>, then waits until every rank
    /// has, or the timeout passes (then the group is marked broken and a <see cref="CollectiveTimeoutException"/>
    /// names the missing ranks), or another rank fails (a <see cref="HalException"/> naming it).
    /// </summary>
    public void Arrive(int rank, long ticket, string op, long seq, TimeSpan timeout)
    {
        Interlocked.Exchange(ref _arrived[rank * TicketStride], ticket);
        if (Volatile.Read(ref _sleepers) > 0)
        {
            lock (_gate)
            {
                Monitor.PulseAll(_gate);
            }
        }
        var spinner = new SpinWait();
        for (int i = 0; i < SpinIterations; i++)
        {
            if (AllArrived(ticket))
            {
                return;
            }
            // Ranks already waiting here when another rank timed out wait out their own timeout, so that each
            // reports the ranks it was missing; a rank that threw breaks the wait at once.
            ThrowIfBroken(rank, op, seq, ignoreTimeouts: true);
            spinner.SpinOnce(sleep1Threshold: -1);
        }
        long deadline = Environment.TickCount64 + (long)Math.Ceiling(timeout.TotalMilliseconds);
        lock (_gate)
        {
            Interlocked.Increment(ref _sleepers);
            try
            {
                while (!AllArrived(ticket))
                {
                    ThrowIfBroken(rank, op, seq, ignoreTimeouts: true);
                    long remaining = deadline - Environment.TickCount64;
                    if (remaining <= 0)
                    {
                        string? missing = MissingRanks(ticket);
                        if (missing is null)
                        {
                            return;
                        }
                        var e = new CollectiveTimeoutException(rank, op, $"{missing} to reach {op} #{seq}", timeout);
                        Fail(new GroupFailure($"rank {rank} timed out in {op} #{seq} waiting for {missing}", e, IsTimeout: true));
                        throw e;
                    }
                    Monitor.Wait(_gate, (int)Math.Min(remaining, int.MaxValue));
                }
            }
            finally
            {
                Interlocked.Decrement(ref _sleepers);
            }
        }
    }

    /// <summary>Queues a message from <paramref name="src"/> to <paramref name="dst"/>; sends never block.</summary>
    public void Deliver(int src, int dst, Message message)
    {
        lock (_mailLock)
        {
            _mailboxes[src * Size + dst].Add(message);
            Monitor.PulseAll(_mailLock);
        }
    }

    /// <summary>Takes the oldest message from <paramref name="src"/> to <paramref name="dst"/> with <paramref name="tag"/>, waiting up to the timeout.</summary>
    public Message Take(int src, int dst, int tag, TimeSpan timeout)
    {
        long deadline = Environment.TickCount64 + (long)Math.Ceiling(timeout.TotalMilliseconds);
        lock (_mailLock)
        {
            var box = _mailboxes[src * Size + dst];
            while (true)
            {
                int index = box.FindIndex(m => m.Tag == tag);
                if (index >= 0)
                {
                    var m = box[index];
                    box.RemoveAt(index);
                    return m;
                }
                var f = _failure;
                if (f is not null && !f.IsTimeout)
                {
                    throw new HalException($"rank {dst}: recv from rank {src} (tag {tag}) cannot complete because {f.Description}", f.Cause);
                }
                long remaining = deadline - Environment.TickCount64;
                if (remaining <= 0)
                {
                    throw new CollectiveTimeoutException(dst, "recv", $"rank {src} to send a message with tag {tag}", timeout);
                }
                Monitor.Wait(_mailLock, (int)Math.Min(remaining, int.MaxValue));
            }
        }
    }

    /// <summary>
    /// The group for <paramref name="color"/> made by split call <paramref name="seq"/>: the first member to ask creates
    /// it, the others get the same object; the entry is dropped once all <paramref name="size"/> members have it.
    /// </summary>
    public InProcessGroup TakeSplitGroup(long seq, int color, int size)
    {
        lock (_pendingSplits)
        {
            if (!_pendingSplits.TryGetValue((seq, color), out var pending))
            {
                pending = new PendingSplit(new InProcessGroup(size));
                _pendingSplits[(seq, color)] = pending;
                lock (_children)
                {
                    _children.Add(pending.Group);
                }
                if (_failure is { } f)
                {
                    pending.Group.Fail(f with { IsTimeout = false });
                }
            }
            if (++pending.Taken == size)
            {
                _pendingSplits.Remove((seq, color));
            }
            return pending.Group;
        }
    }

    private bool AllArrived(long ticket)
    {
        for (int r = 0; r < Size; r++)
        {
            if (Volatile.Read(ref _arrived[r * TicketStride]) < ticket)
            {
                return false;
            }
        }
        return true;
    }

    private string? MissingRanks(long ticket)
    {
        var missing = new List<int>();
        for (int r = 0; r < Size; r++)
        {
            if (Volatile.Read(ref _arrived[r * TicketStride]) < ticket)
            {
                missing.Add(r);
            }
        }
        if (missing.Count == 0)
        {
            return null;
        }
        return (missing.Count == 1 ? "rank " : "ranks ") + string.Join(", ", missing);
    }

    private sealed class PendingSplit(InProcessGroup group)
    {
        public InProcessGroup Group { get; } = group;

        public int Taken { get; set; }
    }
}

/// <summary>A point-to-point message: a host copy of the sent elements.</summary>
internal sealed record Message(int Tag, long Count, DType DType, byte[] Bytes);
