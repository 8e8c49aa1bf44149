namespace Hal.Collectives.InProcess;

// Shape legend: n = Size ranks; count = elements of the message, cut into n ring chunks; chunk c holds elements
// [count·c/n, count·(c+1)/n); es = bytes per element.

public sealed partial class InProcessCommunicator
{
    protected override void AllReduceCore(Tensor send, Tensor recv, ReduceOp op)
    {
        if (Size > 1 && recv.SizeInBytes >= RingMinBytes)
        {
            RingAllReduce(send, recv, op);
        }
        else
        {
            DirectAllReduce(send, recv, op);
        }
    }

    /// <summary>
    /// Small messages: every rank reduces all peers' buffers itself, in rank order 0..n−1, so every rank computes the
    /// same bits. Two rendezvous whatever n, against log2(n) + 1 for recursive doubling: in shared memory a peer's
    /// buffer is one load away, so latency is the number of rendezvous, and reading n small buffers costs less than
    /// a rendezvous. Peers read a private copy of this rank's input when the call is in place.
    /// </summary>
    private void DirectAllReduce(Tensor send, Tensor recv, ReduceOp op)
    {
        long count = recv.ElementCount;
        var dtype = recv.DType;
        IntPtr src = Source(send, mustCopy: Overlap(send, recv));
        IntPtr dst = Destination(recv, _recvScratch, out bool staged);
        long seq = Begin(new CallPost { Op = "all-reduce", Count = count, DType = dtype, Root = -1, ReduceOp = op, Send = src });
        var posts = _group.Posts(seq);
        HostReduce.Copy(dst, posts[0].Send, recv.SizeInBytes);
        for (int j = 1; j < Size; j++)
        {
            HostReduce.Combine(dst, dst, posts[j].Send, count, dtype, op);
        }
        if (op == ReduceOp.Mean)
        {
            HostReduce.DivideBy(dst, count, dtype, Size);
        }
        Rendezvous("all-reduce", seq);
        if (staged)
        {
            StageOut(dst, recv);
        }
    }

    /// <summary>
    /// Large messages: ring reduce-scatter then ring all-gather, n−1 steps each, one rendezvous per step. In
    /// reduce-scatter step s, rank r reduces chunk (r−s−1) mod n: its own input with the left neighbour's partial
    /// result (the left neighbour's input at s = 0), so after n−1 steps it owns the full reduction of chunk (r+1) mod n
    /// (divided by n there for Mean). In all-gather step s it copies chunk (r−s) mod n from the left neighbour. No
    /// chunk is written in the step in which the right neighbour reads it, so in-place calls need no copy.
    /// </summary>
    private void RingAllReduce(Tensor send, Tensor recv, ReduceOp op)
    {
        long count = recv.ElementCount;
        var dtype = recv.DType;
        int es = dtype.SizeInBytes();
        bool inPlace = ReferenceEquals(send.Buffer, recv.Buffer) && send.OffsetBytes == recv.OffsetBytes;
        bool staged = !TryHost(recv, out IntPtr dst);
        IntPtr src;
        if (!staged)
        {
            src = inPlace ? dst : Source(send, mustCopy: Overlap(send, recv));
        }
        else
        {
            src = Source(send, mustCopy: true);
            dst = inPlace ? src : _recvScratch.Ensure(recv.SizeInBytes);
        }
        long seq = Begin(new CallPost { Op = "all-reduce", Count = count, DType = dtype, Root = -1, ReduceOp = op, Send = src, Recv = dst });
        var posts = _group.Posts(seq);
        int n = Size;
        var left = posts[(Rank + n - 1) % n];
        long ChunkStart(int c) => count * c / n;

        for (int step = 0; step < n - 1; step++)
        {
            int c = ((Rank - step - 1) % n + n) % n;
            long start = ChunkStart(c);
            long length = ChunkStart(c + 1) - start;
            nint offset = (nint)(start * es);
            IntPtr partial = step == 0 ? left.Send : left.Recv;
            HostReduce.Combine(dst + offset, partial + offset, src + offset, length, dtype, op);
            if (step == n - 2 && op == ReduceOp.Mean)
            {
                HostReduce.DivideBy(dst + offset, length, dtype, n);
            }
            Rendezvous("all-reduce", seq);
        }
        for (int step = 0; step < n - 1; step++)
        {
            int c = ((Rank - step) % n + n) % n;
            long start = ChunkStart(c);
            nint offset = (nint)(start * es);
            HostReduce.Copy(dst + offset, left.Recv + offset, (ChunkStart(c + 1) - start) * es);
            Rendezvous("all-reduce", seq);
        }
        if (staged)
        {
            StageOut(dst, recv);
        }
    }
}
