namespace Hal.Collectives;

// Legend: p ranks of the group a call runs on, S bytes of the call's send tensor (for a broadcast: of the tensor).

/// <summary>
/// Bytes one rank sends, by kind of call, counted as the bandwidth-optimal algorithms move them: ring all-reduce
/// 2·(p−1)/p·S, all-gather (p−1)·S, reduce-scatter and all-to-all (p−1)/p·S, broadcast (p−1)/p·S (pipelined chain:
/// every rank but one forwards the tensor once, averaged over the ranks), send S, receive, barrier and split 0.
/// A group of one rank sends nothing. Shared by a communicator and every group split off it, so the tally of a world
/// is everything its rank sent on any group. Thread-safe.
/// </summary>
public sealed class CommunicationTally
{
    private long _allReduce, _allGather, _reduceScatter, _allToAll, _broadcast, _pointToPoint, _calls;

    /// <summary>All-reduce bytes sent.</summary>
    public long AllReduceBytes => Interlocked.Read(ref _allReduce);

    /// <summary>All-gather bytes sent.</summary>
    public long AllGatherBytes => Interlocked.Read(ref _allGather);

    /// <summary>Reduce-scatter bytes sent.</summary>
    public long ReduceScatterBytes => Interlocked.Read(ref _reduceScatter);

    /// <summary>All-to-all bytes sent.</summary>
    public long AllToAllBytes => Interlocked.Read(ref _allToAll);

    /// <summary>Broadcast bytes sent.</summary>
    public long BroadcastBytes => Interlocked.Read(ref _broadcast);

    /// <summary>Point-to-point bytes sent.</summary>
    public long PointToPointBytes => Interlocked.Read(ref _pointToPoint);

    /// <summary>Calls that moved data (collectives on groups of two or more ranks, and sends).</summary>
    public long Calls => Interlocked.Read(ref _calls);

    /// <summary>Every byte sent.</summary>
    public long TotalBytes => AllReduceBytes + AllGatherBytes + ReduceScatterBytes + AllToAllBytes + BroadcastBytes + PointToPointBytes;

    /// <inheritdoc />
    public override string ToString() =>
        $"{TotalBytes} bytes sent in {Calls} calls (all-reduce {AllReduceBytes}, all-gather {AllGatherBytes}, reduce-scatter {ReduceScatterBytes}, " +
        $"all-to-all {AllToAllBytes}, broadcast {BroadcastBytes}, point-to-point {PointToPointBytes})";

    internal void AllReduce(long bytes, int ranks) => Add(ref _allReduce, ranks, 2 * (ranks - 1) * bytes / ranks);

    internal void AllGather(long sendBytes, int ranks) => Add(ref _allGather, ranks, (ranks - 1) * sendBytes);

    internal void ReduceScatter(long sendBytes, int ranks) => Add(ref _reduceScatter, ranks, (ranks - 1) * sendBytes / ranks);

    internal void AllToAll(long sendBytes, int ranks) => Add(ref _allToAll, ranks, (ranks - 1) * sendBytes / ranks);

    internal void Broadcast(long bytes, int ranks) => Add(ref _broadcast, ranks, (ranks - 1) * bytes / ranks);

    internal void Send(long bytes) => Add(ref _pointToPoint, 2, bytes);

    private void Add(ref long counter, int ranks, long bytes)
    {
        if (ranks < 2)
        {
            return;
        }
        Interlocked.Add(ref counter, bytes);
        Interlocked.Increment(ref _calls);
    }
}

/// <summary>
/// A communicator that forwards every call to another and adds what this rank sends to a <see cref="Tally"/>; groups
/// split off it are counting communicators over the inner groups, sharing the tally. The inner communicator does the
/// work (and the argument checks, timeouts and mismatch detection); disposing this disposes it.
/// </summary>
public sealed class CountingCommunicator : ICommunicator
{
    private readonly ICommunicator _inner;

