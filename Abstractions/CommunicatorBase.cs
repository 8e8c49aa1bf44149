namespace Hal;

/// <summary>
/// Validate-then-hook base for communicators. Public methods check disposal, devices, dtypes, element counts, roots
/// and peers once, then call the <c>…Core</c> hooks, which trust their arguments (cross-rank agreement is the
/// implementation's to check, since only it can see the other ranks). Asynchronous variants run the same hooks on
/// one background worker per communicator, in the order they were started; a blocking call first waits for every
/// request started before it, so all ranks see one order of collectives.
/// </summary>
public abstract class CommunicatorBase : ICommunicator
{
    private static readonly DType[] CollectiveDTypes = [DType.F32, DType.F64, DType.F16, DType.BF16, DType.I32, DType.I64];

    private readonly Lock _queueLock = new();
    private readonly List<ICommunicator> _children = [];
    private Task _tail = Task.CompletedTask;
    private int _disposed;

    protected CommunicatorBase(IDevice device, int rank, int size)
    {
        ArgumentNullException.ThrowIfNull(device);
        ArgumentOutOfRangeException.ThrowIfLessThan(size, 1);
        if (rank < 0 || rank >= size)
        {
            throw new ArgumentOutOfRangeException(nameof(rank), rank, $"rank must be in [0, {size})");
        }
        Device = device;
        Rank = rank;
        Size = size;
    }

    /// <inheritdoc />
    public int Rank { get; }

    /// <inheritdoc />
    public int Size { get; }

    /// <inheritdoc />
    public abstract string Kind { get; }

    /// <inheritdoc />
    public IDevice Device { get; }

    /// <inheritdoc />
    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(300);

    /// <summary>True after <see cref="Dispose()"/>.</summary>
    public bool IsDisposed => Volatile.Read(ref _disposed) != 0;

    /// <summary>The dtypes collectives accept.</summary>
    public static IReadOnlyList<DType> SupportedDTypes => CollectiveDTypes;

    /// <inheritdoc />
    public void AllReduce(Tensor send, Tensor recv, ReduceOp op)
    {
        CheckPair("all-reduce", send, recv, send.ElementCount);
        Blocking(() => AllReduceCore(send, recv, op));
    }

    /// <inheritdoc />
    public void Broadcast(Tensor tensor, int root)
    {
        CheckTensors("broadcast", tensor);
        CheckRank("broadcast", root, nameof(root));
        Blocking(() => BroadcastCore(tensor, root));
    }

    /// <inheritdoc />
    public void AllGather(Tensor send, Tensor recv)
    {
        CheckPair("all-gather", send, recv, send.ElementCount * Size);
        Blocking(() => AllGatherCore(send, recv));
    }

    /// <inheritdoc />
    public void ReduceScatter(Tensor send, Tensor recv, ReduceOp op)
    {
        CheckPair("reduce-scatter", send, recv, recv.ElementCount * Size, sendIsLarger: true);
        Blocking(() => ReduceScatterCore(send, recv, op));
    }

    /// <inheritdoc />
    public void AllToAll(Tensor send, Tensor recv)
    {
        CheckPair("all-to-all", send, recv, send.ElementCount);
        if (send.ElementCount % Size != 0)
        {
            throw new ShapeMismatchException("all-to-all", send.Shape, recv.Shape, $"the element count {send.ElementCount} is not a multiple of the {Size} ranks");
        }
        Blocking(() => AllToAllCore(send, recv));
    }

    /// <inheritdoc />
    public void Send(Tensor tensor, int peer, int tag = 0)
    {
        CheckTensors("send", tensor);
        CheckPeer("send", peer);
        Blocking(() => SendCore(tensor, peer, tag));
    }

    /// <inheritdoc />
    public void Recv(Tensor tensor, int peer, int tag = 0)
    {
        CheckTensors("recv", tensor);
        CheckPeer("recv", peer);
        Blocking(() => RecvCore(tensor, peer, tag));
    }

    /// <inheritdoc />
    public void Barrier()
    {
        ThrowIfDisposed();
        Blocking(BarrierCore);
    }

    /// <inheritdoc />
    public ICollectiveRequest AllReduceAsync(Tensor send, Tensor recv, ReduceOp op)
    {
        CheckPair("all-reduce", send, recv, send.ElementCount);
        return Enqueue(() => AllReduceCore(send, recv, op));
    }

    /// <inheritdoc />
    public ICollectiveRequest AllGatherAsync(Tensor send, Tensor recv)
    {
        CheckPair("all-gather", send, recv, send.ElementCount * Size);
        return Enqueue(() => AllGatherCore(send, recv));
    }

    /// <inheritdoc />
    public ICollectiveRequest ReduceScatterAsync(Tensor send, Tensor recv, ReduceOp op)
    {
        CheckPair("reduce-scatter", send, recv, recv.ElementCount * Size, sendIsLarger: true);
        return Enqueue(() => ReduceScatterCore(send, recv, op));
    }

