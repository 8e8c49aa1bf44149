using System.Runtime.InteropServices;

namespace Hal.Conformance.Collectives;

/// <summary>
/// Runs the collective catalogue on one rank. Every rank of the communicator calls <see cref="Run"/> with equal
/// options; after each case the ranks exchange what they saw (an all-gather of eight I64 per rank, each block
/// carrying a checksum so a corrupted exchange is reported rather than believed), so every rank returns the same
/// combined results.
/// </summary>
public static class CollectiveConformance
{
    // Per-rank record of the exchange: wrong, first index, expected and actual (as F64 bits), expected and actual
    // (raw bits), error flag, checksum.
    private const int RecordLength = 8;

    /// <summary>Runs every case the options select on this rank; returns the results combined over all ranks.</summary>
    /// <exception cref="CollectiveTimeoutException">the exchange of results after a case timed out (a rank is gone).</exception>
    public static IReadOnlyList<CollectiveCaseResult> Run(ICommunicator comm, CollectiveConformanceOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(comm);
        options ??= new CollectiveConformanceOptions();
        var results = new List<CollectiveCaseResult>();
        foreach (var c in CollectiveCatalogue.Cases(comm.Size, options.Quick))
        {
            if (options.Filter is { } filter && !filter(c))
            {
                continue;
            }
            var result = RunCase(comm, c, options.Seed);
            results.Add(result);
            options.OnResult?.Invoke(result);
        }
        return results;
    }

    /// <summary>Runs one case on this rank and combines it with the other ranks'.</summary>
    public static CollectiveCaseResult RunCase(ICommunicator comm, CollectiveCase c, ulong seed)
    {
        ArgumentNullException.ThrowIfNull(comm);
        ArgumentNullException.ThrowIfNull(c);
        LocalOutcome local;
        string? error = null;
        try
        {
            local = CollectiveCaseRunner.Run(comm, c, seed);
        }
        catch (Exception e) when (e is HalException or ArgumentException or InvalidOperationException or NotSupportedException or ObjectDisposedException)
        {
            local = LocalOutcome.Clean;
            error = $"{e.GetType().Name}: {e.Message}";
        }
        long[] all = Exchange(comm, local, error is not null);
        return Combine(comm, c, all, error);
    }

    private static long[] Exchange(ICommunicator comm, LocalOutcome local, bool failed)
    {
        long[] record =
        [
            local.WrongCount,
            local.FirstWrongIndex,
            BitConverter.DoubleToInt64Bits(local.Expected),
            BitConverter.DoubleToInt64Bits(local.Actual),
            (long)local.ExpectedBits,
            (long)local.ActualBits,
            failed ? 1 : 0,
            0,
        ];
        record[^1] = Checksum(comm.Rank, record);
        var device = comm.Device;
        var sendBuffer = device.Allocator.Allocate(RecordLength * sizeof(long));
        var recvBuffer = device.Allocator.Allocate((long)RecordLength * comm.Size * sizeof(long));
        try
        {
            device.CopyFromHost(MemoryMarshal.AsBytes(record.AsSpan()), sendBuffer, 0);
            var send = new Tensor(sendBuffer, 0, new Shape(RecordLength), DType.I64);
            var recv = new Tensor(recvBuffer, 0, new Shape(RecordLength * comm.Size), DType.I64);
            comm.AllGather(send, recv);
            var all = new long[RecordLength * comm.Size];
            device.CopyToHost(recvBuffer, 0, MemoryMarshal.AsBytes(all.AsSpan()));
            return all;
        }
        finally
        {
            sendBuffer.Dispose();
            recvBuffer.Dispose();
        }
    }

    private static CollectiveCaseResult Combine(ICommunicator comm, CollectiveCase c, long[] all, string? localError)
    {
        long wrong = 0;
        int? firstRank = null;
        long? firstIndex = null;
        string? expected = null;
        string? actual = null;
        var failedRanks = new List<int>();
        var corruptRanks = new List<int>();
        for (int r = 0; r < comm.Size; r++)
        {
            var rec = all.AsSpan(r * RecordLength, RecordLength);
            if (rec[^1] != Checksum(r, rec))
            {
                corruptRanks.Add(r);
                continue;
            }
            if (rec[6] != 0)
            {
                failedRanks.Add(r);
            }
            wrong += rec[0];
            if (rec[0] > 0 && firstRank is null)
            {
                firstRank = r;
                firstIndex = rec[1];
                expected = CollectiveValues.Describe(BitConverter.Int64BitsToDouble(rec[2]), (ulong)rec[4], c.DType);
                actual = CollectiveValues.Describe(BitConverter.Int64BitsToDouble(rec[3]), (ulong)rec[5], c.DType);
            }
        }
        var errors = new List<string>();
        if (failedRanks.Count > 0)
        {
            string detail = localError is not null ? $": {localError}" : "";
            errors.Add($"rank{(failedRanks.Count > 1 ? "s" : "")} {string.Join(", ", failedRanks)} raised{detail}");
        }
        if (corruptRanks.Count > 0)
        {
            errors.Add($"the results of rank{(corruptRanks.Count > 1 ? "s" : "")} {string.Join(", ", corruptRanks)} arrived corrupted (all-gather of the result records)");
        }
        string? error = errors.Count > 0 ? string.Join("; ", errors) : null;
        bool isBarrier = c.Collective == CollectiveKind.Barrier;
        return new CollectiveCaseResult(
            c.Id,
            CollectiveCase.NameOf(c.Collective),
            isBarrier ? null : c.DType.Name(),
            c.Op is { } op ? CollectiveCase.NameOf(op) : null,
            c.Count,
            c.InPlace,
            comm.Size,
            comm.Kind,
            wrong == 0 && error is null,
            wrong,
            firstRank,
            firstIndex,
            expected,
            actual,
            error);
    }

    private static long Checksum(int rank, ReadOnlySpan<long> record)
    {
        ulong h = 0xC0FF_EE00_0000_0000UL ^ (ulong)rank;
        for (int i = 0; i < RecordLength - 1; i++)
        {
            h = (h ^ (ulong)record[i]) * 0x0000_0100_0000_01B3UL;
            h ^= h >> 29;
        }
        return (long)h;
    }
}
