using System.Collections.Concurrent;
using Hal.Collectives.InProcess;
using static Hal.Collectives.Tests.InProcessTestKit;

namespace Hal.Collectives.Tests;

// Shape legend: n = ranks; count = elements of an all-reduce or broadcast message; m = elements of one rank's block.

/// <summary>
/// Every collective × dtype × op × rank count 1–8 × size, compared bit for bit with a plain double reference (Mean
/// within 2 ULP). Inputs are small integers, so the exact result is representable whatever the reduction order.
/// </summary>
public sealed class InProcessExactTests
{
    /// <summary>0, 1, odd, not divisible by most rank counts, and both sides of the ring switch for this dtype.</summary>
    private static long[] AllReduceSizes(DType dtype)
    {
        long ringMin = InProcessCommunicator.RingMinBytes / dtype.SizeInBytes();
        return [0, 1, 7, 13, 65, ringMin - 1, ringMin + 1];
    }

    private static readonly long[] BlockSizes = [0, 1, 7, 13];

    [Theory]
    [MemberData(nameof(RankCounts), MemberType = typeof(InProcessTestKit))]
    public void AllReduce_EveryDTypeOpAndSize_IsExact(int ranks)
    {
        var failures = RunRanks(ranks, (comm, ops, failures) =>
        {
            foreach (var dtype in DTypes)
            {
                foreach (var op in ReduceOps)
                {
                    foreach (long count in AllReduceSizes(dtype))
                    {
                        foreach (bool inPlace in new[] { false, true })
                        {
                            int salt = (int)(count % 5);
                            using var send = ops.FromArray(Values(comm.Rank, count, salt), new Shape((int)count), dtype);
                            using var recv = inPlace ? null : ops.Zeros(new Shape((int)count), dtype);
                            var result = recv ?? send;
                            comm.AllReduce(send, result, op);
                            Check(failures, $"rank {comm.Rank}/{ranks} all-reduce {op} {dtype.Name()} count {count} inPlace {inPlace}",
                                ops.ToDoubleArray(result), i => Reference(op, dtype, ranks, i, salt), op, dtype);
                        }
                    }
                }
            }
        });
        Assert.Empty(failures);
    }

    [Theory]
    [MemberData(nameof(RankCounts), MemberType = typeof(InProcessTestKit))]
    public void ReduceScatter_EveryDTypeOpAndSize_IsExact(int ranks)
    {
        var failures = RunRanks(ranks, (comm, ops, failures) =>
        {
            foreach (var dtype in DTypes)
            {
                foreach (var op in ReduceOps)
                {
                    foreach (long m in BlockSizes)
                    {
                        using var send = ops.FromArray(Values(comm.Rank, ranks * m), new Shape((int)(ranks * m)), dtype);
                        using var recv = ops.Zeros(new Shape((int)m), dtype);
                        comm.ReduceScatter(send, recv, op);
                        long offset = comm.Rank * m;
                        Check(failures, $"rank {comm.Rank}/{ranks} reduce-scatter {op} {dtype.Name()} block {m}",
                            ops.ToDoubleArray(recv), i => Reference(op, dtype, ranks, i, blockOffset: offset), op, dtype);
                    }
                }
            }
        });
        Assert.Empty(failures);
    }

    [Theory]
    [MemberData(nameof(RankCounts), MemberType = typeof(InProcessTestKit))]
    public void ReduceScatter_IntoOwnBlockOfSend_IsExact(int ranks)
    {
        const long m = 9;
        var failures = RunRanks(ranks, (comm, ops, failures) =>
        {
            using var send = ops.FromArray(Values(comm.Rank, ranks * m), new Shape((int)(ranks * m)), DType.F32);
            var recv = send.View(comm.Rank * m, new Shape((int)m));
            comm.ReduceScatter(send, recv, ReduceOp.Sum);
            long offset = comm.Rank * m;
            Check(failures, $"rank {comm.Rank}/{ranks} in-place reduce-scatter", ops.ToDoubleArray(recv),
                i => Reference(ReduceOp.Sum, DType.F32, ranks, i, blockOffset: offset), ReduceOp.Sum, DType.F32);
        });
        Assert.Empty(failures);
    }

    [Theory]
    [MemberData(nameof(RankCounts), MemberType = typeof(InProcessTestKit))]
    public void AllGather_EveryDTypeAndSize_IsExact(int ranks)
    {
        var failures = RunRanks(ranks, (comm, ops, failures) =>
        {
            foreach (var dtype in DTypes)
            {
                foreach (long m in BlockSizes)
                {
                    foreach (bool inPlace in new[] { false, true })
                    {
                        using var recv = ops.Zeros(new Shape((int)(ranks * m)), dtype);
                        using var own = inPlace ? null : ops.FromArray(Values(comm.Rank, m), new Shape((int)m), dtype);
                        var send = own ?? recv.View(comm.Rank * m, new Shape((int)m));
                        if (inPlace)
                        {
                            ops.Upload(Values(comm.Rank, m), send);
                        }
                        comm.AllGather(send, recv);
                        Check(failures, $"rank {comm.Rank}/{ranks} all-gather {dtype.Name()} block {m} inPlace {inPlace}",
                            ops.ToDoubleArray(recv), i => Value((int)(i / m), i % m), ReduceOp.Sum, dtype);
                    }
                }
            }
        });
        Assert.Empty(failures);
    }