    /// <inheritdoc />
    public ICommunicator? Split(int color, int key)
    {
        ThrowIfDisposed();
        ICommunicator? child = null;
        Blocking(() => child = SplitCore(color, key));
        if (child is not null)
        {
            lock (_children)
            {
                _children.Add(child);
            }
        }
        return child;
    }

    /// <summary>Waits for requests in flight (up to <see cref="Timeout"/>), disposes sub-groups, then the implementation (idempotent).</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }
        try
        {
            Task tail;
            lock (_queueLock)
            {
                tail = _tail;
            }
            tail.Wait(Timeout);
        }
        catch (AggregateException)
        {
            // A failed request already reported its error to whoever waited on it.
        }
        ICommunicator[] children;
        lock (_children)
        {
            children = [.. _children];
            _children.Clear();
        }
        foreach (var c in children)
        {
            c.Dispose();
        }
        DisposeCore();
        GC.SuppressFinalize(this);
    }

    protected abstract void AllReduceCore(Tensor send, Tensor recv, ReduceOp op);

    protected abstract void BroadcastCore(Tensor tensor, int root);

    protected abstract void AllGatherCore(Tensor send, Tensor recv);

    protected abstract void ReduceScatterCore(Tensor send, Tensor recv, ReduceOp op);

    protected abstract void AllToAllCore(Tensor send, Tensor recv);

    protected abstract void SendCore(Tensor tensor, int peer, int tag);

    protected abstract void RecvCore(Tensor tensor, int peer, int tag);

    protected abstract void BarrierCore();

    protected abstract ICommunicator? SplitCore(int color, int key);

    protected abstract void DisposeCore();

    /// <summary>Raises <see cref="ObjectDisposedException"/> when disposed.</summary>
    protected void ThrowIfDisposed()
    {
        if (IsDisposed)
        {
            throw new ObjectDisposedException(GetType().Name, $"{Kind} communicator rank {Rank}/{Size} was used after it was disposed");
        }
    }

    private void Blocking(Action action)
    {
        Task pending;
        lock (_queueLock)
        {
            pending = _tail;
        }
        if (!pending.IsCompleted)
        {
            // Keep one order of collectives on every rank: earlier asynchronous requests go first.
            try
            {
                pending.Wait();
            }
            catch (AggregateException)
            {
                // Reported through the request that failed.
            }
        }
        action();
    }

    private Request Enqueue(Action action)
    {
        lock (_queueLock)
        {
            var task = _tail.ContinueWith(_ => action(), CancellationToken.None, TaskContinuationOptions.LongRunning, TaskScheduler.Default);
            _tail = task;
            return new Request(task);
        }
    }

    private void CheckTensors(string op, params ReadOnlySpan<Tensor> tensors)
    {
        ThrowIfDisposed();
        foreach (var t in tensors)
        {
            ArgumentNullException.ThrowIfNull(t, op);
            t.Buffer.ThrowIfDisposed();
            if (!ReferenceEquals(t.Device, Device))
            {
                throw new DeviceMismatchException(op, Device.Id, t.Device.Id);
            }
            if (Array.IndexOf(CollectiveDTypes, t.DType) < 0)
            {
                throw new DTypeNotSupportedException(op, t.DType, Kind, "collectives take f32, f64, f16, bf16, i32 and i64");
            }
        }
    }

    private void CheckPair(string op, Tensor send, Tensor recv, long expectedLarger, bool sendIsLarger = false)
    {
        CheckTensors(op, send, recv);
        if (send.DType != recv.DType)
        {
            throw new DTypeMismatchException(op, send.DType, recv.DType);
        }
        var larger = sendIsLarger ? send : recv;
        if (larger.ElementCount != expectedLarger)
        {
            string rule = op switch
            {
                "all-gather" => $"recv must hold Size × send = {Size} × {send.ElementCount} elements",
                "reduce-scatter" => $"send must hold Size × recv = {Size} × {recv.ElementCount} elements",
                _ => "send and recv must have the same element count",
            };
            throw new ShapeMismatchException(op, send.Shape, recv.Shape, rule);
        }
    }

    private void CheckRank(string op, int rank, string name)
    {
        if (rank < 0 || rank >= Size)
        {
            throw new ArgumentOutOfRangeException(name, rank, $"{op}: rank {rank} is outside [0, {Size})");
        }
    }

    private void CheckPeer(string op, int peer)
    {
        CheckRank(op, peer, nameof(peer));
        if (peer == Rank)
        {
            throw new ArgumentException($"{op}: rank {Rank} cannot address itself", nameof(peer));
        }
    }

    private sealed class Request(Task task) : ICollectiveRequest
    {
        public bool IsCompleted => task.IsCompleted;

        public void Wait()
        {
            try
            {
                task.GetAwaiter().GetResult();
            }
            catch (TaskCanceledException e)
            {
                throw new HalException("the collective was cancelled", e);
            }
        }
    }
}