    /// <summary>Counts the traffic of <paramref name="inner"/> into a new tally.</summary>
    public CountingCommunicator(ICommunicator inner)
        : this(inner, new CommunicationTally())
    {
    }

    /// <summary>Counts the traffic of <paramref name="inner"/> into <paramref name="tally"/>.</summary>
    public CountingCommunicator(ICommunicator inner, CommunicationTally tally)
    {
        ArgumentNullException.ThrowIfNull(inner);
        ArgumentNullException.ThrowIfNull(tally);
        _inner = inner;
        Tally = tally;
    }

    /// <summary>What this rank has sent on this communicator and the groups split off it.</summary>
    public CommunicationTally Tally { get; }

    /// <inheritdoc />
    public int Rank => _inner.Rank;

    /// <inheritdoc />
    public int Size => _inner.Size;

    /// <inheritdoc />
    public string Kind => _inner.Kind;

    /// <inheritdoc />
    public IDevice Device => _inner.Device;

    /// <inheritdoc />
    public TimeSpan Timeout
    {
        get => _inner.Timeout;
        set => _inner.Timeout = value;
    }

    /// <inheritdoc />
    public void AllReduce(Tensor send, Tensor recv, ReduceOp op)
    {
        _inner.AllReduce(send, recv, op);
        Tally.AllReduce(send.SizeInBytes, Size);
    }

    /// <inheritdoc />
    public void Broadcast(Tensor tensor, int root)
    {
        _inner.Broadcast(tensor, root);
        Tally.Broadcast(tensor.SizeInBytes, Size);
    }

    /// <inheritdoc />
    public void AllGather(Tensor send, Tensor recv)
    {
        _inner.AllGather(send, recv);
        Tally.AllGather(send.SizeInBytes, Size);
    }

    /// <inheritdoc />
    public void ReduceScatter(Tensor send, Tensor recv, ReduceOp op)
    {
        _inner.ReduceScatter(send, recv, op);
        Tally.ReduceScatter(send.SizeInBytes, Size);
    }

    /// <inheritdoc />
    public void AllToAll(Tensor send, Tensor recv)
    {
        _inner.AllToAll(send, recv);
        Tally.AllToAll(send.SizeInBytes, Size);
    }

    /// <inheritdoc />
    public void Send(Tensor tensor, int peer, int tag = 0)
    {
        _inner.Send(tensor, peer, tag);
        Tally.Send(tensor.SizeInBytes);
    }

    /// <inheritdoc />
    public void Recv(Tensor tensor, int peer, int tag = 0) => _inner.Recv(tensor, peer, tag);

    /// <inheritdoc />
    public void Barrier() => _inner.Barrier();

    /// <inheritdoc />
    public ICollectiveRequest AllReduceAsync(Tensor send, Tensor recv, ReduceOp op)
    {
        var request = _inner.AllReduceAsync(send, recv, op);
        Tally.AllReduce(send.SizeInBytes, Size);
        return request;
    }

    /// <inheritdoc />
    public ICollectiveRequest AllGatherAsync(Tensor send, Tensor recv)
    {
        var request = _inner.AllGatherAsync(send, recv);
        Tally.AllGather(send.SizeInBytes, Size);
        return request;
    }

    /// <inheritdoc />
    public ICollectiveRequest ReduceScatterAsync(Tensor send, Tensor recv, ReduceOp op)
    {
        var request = _inner.ReduceScatterAsync(send, recv, op);
        Tally.ReduceScatter(send.SizeInBytes, Size);
        return request;
    }

    /// <inheritdoc />
    public ICommunicator? Split(int color, int key) =>
        _inner.Split(color, key) is { } group ? new CountingCommunicator(group, Tally) : null;

    /// <summary>Disposes the inner communicator (which disposes the groups split off it).</summary>
    public void Dispose() => _inner.Dispose();

    /// <inheritdoc />
    public override string ToString() => $"counting {_inner}";
}