    [Theory]
    [MemberData(nameof(RankCounts), MemberType = typeof(InProcessTestKit))]
    public void Broadcast_EveryDTypeSizeAndRoot_IsExact(int ranks)
    {
        var failures = RunRanks(ranks, (comm, ops, failures) =>
        {
            foreach (var dtype in DTypes)
            {
                foreach (long count in new long[] { 0, 1, 7, 65 })
                {
                    foreach (int root in new[] { 0, ranks - 1 })
                    {
                        using var t = ops.FromArray(Values(comm.Rank, count), new Shape((int)count), dtype);
                        comm.Broadcast(t, root);
                        Check(failures, $"rank {comm.Rank}/{ranks} broadcast {dtype.Name()} count {count} root {root}",
                            ops.ToDoubleArray(t), i => Value(root, i), ReduceOp.Sum, dtype);
                    }
                }
            }
        });
        Assert.Empty(failures);
    }

    [Theory]
    [MemberData(nameof(RankCounts), MemberType = typeof(InProcessTestKit))]
    public void AllToAll_EveryDTypeAndSize_IsExact(int ranks)
    {
        var failures = RunRanks(ranks, (comm, ops, failures) =>
        {
            foreach (var dtype in DTypes)
            {
                foreach (long m in BlockSizes)
                {
                    foreach (bool inPlace in new[] { false, true })
                    {
                        using var send = ops.FromArray(Values(comm.Rank, ranks * m), new Shape((int)(ranks * m)), dtype);
                        using var recv = inPlace ? null : ops.Zeros(new Shape((int)(ranks * m)), dtype);
                        var result = recv ?? send;
                        comm.AllToAll(send, result);
                        // Block j of the result is block r (this rank's) of rank j's input.
                        int r = comm.Rank;
                        Check(failures, $"rank {r}/{ranks} all-to-all {dtype.Name()} block {m} inPlace {inPlace}",
                            ops.ToDoubleArray(result), i => Value((int)(i / m), r * m + i % m), ReduceOp.Sum, dtype);
                    }
                }
            }
        });
        Assert.Empty(failures);
    }

    [Theory]
    [InlineData(DType.F32)]
    [InlineData(DType.F64)]
    [InlineData(DType.F16)]
    [InlineData(DType.BF16)]
    public void MaxAndMin_PropagateNaN_OnBothPaths(DType dtype)
    {
        const int ranks = 3;
        long[] counts = [5, InProcessCommunicator.RingMinBytes / dtype.SizeInBytes() + 3];
        var failures = RunRanks(ranks, (comm, ops, failures) =>
        {
            foreach (long count in counts)
            {
                foreach (var op in new[] { ReduceOp.Max, ReduceOp.Min })
                {
                    // Rank 1 holds NaN at element 2 and at the last element; the rest are ordinary values.
                    var v = Values(comm.Rank, count);
                    if (comm.Rank == 1)
                    {
                        v[2] = double.NaN;
                        v[count - 1] = double.NaN;
                    }
                    using var t = ops.FromArray(v, new Shape((int)count), dtype);
                    comm.AllReduce(t, t, op);
                    Check(failures, $"rank {comm.Rank} {op} {dtype.Name()} count {count} with NaN", ops.ToDoubleArray(t),
                        i => i == 2 || i == count - 1 ? double.NaN : Reference(op, dtype, ranks, i), op, dtype);
                }
            }
        });
        Assert.Empty(failures);
    }

    [Fact]
    public void IntegerSum_Wraps()
    {
        var failures = RunRanks(2, (comm, ops, failures) =>
        {
            using var t = ops.FromArray([int.MaxValue, int.MinValue], new Shape(2), DType.I32);
            comm.AllReduce(t, t, ReduceOp.Sum);
            // 2·MaxValue wraps to −2 and 2·MinValue to 0 in 32-bit two's complement.
            Check(failures, $"rank {comm.Rank} i32 wrap", ops.ToDoubleArray(t), i => i == 0 ? -2 : 0, ReduceOp.Sum, DType.I32);
        });
        Assert.Empty(failures);
    }

    [Fact]
    public void IntegerMean_TruncatesTowardZero()
    {
        var failures = RunRanks(4, (comm, ops, failures) =>
        {
            // Sums 7 and −7 over 4 ranks: means 1.75 and −1.75 truncate to 1 and −1.
            double[] v = comm.Rank == 0 ? [4, -4] : [1, -1];
            using var t = ops.FromArray(v, new Shape(2), DType.I64);
            comm.AllReduce(t, t, ReduceOp.Mean);
            Check(failures, $"rank {comm.Rank} i64 mean", ops.ToDoubleArray(t), i => i == 0 ? 1 : -1, ReduceOp.Sum, DType.I64);
        });
        Assert.Empty(failures);
    }
}
