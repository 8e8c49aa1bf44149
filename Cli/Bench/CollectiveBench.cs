using System.Diagnostics;
using System.Runtime.InteropServices;
using Hal.Conformance.Collectives;

namespace Hal.Cli.Bench;

/// <summary>The collectives <c>hal bench</c> measures.</summary>
internal enum BenchCollective
{
    AllReduce,
    AllGather,
    ReduceScatter,
}

/// <summary>What to measure; every rank passes an equal spec.</summary>
/// <param name="Collective">the collective.</param>
/// <param name="DType">element type.</param>
/// <param name="Op">reduction (all-reduce, reduce-scatter).</param>
/// <param name="SizesBytes">total sizes as nccl-tests counts them: the all-reduce buffer, the all-gather output, the reduce-scatter input.</param>
/// <param name="Iterations">timed iterations per size, or null to pick by size.</param>
internal sealed record CollectiveBenchSpec(BenchCollective Collective, DType DType, ReduceOp Op, IReadOnlyList<long> SizesBytes, int? Iterations);

/// <summary>A plain all-reduce on host memory to compare against: (send, recv, element count).</summary>
internal delegate void PeerAllReduce(IntPtr sendHost, IntPtr recvHost, long count);

/// <summary>One measured size (rank 0's view; times are the slowest rank's, #wrong is summed over ranks).</summary>
internal sealed record CollectiveBenchRow(
    string Op, string Comm, int Ranks, long Bytes, long Count, string Type, string RedOp,
    double TimeUs, double AlgbwGBps, double BusbwGBps, long Wrong, double? PeerTimeUs, double? PeerBusbwGBps);

/// <summary>
/// nccl-tests style measurement on one rank. Per size: warm-up, then timed iterations, each preceded by a barrier and
/// followed by a bit-for-bit check of the output (outside the timed region); an iteration's time is the slowest
/// rank's, and the row's time the median over iterations. algbw = bytes / time; busbw = algbw × 2(N−1)/N for
/// all-reduce and × (N−1)/N for all-gather and reduce-scatter (the bytes each rank's link must carry).
/// Inputs are small integers, so every reduction is exact and the expected output is computed once per size.
/// Tensors are flat; N = ranks, n = elements per rank block.
/// </summary>
internal static class CollectiveBench
{
    public static string NameOf(BenchCollective c) => c switch
    {
        BenchCollective.AllReduce => "allreduce",
        BenchCollective.AllGather => "allgather",
        BenchCollective.ReduceScatter => "reducescatter",
        _ => throw new ArgumentOutOfRangeException(nameof(c), c, null),
    };

    /// <summary>The bus-bandwidth factor of <paramref name="c"/> at <paramref name="ranks"/> ranks.</summary>
    public static double BusFactor(BenchCollective c, int ranks) =>
        c == BenchCollective.AllReduce ? 2.0 * (ranks - 1) / ranks : (double)(ranks - 1) / ranks;

    /// <summary>Measures every size on this rank; every rank returns the same rows.</summary>
    public static List<CollectiveBenchRow> RunRank(ICommunicator comm, CollectiveBenchSpec spec, PeerAllReduce? peer)
    {
        var rows = new List<CollectiveBenchRow>();
        foreach (long bytes in spec.SizesBytes)
        {
            rows.Add(RunSize(comm, spec, bytes, peer));
        }
        return rows;
    }

    /// <summary>Timed iterations for a size: enough to move about 1 GiB, between 5 and 50.</summary>
    public static int DefaultIterations(long bytes) => (int)Math.Clamp((1L << 30) / Math.Max(bytes, 1), 5, 50);

