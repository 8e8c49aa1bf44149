namespace Hal.Parallel.Tests;

/// <summary>
/// Wraps a communicator so that Send returns only once the peer has received the message, as MPI's rendezvous
/// protocol does for large messages: the receiver answers every message with an empty acknowledgement on a tag of its
/// own, and the sender waits for it. Two ranks that both send to each other before receiving stall here (and time
/// out), where the in-process communicator's buffered sends would let them through.
/// </summary>
internal sealed class RendezvousCommunicator(ICommunicator inner) : ICommunicator
{
    private const int AckTagOffset = 1 << 24;

    public int Rank => inner.Rank;

    public int Size => inner.Size;

    public string Kind => inner.Kind + "+rendezvous";

    public IDevice Device => inner.Device;

    public TimeSpan Timeout
    {
        get => inner.Timeout;
        set => inner.Timeout = value;
    }

    public void Send(Tensor tensor, int peer, int tag = 0)
    {
        inner.Send(tensor, peer, tag);
        using var ack = new Ops(Device).Empty(new Shape(1), DType.I32);
        inner.Recv(ack, peer, AckTagOffset + tag);
    }

    public void Recv(Tensor tensor, int peer, int tag = 0)
    {
        inner.Recv(tensor, peer, tag);
        using var ack = new Ops(Device).Zeros(new Shape(1), DType.I32);
        inner.Send(ack, peer, AckTagOffset + tag);
    }

    public void AllReduce(Tensor send, Tensor recv, ReduceOp op) => inner.AllReduce(send, recv, op);

    public void Broadcast(Tensor tensor, int root) => inner.Broadcast(tensor, root);

    public void AllGather(Tensor send, Tensor recv) => inner.AllGather(send, recv);

    public void ReduceScatter(Tensor send, Tensor recv, ReduceOp op) => inner.ReduceScatter(send, recv, op);

    public void AllToAll(Tensor send, Tensor recv) => inner.AllToAll(send, recv);

    public void Barrier() => inner.Barrier();

    public ICollectiveRequest AllReduceAsync(Tensor send, Tensor recv, ReduceOp op) => inner.AllReduceAsync(send, recv, op);

    public ICollectiveRequest AllGatherAsync(Tensor send, Tensor recv) => inner.AllGatherAsync(send, recv);

    public ICollectiveRequest ReduceScatterAsync(Tensor send, Tensor recv, ReduceOp op) => inner.ReduceScatterAsync(send, recv, op);

    public ICommunicator? Split(int color, int key) => inner.Split(color, key);

    public void Dispose()
    {
        // The wrapped communicator belongs to whoever created it.
    }
}
