namespace Hal.Conformance.Collectives;

/// <summary>What one rank saw in one case: its wrong elements and the first of them.</summary>
internal readonly record struct LocalOutcome(long WrongCount, long FirstWrongIndex, double Expected, double Actual, ulong ExpectedBits, ulong ActualBits)
{
    public static LocalOutcome Clean { get; } = new(0, -1, 0, 0, 0, 0);
}

/// <summary>
/// Runs one case on one rank: builds this rank's inputs, calls the collective, and checks the output against the
/// exact result computed from every rank's inputs. N = ranks, n = the case's per-rank count; tensors are flat.
/// </summary>
internal static class CollectiveCaseRunner
{
    // Bytes an output buffer starts as, so that elements the collective failed to write are caught.
    private const byte Sentinel = 0xA5;

    public static LocalOutcome Run(ICommunicator comm, CollectiveCase c, ulong runSeed)
    {
        ulong seed = CollectiveValues.CaseSeed(runSeed, c.Id);
        return c.Collective switch
        {
            CollectiveKind.AllReduce => AllReduce(comm, c, seed),
            CollectiveKind.Broadcast => Broadcast(comm, c, seed),
            CollectiveKind.AllGather => AllGather(comm, c, seed),
            CollectiveKind.ReduceScatter => ReduceScatter(comm, c, seed),
            CollectiveKind.AllToAll => AllToAll(comm, c, seed),
            CollectiveKind.SendRecv => SendRecv(comm, c, seed),
            CollectiveKind.Barrier => Barrier(comm),
            _ => throw new ArgumentOutOfRangeException(nameof(c), c.Collective, null),
        };
    }

    private static LocalOutcome AllReduce(ICommunicator comm, CollectiveCase c, ulong seed)
    {
        long n = c.Count;
        long max = CollectiveValues.MaxUnits(c.DType, comm.Size);
        byte[] input = Inputs(seed, comm.Rank, 0, n, max, c.DType);
        double[] expected = Reduced(seed, comm.Size, 0, n, max, c.DType, c.Op!.Value);
        using var send = Upload(comm.Device, input, n, c.DType);
        using var recvOwned = c.InPlace ? null : Upload(comm.Device, Filled(n, c.DType), n, c.DType);
        var recv = recvOwned ?? send;
        comm.AllReduce(send, recv, c.Op.Value);
        return Check(Download(recv), expected, c.DType, Tolerant(c));
    }

    private static LocalOutcome Broadcast(ICommunicator comm, CollectiveCase c, ulong seed)
    {
        long n = c.Count;
        long max = CollectiveValues.MaxUnits(c.DType, comm.Size);
        // Non-root ranks start from data of their own, so a rank that kept its tensor is caught.
        byte[] input = Inputs(seed, comm.Rank, 0, n, max, c.DType);
        double[] expected = Values(seed, c.Root, 0, n, max, c.DType);
        using var tensor = Upload(comm.Device, input, n, c.DType);
        comm.Broadcast(tensor, c.Root);
        return Check(Download(tensor), expected, c.DType, tolerant: false);
    }

    private static LocalOutcome AllGather(ICommunicator comm, CollectiveCase c, ulong seed)
    {
        long n = c.Count;
        int size = comm.Size;
        long max = CollectiveValues.MaxUnits(c.DType, size);
        byte[] mine = Inputs(seed, comm.Rank, 0, n, max, c.DType);
        var expected = new double[size * n];
        for (int j = 0; j < size; j++)
        {
            Values(seed, j, 0, n, max, c.DType).CopyTo(expected, j * n);
        }
        byte[] recvInit = Filled(size * n, c.DType);
        if (c.InPlace)
        {
            // In place as NCCL defines it: send is this rank's block of recv.
            mine.CopyTo(recvInit, comm.Rank * n * c.DType.SizeInBytes());
        }
        using var recv = Upload(comm.Device, recvInit, size * n, c.DType);
        using var sendOwned = c.InPlace ? null : Upload(comm.Device, mine, n, c.DType);
        var send = sendOwned ?? recv.View(comm.Rank * n, new Shape(checked((int)n)));
        comm.AllGather(send, recv);
        return Check(Download(recv), expected, c.DType, tolerant: false);
    }

    private static LocalOutcome ReduceScatter(ICommunicator comm, CollectiveCase c, ulong seed)
    {
        long n = c.Count;
        int size = comm.Size;
        long max = CollectiveValues.MaxUnits(c.DType, size);
        byte[] input = Inputs(seed, comm.Rank, 0, size * n, max, c.DType);
        double[] expected = Reduced(seed, size, comm.Rank * n, n, max, c.DType, c.Op!.Value);
        using var send = Upload(comm.Device, input, size * n, c.DType);
        // In place as NCCL defines it: recv is this rank's block of send.
        using var recvOwned = c.InPlace ? null : Upload(comm.Device, Filled(n, c.DType), n, c.DType);
        var recv = recvOwned ?? send.View(comm.Rank * n, new Shape(checked((int)n)));
        comm.ReduceScatter(send, recv, c.Op.Value);
        return Check(Download(recv), expected, c.DType, Tolerant(c));
    }

    private static LocalOutcome AllToAll(ICommunicator comm, CollectiveCase c, ulong seed)
    {
        long n = c.Count;
        int size = comm.Size;
        long max = CollectiveValues.MaxUnits(c.DType, size);
        byte[] input = Inputs(seed, comm.Rank, 0, size * n, max, c.DType);
        var expected = new double[size * n];
        for (int j = 0; j < size; j++)
        {
            // Block j of this rank's recv is block Rank of rank j's send.
            Values(seed, j, comm.Rank * n, n, max, c.DType).CopyTo(expected, j * n);
        }
        using var send = Upload(comm.Device, input, size * n, c.DType);
        using var recv = Upload(comm.Device, Filled(size * n, c.DType), size * n, c.DType);
        comm.AllToAll(send, recv);
        return Check(Download(recv), expected, c.DType, tolerant: false);
    }

