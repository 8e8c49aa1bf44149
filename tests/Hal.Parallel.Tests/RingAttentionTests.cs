using Hal.Parallel.Sequence;
using static Hal.Parallel.Tests.DataParallelTestKit;

namespace Hal.Parallel.Tests;

// Legend: B batch, H query heads, Hkv key/value heads, T full length, Tl = T/sp, D head size.

/// <summary>Ring attention over in-process CPU ranks against fused attention over the whole sequence on one device.</summary>
public sealed class RingAttentionTests
{
    // F32: the ring sums each row's keys block by block, merges partial outputs with exp(lse differences) and scales
    // dOutput per block by exp(lse_block − lse): a different order of roundings than the one-pass kernel, each step a
    // few F32 roundings (2⁻²⁴ ≈ 6e-8) on values of the tensor's scale, over at most 2·sp blocks. Worst seen over these
    // cases: 4.5e-7 of max|ref|; 1e-5 leaves a 20× margin. F64: the same argument at 2⁻⁵³ ≈ 1.1e-16; worst seen 1.3e-15,
    // and 1e-12 is the margin (the F64 path never goes through the F32 lse, which would cost ~1e-7).
    private const double F32Tolerance = 1e-5;
    private const double F64Tolerance = 1e-12;

    // The lse output is F32 by contract: the ring rounds its F64 (or F32) merged lse once, the reference rounds its own
    // once, so they can differ by an ulp of F32 at |lse| ≤ ~8 (2⁻²⁰ relative to max|lse| covers ulps of values up to
    // 8× smaller than the largest); F32 ring lse also carries the merge's roundings, within the same bound.
    private const double LseTolerance = 1e-6;

    [Theory]
    [InlineData(2, true, "F32", 1, 2, 16)]
    [InlineData(2, false, "F32", 2, 2, 32)]
    [InlineData(4, true, "F32", 2, 2, 32)]
    [InlineData(4, false, "F32", 1, 2, 16)]
    [InlineData(4, true, "F32", 1, 2, 8)]
    [InlineData(1, true, "F32", 2, 2, 16)]
    [InlineData(2, true, "F32", 2, 1, 16)]
    [InlineData(2, true, "F64", 2, 2, 16)]
    [InlineData(2, false, "F64", 1, 2, 32)]
    [InlineData(4, true, "F64", 1, 2, 32)]
    [InlineData(4, false, "F64", 2, 2, 16)]
    [InlineData(4, true, "F64", 2, 1, 32)]
    public void Forward_and_backward_equal_single_device_attention(int sp, bool causal, string dtypeName, int batch, int kvHeads, int time)
    {
        var dtype = Enum.Parse<DType>(dtypeName);
        const int heads = 2, headSize = 8;
        int seed = 1000 + (sp * 100) + time + (causal ? 7 : 0) + batch;
        var reference = new SequenceAttentionCase(batch, heads, kvHeads, time, headSize, causal, dtype, seed);
        double tolerance = dtype == DType.F64 ? F64Tolerance : F32Tolerance;
        int tl = time / sp;
        var bytes = new long[sp];

        var failures = RunRanks(sp, (comm, ops, failed) =>
        {
            int rank = comm.Rank;
            int[] positions = causal ? ZigZag.Positions(time, sp, rank) : Enumerable.Range(rank * tl, tl).ToArray();
            using var q = ops.FromArray(reference.Take(reference.Q, heads, headSize, positions), reference.QShape(tl), dtype);
            using var k = ops.FromArray(reference.Take(reference.K, kvHeads, headSize, positions), reference.KvShape(tl), dtype);
            using var v = ops.FromArray(reference.Take(reference.V, kvHeads, headSize, positions), reference.KvShape(tl), dtype);
            using var dOut = ops.FromArray(reference.Take(reference.DOutput, heads, headSize, positions), reference.QShape(tl), dtype);
            using var output = ops.Empty(reference.QShape(tl), dtype);
            using var lse = ops.Empty(new Shape(batch, heads, tl), DType.F32);
            using var dq = ops.Empty(reference.QShape(tl), dtype);
            using var dk = ops.Empty(reference.KvShape(tl), dtype);
            using var dv = ops.Empty(reference.KvShape(tl), dtype);
            using var ring = new RingAttention(ops, comm);

            ring.Forward(q, k, v, causal, reference.Scale, output, lse);
            ring.Backward(q, k, v, output, lse, dOut, causal, reference.Scale, dq, dk, dv);

            string what = $"rank {rank}/{sp} {dtype.Name()} causal {causal} B {batch} Hkv {kvHeads} T {time}";
            reference.Compare(failed, what + " output", ops.ToDoubleArray(output), reference.Output, heads, headSize, positions, tolerance);
            reference.Compare(failed, what + " lse", ops.ToDoubleArray(lse), reference.Lse, heads, 1, positions, LseTolerance);
            reference.Compare(failed, what + " dq", ops.ToDoubleArray(dq), reference.Dq, heads, headSize, positions, tolerance);
            reference.Compare(failed, what + " dk", ops.ToDoubleArray(dk), reference.Dk, kvHeads, headSize, positions, tolerance);
            reference.Compare(failed, what + " dv", ops.ToDoubleArray(dv), reference.Dv, kvHeads, headSize, positions, tolerance);
            bytes[rank] = ring.BytesSent;
        });

        Assert.True(failures.Count == 0, string.Join("\n", failures));
        // Forward: k and v (one packed message) travel sp−1 hops. Backward: k, v, dk, dv travel sp−1 hops, then dk and
        // dv one more hop home; F64 first sends k alone around sp−1 hops to rebuild the F64 lse. Per rank, in bytes.
        long kvBytes = (long)batch * kvHeads * tl * headSize * dtype.SizeInBytes();
        long expected = sp == 1 ? 0
            : ((sp - 1) * 2 * kvBytes) + ((sp - 1) * 4 * kvBytes) + (2 * kvBytes) + (dtype == DType.F64 ? (sp - 1) * kvBytes : 0);
        Assert.All(bytes, b => Assert.Equal(expected, b));
    }

    [Fact]
    public void Causal_with_an_odd_local_length_is_refused()
    {
        WithOneRank((comm, ops) =>
        {
            using var q = ops.Zeros(new Shape(1, 2, 3, 8));
            using var output = ops.Empty(q.Shape);
            using var lse = ops.Empty(new Shape(1, 2, 3));
            using var ring = new RingAttention(ops, comm);

            var e = Assert.Throws<ArgumentException>(() => ring.Forward(q, q, q, causal: true, 1, output, lse));
            Assert.Contains("even", e.Message);
            ring.Forward(q, q, q, causal: false, 1, output, lse);
            Assert.All(ops.ToDoubleArray(lse), x => Assert.Equal(Math.Log(3), x, 6));
        });
    }

    [Fact]
    public void Mismatched_output_shape_is_refused()
    {
        WithOneRank((comm, ops) =>
        {
            using var q = ops.Zeros(new Shape(1, 2, 4, 8));
            using var output = ops.Empty(new Shape(1, 2, 4, 4));
            using var lse = ops.Empty(new Shape(1, 2, 4));
            using var ring = new RingAttention(ops, comm);

            Assert.Throws<ShapeMismatchException>(() => ring.Forward(q, q, q, causal: true, 1, output, lse));
            Assert.Equal(0, ring.BytesSent);
        });
    }
}
