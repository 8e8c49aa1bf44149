using Hal.Collectives.Mpi.Native;
using Hal.Numerics;

namespace Hal.Collectives.Mpi;

// Shapes: n = elements per rank, S = Size. all-reduce send/recv [n]; broadcast [n]; all-gather send [n] -> recv [S·n];
// reduce-scatter send [S·n] -> recv [n]; all-to-all send/recv [S·b] with block b = n / S.
public sealed partial class MpiCommunicator
{
    /// <summary>Fields of the descriptor the ranks compare before a collective.</summary>
    private const int DescriptorFields = 5;

    /// <summary>MPI_ERR_TRUNCATE in Open MPI: a message longer than the receive buffer.</summary>
    private const int ErrorTruncate = 15;

    private enum CollectiveCode
    {
        AllReduce = 1,
        Broadcast,
        AllGather,
        ReduceScatter,
        AllToAll,
        Barrier,
        Split,
    }

    /// <inheritdoc />
    protected override void AllReduceCore(Tensor send, Tensor recv, ReduceOp op)
    {
        ThrowIfFaulted();
        long count = recv.ElementCount;
        Verify(CollectiveCode.AllReduce, count, recv.DType, -1, op);
        int n = ToCount(count, "all-reduce");
        bool inPlace = ReferenceEquals(send, recv) || (ReferenceEquals(send.Buffer, recv.Buffer) && send.OffsetBytes == recv.OffsetBytes);
        IntPtr recvHost = Acquire(recv, 1, copyIn: inPlace, out bool recvStaged);
        IntPtr sendHost = inPlace ? MpiNative.InPlace : Acquire(send, 0, copyIn: true, out _);
        IntPtr request;
        lock (MpiRuntime.Gate)
        {
            Start(MpiNative.Iallreduce(sendHost, recvHost, n, DataType(recv.DType), Operation(recv.DType, op), _comm, out request), "MPI_Iallreduce", "all-reduce", count, recv.DType);
        }
        Complete(ref request, "MPI_Iallreduce", "all-reduce", count, recv.DType);
        if (op == ReduceOp.Mean)
        {
            DivideBySize(recvHost, n, recv.DType);
        }
        Publish(recv, recvHost, recvStaged);
    }

    /// <inheritdoc />
    protected override void BroadcastCore(Tensor tensor, int root)
    {
        ThrowIfFaulted();
        long count = tensor.ElementCount;
        Verify(CollectiveCode.Broadcast, count, tensor.DType, root, null);
        int n = ToCount(count, "broadcast");
        IntPtr host = Acquire(tensor, 1, copyIn: Rank == root, out bool staged);
        IntPtr request;
        lock (MpiRuntime.Gate)
        {
            Start(MpiNative.Ibcast(host, n, DataType(tensor.DType), root, _comm, out request), "MPI_Ibcast", "broadcast", count, tensor.DType);
        }
        Complete(ref request, "MPI_Ibcast", "broadcast", count, tensor.DType);
        if (Rank != root)
        {
            Publish(tensor, host, staged);
        }
    }

    /// <inheritdoc />
    protected override void AllGatherCore(Tensor send, Tensor recv)
    {
        ThrowIfFaulted();
        long count = send.ElementCount;
        Verify(CollectiveCode.AllGather, count, send.DType, -1, null);
        int n = ToCount(count, "all-gather");
        IntPtr sendHost = Acquire(send, 0, copyIn: true, out _);
        IntPtr recvHost = Acquire(recv, 1, copyIn: false, out bool recvStaged);
        IntPtr type = DataType(send.DType);
        IntPtr request;
        lock (MpiRuntime.Gate)
        {
            Start(MpiNative.Iallgather(sendHost, n, type, recvHost, n, type, _comm, out request), "MPI_Iallgather", "all-gather", count, send.DType);
        }
        Complete(ref request, "MPI_Iallgather", "all-gather", count, send.DType);
        Publish(recv, recvHost, recvStaged);
    }

