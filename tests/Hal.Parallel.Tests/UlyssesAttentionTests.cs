using Hal.Parallel.Sequence;
using static Hal.Parallel.Tests.DataParallelTestKit;

namespace Hal.Parallel.Tests;

// Legend: B batch, H query heads, Hkv key/value heads, T full length, Tl = T/sp (contiguous), D head size.

/// <summary>Ulysses (all-to-all) attention over in-process CPU ranks against fused attention on one device.</summary>
public sealed class UlyssesAttentionTests
{
    // Each rank runs the same fused kernel on whole heads of the full sequence; the all-to-alls only move values. The
    // CPU kernel works per (batch, head) row, so results match the reference bit for bit; the bounds (F32 1e-6, F64
    // 1e-13 of max|ref|) only allow for a backend whose kernel blocks rows differently when it sees fewer heads.
    private const double F32Tolerance = 1e-6;
    private const double F64Tolerance = 1e-13;

    [Theory]
    [InlineData(2, true, "F32", 1, 4, 16)]
    [InlineData(2, false, "F32", 2, 4, 32)]
    [InlineData(4, true, "F32", 2, 4, 32)]
    [InlineData(4, false, "F32", 1, 4, 16)]
    [InlineData(2, true, "F32", 2, 2, 16)]
    [InlineData(1, true, "F32", 1, 4, 8)]
    [InlineData(2, true, "F64", 2, 4, 16)]
    [InlineData(4, false, "F64", 1, 4, 32)]
    [InlineData(4, true, "F64", 2, 4, 16)]
    public void Forward_and_backward_equal_single_device_attention(int sp, bool causal, string dtypeName, int batch, int kvHeads, int time)
    {
        var dtype = Enum.Parse<DType>(dtypeName);
        const int heads = 4, headSize = 8;
        int seed = 2000 + (sp * 100) + time + (causal ? 7 : 0) + batch;
        var reference = new SequenceAttentionCase(batch, heads, kvHeads, time, headSize, causal, dtype, seed);
        double tolerance = dtype == DType.F64 ? F64Tolerance : F32Tolerance;
        int tl = time / sp;
        var bytes = new long[sp];

        var failures = RunRanks(sp, (comm, ops, failed) =>
        {
            int rank = comm.Rank;
            int[] positions = Enumerable.Range(rank * tl, tl).ToArray();
            using var q = ops.FromArray(reference.Take(reference.Q, heads, headSize, positions), reference.QShape(tl), dtype);
            using var k = ops.FromArray(reference.Take(reference.K, kvHeads, headSize, positions), reference.KvShape(tl), dtype);
            using var v = ops.FromArray(reference.Take(reference.V, kvHeads, headSize, positions), reference.KvShape(tl), dtype);
            using var dOut = ops.FromArray(reference.Take(reference.DOutput, heads, headSize, positions), reference.QShape(tl), dtype);
            using var output = ops.Empty(reference.QShape(tl), dtype);
            using var lse = ops.Empty(new Shape(batch, heads, tl), DType.F32);
            using var dq = ops.Empty(reference.QShape(tl), dtype);
            using var dk = ops.Empty(reference.KvShape(tl), dtype);
            using var dv = ops.Empty(reference.KvShape(tl), dtype);
            using var ulysses = new UlyssesAttention(ops, comm);

            ulysses.Forward(q, k, v, causal, reference.Scale, output, lse);
            ulysses.Backward(q, k, v, output, lse, dOut, causal, reference.Scale, dq, dk, dv);

            string what = $"rank {rank}/{sp} {dtype.Name()} causal {causal} B {batch} Hkv {kvHeads} T {time}";
            reference.Compare(failed, what + " output", ops.ToDoubleArray(output), reference.Output, heads, headSize, positions, tolerance);
            // lse is F32 on both sides and computed by the same kernel: the F32 bound holds for either dtype.
            reference.Compare(failed, what + " lse", ops.ToDoubleArray(lse), reference.Lse, heads, 1, positions, F32Tolerance);
            reference.Compare(failed, what + " dq", ops.ToDoubleArray(dq), reference.Dq, heads, headSize, positions, tolerance);
            reference.Compare(failed, what + " dk", ops.ToDoubleArray(dk), reference.Dk, kvHeads, headSize, positions, tolerance);
            reference.Compare(failed, what + " dv", ops.ToDoubleArray(dv), reference.Dv, kvHeads, headSize, positions, tolerance);
            bytes[rank] = ulysses.BytesSent;
        });

        Assert.True(failures.Count == 0, string.Join("\n", failures));
        // Every all-to-all keeps 1/sp of its message and sends the rest. Forward: q, k, v out and output, lse back.
        // Backward: q, k, v, output, dOutput, lse out and dq, dk, dv back. Per rank, in bytes.
        long qBytes = (long)batch * heads * tl * headSize * dtype.SizeInBytes();
        long kvBytes = (long)batch * kvHeads * tl * headSize * dtype.SizeInBytes();
        long lseBytes = (long)batch * heads * tl * sizeof(float);
        long moved = (qBytes + (2 * kvBytes) + qBytes + lseBytes)
            + (qBytes + (2 * kvBytes) + (2 * qBytes) + lseBytes) + (qBytes + (2 * kvBytes));
        long expected = moved / sp * (sp - 1);
        Assert.All(bytes, b => Assert.Equal(expected, b));
    }

    [Fact]
    public void Heads_not_divisible_by_sp_are_refused()
    {
        var failures = RunRanks(2, (comm, ops, failed) =>
        {
            using var q = ops.Zeros(new Shape(1, 3, 4, 8));
            using var output = ops.Empty(q.Shape);
            using var lse = ops.Empty(new Shape(1, 3, 4));
            using var ulysses = new UlyssesAttention(ops, comm);

            var e = Assert.Throws<ArgumentException>(() => ulysses.Forward(q, q, q, causal: true, 1, output, lse));
            if (!e.Message.Contains("heads must be divisible by sp = 2", StringComparison.Ordinal) || ulysses.BytesSent != 0)
            {
                failed.Enqueue($"rank {comm.Rank}: message \"{e.Message}\", {ulysses.BytesSent} bytes sent");
            }
        });

        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }
}
