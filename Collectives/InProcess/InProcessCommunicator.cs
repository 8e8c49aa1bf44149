namespace Hal.Collectives.InProcess;

// Shape legend: n = Size ranks; count = elements of the whole message; m = elements of one rank's block
// (all-gather, reduce-scatter, all-to-all move n blocks of m); es = bytes per element.

/// <summary>
/// One rank of an in-process group (ranks are threads of one process, see <see cref="InProcessWorld"/>). Peers read
/// each other's host memory directly: a tensor whose buffer exposes a host pointer is used in place, any other is
/// staged through this rank's reusable host scratch with the device copy contract. Every collective starts with a
/// rendezvous where the ranks post their arguments and addresses and check that they agree, and ends with one after
/// the last read of a peer's memory, so a rank never returns while a peer still reads its buffers.
/// </summary>
public sealed partial class InProcessCommunicator : CommunicatorBase
{
    /// <summary>
    /// All-reduce messages of at least this many bytes take the ring; smaller ones the direct algorithm. Measured on
    /// the 2-core development machine (F32, 2 ranks, median time per call): direct 58 µs vs ring slower at 16 KiB;
    /// ring 69 µs vs direct 155 µs at 64 KiB, and the ring stays ahead above. The switch sits between the two.
    /// </summary>
    public const long RingMinBytes = 32 * 1024;

    private const int MaxSpanBytes = 1 << 30;

    private readonly InProcessGroup _group;
    private readonly HostScratch _sendScratch = new();
    private readonly HostScratch _recvScratch = new();
    private long _seq;
    private long _ticket;

    internal InProcessCommunicator(InProcessGroup group, IDevice device, int rank)
        : base(device, rank, group.Size)
    {
        _group = group;
    }

    /// <inheritdoc />
    public override string Kind => "inproc";

    /// <summary>Marks this rank's group broken because the rank's work threw, so peers waiting on it fail at once.</summary>
    internal void MarkFailed(Exception error) =>
        _group.Fail(new GroupFailure($"rank {Rank} failed with {error.GetType().Name}: {error.Message}", error, IsTimeout: false));

    protected override void BroadcastCore(Tensor tensor, int root)
    {
        bool isRoot = Rank == root;
        IntPtr src = isRoot ? Source(tensor, mustCopy: false) : IntPtr.Zero;
        bool staged = false;
        IntPtr dst = isRoot ? IntPtr.Zero : Destination(tensor, _recvScratch, out staged);
        long seq = Begin(new CallPost { Op = "broadcast", Count = tensor.ElementCount, DType = tensor.DType, Root = root, Send = src });
        if (!isRoot)
        {
            HostReduce.Copy(dst, _group.Posts(seq)[root].Send, tensor.SizeInBytes);
        }
        Rendezvous("broadcast", seq);
        if (!isRoot && staged)
        {
            StageOut(dst, tensor);
        }
    }

    // All-gather, reduce-scatter and all-to-all read each peer's block directly: in shared memory every block is one
    // copy away, so each byte crosses memory once (as in a ring) with two rendezvous instead of n.
    protected override void AllGatherCore(Tensor send, Tensor recv)
    {
        long blockBytes = send.SizeInBytes;
        IntPtr src = Source(send, mustCopy: Overlap(send, recv));
        IntPtr dst = Destination(recv, _recvScratch, out bool staged);
        long seq = Begin(new CallPost { Op = "all-gather", Count = send.ElementCount, DType = send.DType, Root = -1, Send = src });
        var posts = _group.Posts(seq);
        for (int j = 0; j < Size; j++)
        {
            HostReduce.Copy(dst + (nint)(j * blockBytes), posts[j].Send, blockBytes);
        }
        Rendezvous("all-gather", seq);
        if (staged)
        {
            StageOut(dst, recv);
        }
    }