    /// <inheritdoc />
    protected override void ReduceScatterCore(Tensor send, Tensor recv, ReduceOp op)
    {
        ThrowIfFaulted();
        long count = recv.ElementCount;
        Verify(CollectiveCode.ReduceScatter, count, recv.DType, -1, op);
        int n = ToCount(count, "reduce-scatter");
        ToCount(send.ElementCount, "reduce-scatter");
        IntPtr sendHost = Acquire(send, 0, copyIn: true, out _);
        IntPtr recvHost = Acquire(recv, 1, copyIn: false, out bool recvStaged);
        IntPtr request;
        lock (MpiRuntime.Gate)
        {
            Start(MpiNative.IreduceScatterBlock(sendHost, recvHost, n, DataType(recv.DType), Operation(recv.DType, op), _comm, out request), "MPI_Ireduce_scatter_block", "reduce-scatter", count, recv.DType);
        }
        Complete(ref request, "MPI_Ireduce_scatter_block", "reduce-scatter", count, recv.DType);
        if (op == ReduceOp.Mean)
        {
            DivideBySize(recvHost, n, recv.DType);
        }
        Publish(recv, recvHost, recvStaged);
    }

    /// <inheritdoc />
    protected override void AllToAllCore(Tensor send, Tensor recv)
    {
        ThrowIfFaulted();
        long count = send.ElementCount;
        Verify(CollectiveCode.AllToAll, count, send.DType, -1, null);
        ToCount(count, "all-to-all");
        int block = (int)(count / Size);
        IntPtr sendHost = Acquire(send, 0, copyIn: true, out _);
        IntPtr recvHost = Acquire(recv, 1, copyIn: false, out bool recvStaged);
        IntPtr type = DataType(send.DType);
        IntPtr request;
        lock (MpiRuntime.Gate)
        {
            Start(MpiNative.Ialltoall(sendHost, block, type, recvHost, block, type, _comm, out request), "MPI_Ialltoall", "all-to-all", count, send.DType);
        }
        Complete(ref request, "MPI_Ialltoall", "all-to-all", count, send.DType);
        Publish(recv, recvHost, recvStaged);
    }

    /// <inheritdoc />
    protected override void SendCore(Tensor tensor, int peer, int tag)
    {
        ThrowIfFaulted();
        CheckTag(tag);
        long count = tensor.ElementCount;
        int n = ToCount(count, "send");
        IntPtr host = Acquire(tensor, 0, copyIn: true, out _);
        IntPtr request;
        lock (MpiRuntime.Gate)
        {
            Start(MpiNative.Isend(host, n, DataType(tensor.DType), peer, tag, _comm, out request), "MPI_Isend", $"send to rank {peer} with tag {tag}", count, tensor.DType);
        }
        Complete(ref request, "MPI_Isend", $"send to rank {peer} with tag {tag}", count, tensor.DType);
    }

    /// <inheritdoc />
    protected override void RecvCore(Tensor tensor, int peer, int tag)
    {
        ThrowIfFaulted();
        CheckTag(tag);
        long count = tensor.ElementCount;
        int n = ToCount(count, "recv");
        IntPtr host = Acquire(tensor, 1, copyIn: false, out bool staged);
        IntPtr type = DataType(tensor.DType);
        IntPtr request;
        lock (MpiRuntime.Gate)
        {
            Start(MpiNative.Irecv(host, n, type, peer, tag, _comm, out request), "MPI_Irecv", $"recv from rank {peer} with tag {tag}", count, tensor.DType);
        }
        MpiNative.Status status;
        try
        {
            status = Complete(ref request, "MPI_Irecv", $"recv from rank {peer} with tag {tag}", count, tensor.DType);
        }
        catch (MpiException e) when (e.ErrorCode == ErrorTruncate)
        {
            throw new CollectiveMismatchException(Rank, "recv", $"rank {peer} sent more than the {count} {tensor.DType.Name()} elements this rank receives (tag {tag})");
        }
        int received;
        lock (MpiRuntime.Gate)
        {
            MpiException.Check(MpiNative.GetCount(status, type, out received), "MPI_Get_count", "recv");
        }
        if (received != n)
        {
            throw new CollectiveMismatchException(Rank, "recv", $"rank {peer} sent {received} elements with tag {tag}, this rank receives {count} {tensor.DType.Name()}");
        }
        Publish(tensor, host, staged);
    }

