namespace Hal.Cli.Tests;

/// <summary>
/// A communicator that is wrong on purpose: it forwards everything to a real one, then on rank
/// <paramref name="corruptRank"/> flips one exponent bit of element <paramref name="corruptIndex"/> of every
/// all-reduce result that has such an element. The flip moves any value far beyond 2 ULP (0 becomes 2, 1 becomes +Inf),
/// so even the tolerant Mean check must catch it.
/// </summary>
internal sealed class CorruptingCommunicator(ICommunicator inner, int corruptRank, long corruptIndex) : ICommunicator
{
    public int Rank => inner.Rank;

    public int Size => inner.Size;

    public string Kind => inner.Kind;

    public IDevice Device => inner.Device;

    public TimeSpan Timeout
    {
        get => inner.Timeout;
        set => inner.Timeout = value;
    }

    public void AllReduce(Tensor send, Tensor recv, ReduceOp op)
    {
        inner.AllReduce(send, recv, op);
        if (Rank == corruptRank && recv.ElementCount > corruptIndex)
        {
            // Little-endian: the last byte of an element holds the sign and the top exponent bits.
            int size = recv.DType.SizeInBytes();
            long offset = recv.OffsetBytes + ((corruptIndex + 1) * size) - 1;
            var b = new byte[1];
            Device.CopyToHost(recv.Buffer, offset, b);
            b[0] ^= 0x40;
            Device.CopyFromHost(b, recv.Buffer, offset);
        }
    }

    public void Broadcast(Tensor tensor, int root) => inner.Broadcast(tensor, root);

    public void AllGather(Tensor send, Tensor recv) => inner.AllGather(send, recv);

    public void ReduceScatter(Tensor send, Tensor recv, ReduceOp op) => inner.ReduceScatter(send, recv, op);

    public void AllToAll(Tensor send, Tensor recv) => inner.AllToAll(send, recv);

    public void Send(Tensor tensor, int peer, int tag = 0) => inner.Send(tensor, peer, tag);

    public void Recv(Tensor tensor, int peer, int tag = 0) => inner.Recv(tensor, peer, tag);

    public void Barrier() => inner.Barrier();

    public ICollectiveRequest AllReduceAsync(Tensor send, Tensor recv, ReduceOp op) => inner.AllReduceAsync(send, recv, op);

    public ICollectiveRequest AllGatherAsync(Tensor send, Tensor recv) => inner.AllGatherAsync(send, recv);

    public ICollectiveRequest ReduceScatterAsync(Tensor send, Tensor recv, ReduceOp op) => inner.ReduceScatterAsync(send, recv, op);

    public ICommunicator? Split(int color, int key) => inner.Split(color, key);

    // The wrapped communicator belongs to whoever created it.
    public void Dispose()
    {
    }
}