    protected override void ReduceScatterCore(Tensor send, Tensor recv, ReduceOp op)
    {
        long m = recv.ElementCount;
        long blockBytes = recv.SizeInBytes;
        var dtype = recv.DType;
        IntPtr src = Source(send, mustCopy: Overlap(send, recv));
        IntPtr dst = Destination(recv, _recvScratch, out bool staged);
        long seq = Begin(new CallPost { Op = "reduce-scatter", Count = m, DType = dtype, Root = -1, ReduceOp = op, Send = src });
        var posts = _group.Posts(seq);
        nint mine = (nint)(Rank * blockBytes);
        HostReduce.Copy(dst, posts[0].Send + mine, blockBytes);
        for (int j = 1; j < Size; j++)
        {
            HostReduce.Combine(dst, dst, posts[j].Send + mine, m, dtype, op);
        }
        if (op == ReduceOp.Mean)
        {
            HostReduce.DivideBy(dst, m, dtype, Size);
        }
        Rendezvous("reduce-scatter", seq);
        if (staged)
        {
            StageOut(dst, recv);
        }
    }

    protected override void AllToAllCore(Tensor send, Tensor recv)
    {
        long blockBytes = send.SizeInBytes / Size;
        IntPtr src = Source(send, mustCopy: Overlap(send, recv));
        IntPtr dst = Destination(recv, _recvScratch, out bool staged);
        long seq = Begin(new CallPost { Op = "all-to-all", Count = send.ElementCount, DType = send.DType, Root = -1, Send = src });
        var posts = _group.Posts(seq);
        nint mine = (nint)(Rank * blockBytes);
        for (int j = 0; j < Size; j++)
        {
            HostReduce.Copy(dst + (nint)(j * blockBytes), posts[j].Send + mine, blockBytes);
        }
        Rendezvous("all-to-all", seq);
        if (staged)
        {
            StageOut(dst, recv);
        }
    }

    protected override void SendCore(Tensor tensor, int peer, int tag)
    {
        _group.ThrowIfBroken(Rank, $"send to rank {peer} (tag {tag})");
        var bytes = GC.AllocateUninitializedArray<byte>(checked((int)tensor.SizeInBytes));
        unsafe
        {
            fixed (byte* p = bytes)
            {
                StageIn(tensor, (IntPtr)p);
            }
        }
        _group.Deliver(Rank, peer, new Message(tag, tensor.ElementCount, tensor.DType, bytes));
    }

    protected override void RecvCore(Tensor tensor, int peer, int tag)
    {
        var message = _group.Take(peer, Rank, tag, Timeout);
        if (message.Count != tensor.ElementCount || message.DType != tensor.DType)
        {
            throw new CollectiveMismatchException(Rank, "recv",
                $"rank {peer} sent {message.Count} {message.DType.Name()} elements with tag {tag}, rank {Rank} receives {tensor.ElementCount} {tensor.DType.Name()}");
        }
        unsafe
        {
            fixed (byte* p = message.Bytes)
            {
                if (TryHost(tensor, out IntPtr dst))
                {
                    HostReduce.Copy(dst, (IntPtr)p, message.Bytes.Length);
                }
                else
                {
                    StageOut((IntPtr)p, tensor);
                }
            }
        }
    }

    protected override void BarrierCore() => Begin(new CallPost { Op = "barrier", Root = -1 });

    protected override ICommunicator? SplitCore(int color, int key)
    {
        long seq = Begin(new CallPost { Op = "split", Root = -1, Color = color, Key = key });
        if (color < 0)
        {
            return null;
        }
        var posts = _group.Posts(seq);
        var members = Enumerable.Range(0, Size)
            .Where(r => posts[r].Color == color)
            .OrderBy(r => posts[r].Key)
            .ThenBy(r => r)
            .ToList();
        var group = _group.TakeSplitGroup(seq, color, members.Count);
        return new InProcessCommunicator(group, Device, members.IndexOf(Rank)) { Timeout = Timeout };
    }

    protected override void DisposeCore()
    {
        // Peers stop reading this rank's memory at the final rendezvous of each call, so the scratch can go now;
        // a peer that still calls a collective learns at once that this rank has left.
        _group.Fail(new GroupFailure($"rank {Rank} was disposed", null, IsTimeout: false));
        _sendScratch.Dispose();
        _recvScratch.Dispose();
    }

    /// <summary>Starts collective call number ++seq: posts, meets every rank, checks that the arguments agree.</summary>
    private long Begin(CallPost post)
    {
        long seq = ++_seq;
        _group.ThrowIfBroken(Rank, post.Op, seq);
        post.Seq = seq;
        _group.Post(Rank, post);
        Rendezvous(post.Op, seq);
        CheckAgreement(post.Op, seq);
        return seq;
    }