    /// <inheritdoc />
    protected override void BarrierCore()
    {
        ThrowIfFaulted();
        if (VerifyArguments)
        {
            // The descriptor exchange is itself a synchronization of every rank: it is the barrier.
            Verify(CollectiveCode.Barrier, 0, DType.I64, -1, null);
            return;
        }
        Barrier(CollectiveCode.Barrier);
    }

    private void Barrier(CollectiveCode code)
    {
        IntPtr request;
        lock (MpiRuntime.Gate)
        {
            Start(MpiNative.Ibarrier(_comm, out request), "MPI_Ibarrier", code.ToString(), 0, DType.I64);
        }
        Complete(ref request, "MPI_Ibarrier", code.ToString(), 0, DType.I64);
    }

    /// <summary>
    /// Compares (op, count, dtype, root, reduction) across ranks with one MPI_Allreduce(MIN) over [d, −d]: the first
    /// half gives each field's minimum and the second minus its maximum; every rank sees the same result, so either
    /// all ranks go on or all raise.
    /// </summary>
    private unsafe void Verify(CollectiveCode code, long count, DType dtype, int root, ReduceOp? op)
    {
        if (!VerifyArguments)
        {
            return;
        }
        long* d = _descriptor;
        d[0] = (long)code;
        d[1] = count;
        d[2] = (long)dtype;
        d[3] = root;
        d[4] = op is null ? -1 : (long)op.Value;
        for (int i = 0; i < DescriptorFields; i++)
        {
            d[DescriptorFields + i] = -d[i];
        }
        IntPtr request;
        lock (MpiRuntime.Gate)
        {
            Start(MpiNative.Iallreduce(MpiNative.InPlace, (IntPtr)d, DescriptorFields * 2, MpiRuntime.Handles.Int64, MpiRuntime.Handles.Min, _comm, out request),
                "MPI_Iallreduce", $"argument check of {OpName(code)}", count, dtype);
        }
        Complete(ref request, "MPI_Iallreduce", $"argument check of {OpName(code)}", count, dtype);
        bool same = true;
        for (int i = 0; i < DescriptorFields; i++)
        {
            same &= d[i] == -d[DescriptorFields + i];
        }
        if (!same)
        {
            throw new CollectiveMismatchException(Rank, OpName(code), DescribeMismatch(d));
        }
    }

    private static unsafe string DescribeMismatch(long* d)
    {
        string[] names = ["collective", "element count", "dtype", "root", "reduction"];
        var parts = new List<string>();
        for (int i = 0; i < DescriptorFields; i++)
        {
            long min = d[i], max = -d[DescriptorFields + i];
            if (min != max)
            {
                parts.Add(i switch
                {
                    0 => $"{names[i]} differs ({OpName((CollectiveCode)min)} on some ranks, {OpName((CollectiveCode)max)} on others)",
                    2 => $"{names[i]} differs ({((DType)min).Name()} vs {((DType)max).Name()})",
                    4 => $"{names[i]} differs ({(min < 0 ? "none" : ((ReduceOp)min).ToString())} vs {(ReduceOp)max})",
                    _ => $"{names[i]} ranges from {min} to {max}",
                });
            }
        }
        return string.Join("; ", parts);
    }

    private static string OpName(CollectiveCode code) => code switch
    {
        CollectiveCode.AllReduce => "all-reduce",
        CollectiveCode.Broadcast => "broadcast",
        CollectiveCode.AllGather => "all-gather",
        CollectiveCode.ReduceScatter => "reduce-scatter",
        CollectiveCode.AllToAll => "all-to-all",
        CollectiveCode.Barrier => "barrier",
        CollectiveCode.Split => "split",
        _ => $"collective #{(int)code}",
    };

    private static void CheckTag(int tag)
    {
        // MPI guarantees tags up to 32767 (MPI_TAG_UB is at least that); negative tags are reserved.
        if (tag is < 0 or > 32767)
        {
            throw new ArgumentOutOfRangeException(nameof(tag), tag, "MPI tags must be in [0, 32767]");
        }
    }

