namespace Hal;

/// <summary>
/// A group of ranks that exchange tensors: the one interface every parallel strategy is built from. Implementations:
/// in-process ranks (threads of one process), MPI (one rank per process) and, on CUDA devices, NCCL. Each rank calls the
/// same collectives in the same order with matching arguments; a mismatch across ranks raises
/// <see cref="CollectiveMismatchException"/> instead of corrupting memory, and every blocking call gives up after
/// <see cref="Timeout"/> with <see cref="CollectiveTimeoutException"/>.
/// Tensors live on this rank's <see cref="Device"/>; buffers are read and written through the device copy contract,
/// so any backend works. Element counts, not shapes, must agree: a tensor is a flat run of elements to a collective.
/// Supported dtypes: F32, F64, F16, BF16, I32, I64 (16-bit floats reduce in F32 and round once per reduction step).
/// A communicator owns the sub-groups it split off; disposing it disposes them.
/// </summary>
public interface ICommunicator : IDisposable
{
    /// <summary>This rank, 0 ≤ Rank &lt; Size.</summary>
    int Rank { get; }

    /// <summary>Number of ranks.</summary>
    int Size { get; }

    /// <summary>Short name of the implementation: <c>inproc</c>, <c>mpi</c>, <c>nccl</c>.</summary>
    string Kind { get; }

    /// <summary>The device whose tensors this rank passes.</summary>
    IDevice Device { get; }

    /// <summary>How long a blocking call waits for its peers before raising <see cref="CollectiveTimeoutException"/>.</summary>
    TimeSpan Timeout { get; set; }

    /// <summary>recv = op over ranks of send, element-wise. <paramref name="send"/> may be <paramref name="recv"/> (in place). Mean divides the sum by Size.</summary>
    void AllReduce(Tensor send, Tensor recv, ReduceOp op);

    /// <summary>tensor on every rank = tensor on <paramref name="root"/>.</summary>
    void Broadcast(Tensor tensor, int root);

    /// <summary>recv (Size × n elements) = the concatenation, in rank order, of every rank's send (n elements).</summary>
    void AllGather(Tensor send, Tensor recv);

    /// <summary>recv (n elements) on rank r = op over ranks of block r of send (Size × n elements).</summary>
    void ReduceScatter(Tensor send, Tensor recv, ReduceOp op);

    /// <summary>Block j of recv (Size × n) on rank r = block r of send (Size × n) on rank j.</summary>
    void AllToAll(Tensor send, Tensor recv);

    /// <summary>Sends tensor to <paramref name="peer"/>; matched by a <see cref="Recv"/> with the same tag, in order.</summary>
    void Send(Tensor tensor, int peer, int tag = 0);

    /// <summary>Receives into tensor from <paramref name="peer"/>; the element count and dtype must match the send.</summary>
    void Recv(Tensor tensor, int peer, int tag = 0);

    /// <summary>Returns when every rank has called it.</summary>
    void Barrier();

    /// <summary>Starts an all-reduce and returns at once; the tensors must not be touched until the request completes.</summary>
    ICollectiveRequest AllReduceAsync(Tensor send, Tensor recv, ReduceOp op);

    /// <summary>Starts an all-gather and returns at once.</summary>
    ICollectiveRequest AllGatherAsync(Tensor send, Tensor recv);

    /// <summary>Starts a reduce-scatter and returns at once.</summary>
    ICollectiveRequest ReduceScatterAsync(Tensor send, Tensor recv, ReduceOp op);

    /// <summary>
    /// Splits into sub-groups (collective over all ranks): ranks with the same <paramref name="color"/> form one group,
    /// ordered by <paramref name="key"/> then by old rank. A negative color joins no group and gets null.
    /// </summary>
    ICommunicator? Split(int color, int key);
}

/// <summary>An asynchronous collective in flight.</summary>
public interface ICollectiveRequest
{
    /// <summary>True when the collective has finished (successfully or not).</summary>
    bool IsCompleted { get; }

    /// <summary>Blocks until the collective finishes; rethrows its error (timeout, mismatch) if it failed.</summary>
    void Wait();
}