    private void Rendezvous(string op, long seq) => _group.Arrive(Rank, ++_ticket, op, seq, Timeout);

    /// <summary>Every rank reads the same posts, so every rank reaches the same verdict and raises the same error.</summary>
    private void CheckAgreement(string op, long seq)
    {
        var posts = _group.Posts(seq);
        var differences = new List<string>();
        if (!Describe(posts, "op", p => p.Op, differences))
        {
            Describe(posts, "element count", p => p.Count, differences);
            Describe(posts, "dtype", p => p.DType.Name(), differences);
            Describe(posts, "root", p => p.Root, differences);
            Describe(posts, "reduce op", p => p.ReduceOp?.ToString() ?? "none", differences);
        }
        if (differences.Count > 0)
        {
            throw new CollectiveMismatchException(Rank, op, $"call #{seq}: {string.Join("; ", differences)}");
        }
    }

    /// <summary>Adds "what: A on ranks 0, 2 vs B on rank 1" when the ranks differ; returns whether they did.</summary>
    private static bool Describe<T>(CallPost[] posts, string what, Func<CallPost, T> field, List<string> differences)
    {
        var groups = posts.Select((p, rank) => (Value: field(p), Rank: rank)).GroupBy(x => x.Value).ToList();
        if (groups.Count <= 1)
        {
            return false;
        }
        var parts = groups.Select(g =>
        {
            var ranks = g.Select(x => x.Rank).ToList();
            return $"{g.Key} on {(ranks.Count == 1 ? "rank" : "ranks")} {string.Join(", ", ranks)}";
        });
        differences.Add($"{what} {string.Join(" vs ", parts)}");
        return true;
    }

    private static bool TryHost(Tensor t, out IntPtr pointer)
    {
        if (t.Buffer.TryGetHostPointer(out IntPtr basePointer))
        {
            pointer = basePointer + (nint)t.OffsetBytes;
            return true;
        }
        pointer = IntPtr.Zero;
        return false;
    }

    private static bool Overlap(Tensor a, Tensor b) =>
        ReferenceEquals(a.Buffer, b.Buffer)
        && a.OffsetBytes < b.OffsetBytes + b.SizeInBytes
        && b.OffsetBytes < a.OffsetBytes + a.SizeInBytes;

    /// <summary>The host address peers read <paramref name="send"/> from: its own memory, or a copy in the send scratch.</summary>
    private IntPtr Source(Tensor send, bool mustCopy)
    {
        if (!mustCopy && TryHost(send, out IntPtr p))
        {
            return p;
        }
        IntPtr scratch = _sendScratch.Ensure(send.SizeInBytes);
        StageIn(send, scratch);
        return scratch;
    }

    /// <summary>The host address results go to: the tensor's memory, or <paramref name="scratch"/> (then <paramref name="staged"/>).</summary>
    private static IntPtr Destination(Tensor recv, HostScratch scratch, out bool staged)
    {
        staged = !TryHost(recv, out IntPtr p);
        return staged ? scratch.Ensure(recv.SizeInBytes) : p;
    }

    /// <summary>Copies the tensor's bytes to host memory at <paramref name="dst"/>.</summary>
    private unsafe void StageIn(Tensor t, IntPtr dst)
    {
        if (TryHost(t, out IntPtr src))
        {
            HostReduce.Copy(dst, src, t.SizeInBytes);
            return;
        }
        for (long done = 0; done < t.SizeInBytes; done += MaxSpanBytes)
        {
            int n = (int)Math.Min(MaxSpanBytes, t.SizeInBytes - done);
            Device.CopyToHost(t.Buffer, t.OffsetBytes + done, new Span<byte>((byte*)dst + done, n));
        }
    }

    /// <summary>Copies host bytes at <paramref name="src"/> into the tensor through the device copy contract.</summary>
    private unsafe void StageOut(IntPtr src, Tensor t)
    {
        for (long done = 0; done < t.SizeInBytes; done += MaxSpanBytes)
        {
            int n = (int)Math.Min(MaxSpanBytes, t.SizeInBytes - done);
            Device.CopyFromHost(new ReadOnlySpan<byte>((byte*)src + done, n), t.Buffer, t.OffsetBytes + done);
        }
    }
}