    private void Start(int code, string call, string what, long count, DType dtype)
    {
        if (code != MpiNative.Success)
        {
            throw MpiException.Create(code, call, $"{Describe(what, count, dtype)} on rank {Rank} of {_name}");
        }
    }

    private MpiNative.Status Complete(ref IntPtr request, string call, string what, long count, DType dtype)
    {
        if (!MpiRuntime.Wait(ref request, Timeout, out int code, out MpiNative.Status status))
        {
            _faulted = true;
            throw new CollectiveTimeoutException(Rank, $"{call} ({Describe(what, count, dtype)})", $"the other ranks of {_name} (n={Size})", Timeout);
        }
        Start(code, call, what, count, dtype);
        return status;
    }

    /// <summary>The host address MPI reads or writes for <paramref name="tensor"/>: its own when the device gives one, else a staging slot.</summary>
    private IntPtr Acquire(Tensor tensor, int slot, bool copyIn, out bool staged)
    {
        if (!StageThroughHost && tensor.Buffer.TryGetHostPointer(out IntPtr pointer))
        {
            staged = false;
            return pointer + (nint)tensor.OffsetBytes;
        }
        staged = true;
        IntPtr host = _staging.Get(slot, tensor.SizeInBytes);
        if (copyIn)
        {
            Copy(tensor, host, toHost: true);
        }
        return host;
    }

    /// <summary>Copies a staged result back to the tensor's device (nothing to do for a tensor MPI wrote directly).</summary>
    private void Publish(Tensor tensor, IntPtr host, bool staged)
    {
        if (staged)
        {
            Copy(tensor, host, toHost: false);
        }
    }

    private unsafe void Copy(Tensor tensor, IntPtr host, bool toHost)
    {
        // Spans hold at most 2^31−1 bytes: copy in 1 GiB pieces.
        const long Piece = 1L << 30;
        for (long done = 0; done < tensor.SizeInBytes; done += Piece)
        {
            int bytes = (int)Math.Min(Piece, tensor.SizeInBytes - done);
            var span = new Span<byte>((byte*)host + done, bytes);
            if (toHost)
            {
                Device.CopyToHost(tensor.Buffer, tensor.OffsetBytes + done, span);
            }
            else
            {
                Device.CopyFromHost(span, tensor.Buffer, tensor.OffsetBytes + done);
            }
        }
    }

    /// <summary>Mean = Sum / Size, in the dtype's arithmetic: integers truncate toward zero, 16-bit floats divide in F32 and round once.</summary>
    private unsafe void DivideBySize(IntPtr host, int count, DType dtype)
    {
        int size = Size;
        switch (dtype)
        {
            case DType.F32:
                var f = new Span<float>((void*)host, count);
                for (int i = 0; i < f.Length; i++)
                {
                    f[i] /= size;
                }
                break;
            case DType.F64:
                var g = new Span<double>((void*)host, count);
                for (int i = 0; i < g.Length; i++)
                {
                    g[i] /= size;
                }
                break;
            case DType.I32:
                var a = new Span<int>((void*)host, count);
                for (int i = 0; i < a.Length; i++)
                {
                    a[i] /= size;
                }
                break;
            case DType.I64:
                var b = new Span<long>((void*)host, count);
                for (int i = 0; i < b.Length; i++)
                {
                    b[i] /= size;
                }
                break;
            case DType.F16:
                var h = new Span<ushort>((void*)host, count);
                for (int i = 0; i < h.Length; i++)
                {
                    h[i] = HalfConvert.FloatToF16(HalfConvert.F16ToFloat(h[i]) / size);
                }
                break;
            case DType.BF16:
                var bf = new Span<ushort>((void*)host, count);
                for (int i = 0; i < bf.Length; i++)
                {
                    bf[i] = HalfConvert.FloatToBf16(HalfConvert.Bf16ToFloat(bf[i]) / size);
                }
                break;
            default:
                throw new DTypeNotSupportedException("mean", dtype, "mpi", "collectives take f32, f64, f16, bf16, i32 and i64");
        }
    }
}