    private static CollectiveBenchRow RunSize(ICommunicator comm, CollectiveBenchSpec spec, long requestedBytes, PeerAllReduce? peer)
    {
        int ranks = comm.Size;
        int elementBytes = spec.DType.SizeInBytes();
        long count = requestedBytes / elementBytes;
        if (spec.Collective != BenchCollective.AllReduce)
        {
            count -= count % ranks;
        }
        long n = spec.Collective == BenchCollective.AllReduce ? count : count / ranks;
        long sendCount = spec.Collective == BenchCollective.AllGather ? n : count;
        long recvCount = spec.Collective == BenchCollective.ReduceScatter ? n : count;
        bool withPeer = peer is not null && spec.Collective == BenchCollective.AllReduce;

        using var send = Allocate(comm.Device, sendCount, spec.DType);
        using var recv = Allocate(comm.Device, recvCount, spec.DType);
        comm.Device.CopyFromHost(Inputs(comm.Rank, sendCount, spec.DType), send.Buffer, 0);
        byte[] expected = Expected(spec, comm.Rank, ranks, n, recvCount);
        byte[] actual = new byte[recv.SizeInBytes];
        Action run = spec.Collective switch
        {
            BenchCollective.AllReduce => () => comm.AllReduce(send, recv, spec.Op),
            BenchCollective.AllGather => () => comm.AllGather(send, recv),
            _ => () => comm.ReduceScatter(send, recv, spec.Op),
        };
        Action? runPeer = null;
        if (withPeer)
        {
            if (!send.Buffer.TryGetHostPointer(out IntPtr sendHost) || !recv.Buffer.TryGetHostPointer(out IntPtr recvHost))
            {
                throw new UsageException($"the raw MPI peer needs buffers in host memory; {comm.Device.Id} buffers are not");
            }
            runPeer = () => peer!(sendHost, recvHost, count);
        }

        int iterations = spec.Iterations ?? DefaultIterations(requestedBytes);
        int warmup = Math.Max(2, iterations / 5);
        for (int i = 0; i < warmup; i++)
        {
            run();
            runPeer?.Invoke();
        }
        var timesUs = new double[iterations];
        var peerTimesUs = new double[iterations];
        long wrong = 0;
        for (int i = 0; i < iterations; i++)
        {
            timesUs[i] = Timed(comm, run);
            comm.Device.CopyToHost(recv.Buffer, 0, actual);
            wrong += CountWrong(actual, expected, elementBytes);
            if (runPeer is not null)
            {
                peerTimesUs[i] = Timed(comm, runPeer);
            }
        }

        // The slowest rank sets each iteration's time; wrong elements add up over ranks.
        double[] slowest = Combine(comm, timesUs, ReduceOp.Max);
        double[] peerSlowest = withPeer ? Combine(comm, peerTimesUs, ReduceOp.Max) : [];
        long wrongTotal = (long)Combine(comm, [wrong], ReduceOp.Sum)[0];

        long bytes = count * elementBytes;
        double timeUs = Median(slowest);
        double algbw = AlgBandwidthGBps(bytes, timeUs);
        double busbw = algbw * BusFactor(spec.Collective, ranks);
        double? peerTimeUs = withPeer ? Median(peerSlowest) : null;
        double? peerBusbw = peerTimeUs is { } p ? AlgBandwidthGBps(bytes, p) * BusFactor(spec.Collective, ranks) : null;
        string redop = spec.Collective == BenchCollective.AllGather ? "none" : CollectiveCase.NameOf(spec.Op);
        return new CollectiveBenchRow(NameOf(spec.Collective), comm.Kind, ranks, bytes, count, spec.DType.Name(), redop,
            timeUs, algbw, busbw, wrongTotal, peerTimeUs, peerBusbw);
    }

    /// <summary>GB/s (10⁹ bytes per second) of <paramref name="bytes"/> moved in <paramref name="timeUs"/> µs; 0 for an empty or unmeasurably fast run.</summary>
    public static double AlgBandwidthGBps(long bytes, double timeUs) => timeUs > 0 ? bytes / timeUs / 1e3 : 0;

    private static double Timed(ICommunicator comm, Action action)
    {
        comm.Barrier();
        long start = Stopwatch.GetTimestamp();
        action();
        return Stopwatch.GetElapsedTime(start).TotalMicroseconds;
    }

    private static double[] Combine(ICommunicator comm, double[] values, ReduceOp op)
    {
        var device = comm.Device;
        using var t = Allocate(device, values.Length, DType.F64);
        device.CopyFromHost(MemoryMarshal.AsBytes(values.AsSpan()), t.Buffer, 0);
        comm.AllReduce(t, t, op);
        var result = new double[values.Length];
        device.CopyToHost(t.Buffer, 0, MemoryMarshal.AsBytes(result.AsSpan()));
        return result;
    }

    private static double Median(double[] values)
    {
        var sorted = values.Order().ToArray();
        int mid = sorted.Length / 2;
        return sorted.Length % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
    }

    private static Tensor Allocate(IDevice device, long count, DType dtype)
    {
        var buffer = device.Allocator.Allocate(count * dtype.SizeInBytes());
        return new Tensor(buffer, 0, new Shape(checked((int)count)), dtype, ownsBuffer: true);
    }

    // Units of element i on a rank: integers in [−8, 8], so sums over 8 ranks (|sum| ≤ 64) are exact in every dtype.
    private static long Units(int rank, long i) => ((i * 7) + (rank * 3)) % 17 - 8;

    private static byte[] Inputs(int rank, long count, DType dtype)
    {
        var bytes = new byte[count * dtype.SizeInBytes()];
        for (long i = 0; i < count; i++)
        {
            CollectiveValues.Write(bytes, i, dtype, CollectiveValues.ValueOf(Units(rank, i), dtype));
        }
        return bytes;
    }

    private static byte[] Expected(CollectiveBenchSpec spec, int rank, int ranks, long n, long recvCount)
    {
        var bytes = new byte[recvCount * spec.DType.SizeInBytes()];
        var operands = new long[ranks];
        for (long i = 0; i < recvCount; i++)
        {
            double value;
            if (spec.Collective == BenchCollective.AllGather)
            {
                value = CollectiveValues.ValueOf(Units((int)(i / n), i % n), spec.DType);
            }
            else
            {
                // All-reduce reduces element i; reduce-scatter gives this rank block `rank` of the inputs.
                long source = spec.Collective == BenchCollective.AllReduce ? i : (rank * n) + i;
                for (int r = 0; r < ranks; r++)
                {
                    operands[r] = Units(r, source);
                }
                value = CollectiveValues.Reduce(operands, spec.Op, spec.DType);
            }
            CollectiveValues.Write(bytes, i, spec.DType, value);
        }
        return bytes;
    }

    private static long CountWrong(byte[] actual, byte[] expected, int elementBytes)
    {
        if (actual.AsSpan().SequenceEqual(expected))
        {
            return 0;
        }
        long wrong = 0;
        for (int offset = 0; offset < actual.Length; offset += elementBytes)
        {
            if (!actual.AsSpan(offset, elementBytes).SequenceEqual(expected.AsSpan(offset, elementBytes)))
            {
                wrong++;
            }
        }
        return wrong;
    }
}