    private static LocalOutcome SendRecv(ICommunicator comm, CollectiveCase c, ulong seed)
    {
        long n = c.Count;
        int size = comm.Size;
        int next = (comm.Rank + 1) % size;
        int prev = (comm.Rank + size - 1) % size;
        long max = CollectiveValues.MaxUnits(c.DType, size);
        double[] expected = Values(seed, prev, 0, n, max, c.DType);
        using var send = Upload(comm.Device, Inputs(seed, comm.Rank, 0, n, max, c.DType), n, c.DType);
        using var recv = Upload(comm.Device, Filled(n, c.DType), n, c.DType);
        // Even ranks send first and odd ranks receive first, so the ring cannot deadlock on a blocking send.
        if (comm.Rank % 2 == 0)
        {
            comm.Send(send, next, tag: 7);
            comm.Recv(recv, prev, tag: 7);
        }
        else
        {
            comm.Recv(recv, prev, tag: 7);
            comm.Send(send, next, tag: 7);
        }
        return Check(Download(recv), expected, c.DType, tolerant: false);
    }

    private static LocalOutcome Barrier(ICommunicator comm)
    {
        for (int i = 0; i < 3; i++)
        {
            comm.Barrier();
        }
        return LocalOutcome.Clean;
    }

    private static bool Tolerant(CollectiveCase c) => c.Op == ReduceOp.Mean && c.DType.IsFloatingPoint();

    /// <summary>Elements [start, start+count) of <paramref name="rank"/>'s inputs, encoded.</summary>
    private static byte[] Inputs(ulong seed, int rank, long start, long count, long max, DType dtype)
    {
        var bytes = new byte[count * dtype.SizeInBytes()];
        for (long i = 0; i < count; i++)
        {
            CollectiveValues.Write(bytes, i, dtype, CollectiveValues.ValueOf(CollectiveValues.Units(seed, rank, start + i, max), dtype));
        }
        return bytes;
    }

    /// <summary>Elements [start, start+count) of <paramref name="rank"/>'s inputs, as values.</summary>
    private static double[] Values(ulong seed, int rank, long start, long count, long max, DType dtype)
    {
        var values = new double[count];
        for (long i = 0; i < count; i++)
        {
            values[i] = CollectiveValues.ValueOf(CollectiveValues.Units(seed, rank, start + i, max), dtype);
        }
        return values;
    }

    /// <summary>The exact reduction over all ranks of elements [start, start+count).</summary>
    private static double[] Reduced(ulong seed, int ranks, long start, long count, long max, DType dtype, ReduceOp op)
    {
        var values = new double[count];
        Span<long> operands = stackalloc long[ranks];
        for (long i = 0; i < count; i++)
        {
            for (int r = 0; r < ranks; r++)
            {
                operands[r] = CollectiveValues.Units(seed, r, start + i, max);
            }
            values[i] = CollectiveValues.Reduce(operands, op, dtype);
        }
        return values;
    }

    private static byte[] Filled(long count, DType dtype)
    {
        var bytes = new byte[count * dtype.SizeInBytes()];
        bytes.AsSpan().Fill(Sentinel);
        return bytes;
    }

    private static Tensor Upload(IDevice device, byte[] bytes, long count, DType dtype)
    {
        var buffer = device.Allocator.Allocate(bytes.LongLength);
        try
        {
            device.CopyFromHost(bytes, buffer, 0);
            return new Tensor(buffer, 0, new Shape(checked((int)count)), dtype, ownsBuffer: true);
        }
        catch
        {
            buffer.Dispose();
            throw;
        }
    }

    private static byte[] Download(Tensor t)
    {
        var bytes = new byte[t.SizeInBytes];
        t.Device.CopyToHost(t.Buffer, t.OffsetBytes, bytes);
        return bytes;
    }

    /// <summary>
    /// Bit-for-bit against the expected values encoded in the dtype; with <paramref name="tolerant"/> (float Mean),
    /// within 2 ULP of the exact quotient: the sum is exact, then one division and at most one narrowing rounding
    /// (F32 → F16/BF16) each add up to half an ULP, and 2 ULP is the contract's bound.
    /// </summary>
    private static LocalOutcome Check(byte[] actual, double[] expected, DType dtype, bool tolerant)
    {
        long wrong = 0;
        long first = -1;
        Span<byte> encoded = stackalloc byte[8];
        for (long i = 0; i < expected.LongLength; i++)
        {
            CollectiveValues.Write(encoded, 0, dtype, expected[i]);
            ulong expectedBits = CollectiveValues.Bits(encoded, 0, dtype);
            bool ok;
            if (tolerant)
            {
                double a = CollectiveValues.Read(actual, i, dtype);
                ok = Math.Abs(a - expected[i]) <= 2 * CollectiveValues.Ulp(expected[i], dtype);
            }
            else
            {
                ok = CollectiveValues.Bits(actual, i, dtype) == expectedBits;
            }
            if (!ok)
            {
                wrong++;
                if (first < 0)
                {
                    first = i;
                }
            }
        }
        if (first < 0)
        {
            return LocalOutcome.Clean;
        }
        CollectiveValues.Write(encoded, 0, dtype, expected[first]);
        return new LocalOutcome(wrong, first, expected[first], CollectiveValues.Read(actual, first, dtype),
            CollectiveValues.Bits(encoded, 0, dtype), CollectiveValues.Bits(actual, first, dtype));
    }
}
