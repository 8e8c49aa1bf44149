using Hal.Backends.Cpu;
using Hal.Numerics;
using Hal.Parallel.TensorParallel;
using static Hal.Parallel.Tests.DataParallelTestKit;
using static Hal.Parallel.Tests.HostMath;

namespace Hal.Parallel.Tests;

// Legend: p tp ranks, N rows, C channels, V vocabulary, Vl = ⌈V/p⌉ rows per rank (padded), start = r·Vl.

public sealed partial class TensorParallel1DTests
{
    private const double LossScale = 2;

    [Theory]
    [InlineData(1, 16, "F32")]
    [InlineData(2, 16, "F32")]
    [InlineData(4, 16, "F32")]
    [InlineData(2, 13, "F32")]
    [InlineData(4, 13, "F32")]
    [InlineData(4, 5, "F32")]
    [InlineData(1, 13, "F64")]
    [InlineData(2, 13, "F64")]
    [InlineData(4, 13, "F64")]
    [InlineData(4, 5, "F64")]
    [InlineData(2, 16, "F64")]
    [InlineData(2, 13, "BF16")]
    [InlineData(4, 5, "BF16")]
    [InlineData(4, 16, "BF16")]
    public void Vocab_parallel_embedding_head_and_cross_entropy_equal_single_device(int tp, int vocab, string dtypeName)
    {
        var dtype = Enum.Parse<DType>(dtypeName);
        double tolerance = Tolerance(dtype);
        const int n = 12, c = 8;
        int seed = 9700 + (tp * 100) + vocab + (dtype == DType.F64 ? 50 : 0);
        var reference = new TiedHeadReference(seed, n, c, vocab, dtype == DType.BF16);
        var shard0 = new VocabShard(vocab, tp, 0);
        int vl = shard0.LocalRows;
        var bytes = new long[tp];
        var failures = RunRanks(tp, (comm, ops, failed) =>
        {
            int r = comm.Rank;
            var shard = new VocabShard(vocab, tp, r);
            var counted = new CountingCommunicator(comm);
            using var embedding = new VocabParallelEmbedding(ops, counted, vocab);
            using var head = new ColumnParallelLinear(ops, counted, WeightLayout.OutIn);
            using var loss = new VocabParallelCrossEntropy(ops, counted, vocab);
            using var full = ops.FromArray(reference.Wte, new Shape(vocab, c), dtype);
            using var w = ops.Empty(new Shape(vl, c), dtype);
            TensorParallelShards.SplitVocab(ops, full, w, r, tp);
            using var g = ops.Zeros(w.Shape, dtype);
            using var ids = ops.FromArray(reference.Ids.Select(i => (long)i).ToArray(), new Shape(n), DType.I64);
            using var targets = ops.FromArray(reference.Targets.Select(i => (double)i).ToArray(), new Shape(n), DType.I32);
            using var x = ops.Empty(new Shape(n, c), dtype);
            using var logits = ops.Empty(new Shape(n, vl), dtype);
            using var dLogits = ops.Empty(logits.Shape, dtype);
            using var dx = ops.Empty(x.Shape, dtype);

            embedding.Forward(w, ids, x);
            head.Forward(x, w, null, logits);
            var losses = loss.Forward(logits, targets);
            var forward = counted.TakeCounts();
            loss.Backward(LossScale, dLogits);
            head.Backward(x, dLogits, w, g, null, dx);
            embedding.Backward(ids, dx, g);
            var backward = counted.TakeCounts();

            using var gFull = ops.Empty(new Shape(vocab, c), dtype);
            TensorParallelShards.GatherVocab(ops, comm, g, gFull);
            string what = $"vocab tp {tp} rank {r} V {vocab} {dtype.Name()} (seed {seed})";
            // One rank contributes each row, the others add exact zeros: the lookup is exact.
            Compare(failed, what + " x", ops.ToDoubleArray(x), reference.X, 0);
            Compare(failed, what + " losses", ops.ToDoubleArray(losses), reference.Losses, tolerance);
            Compare(failed, what + " lse", ops.ToDoubleArray(loss.Lse), reference.Lse, tolerance);
            Compare(failed, what + " dlogits", ops.ToDoubleArray(dLogits), reference.LocalDLogits(shard), tolerance);
            Compare(failed, what + " dx", ops.ToDoubleArray(dx), reference.Dx, tolerance);
            Compare(failed, what + " dW", ops.ToDoubleArray(gFull), reference.DWte, tolerance);
            var expected = tp == 1 ? (0, 0, 0, 0) : (3, 0, 0, 0);
            var expectedBackward = tp == 1 ? (0, 0, 0, 0) : (1, 0, 0, 0);
            if (forward != expected || backward != expectedBackward)
            {
                failed.Enqueue($"{what}: collectives forward {forward}, backward {backward}; expected {expected} and {expectedBackward}");
            }
            bytes[r] = embedding.BytesCommunicated + head.BytesCommunicated + loss.BytesCommunicated;
        });

        Assert.True(failures.Count == 0, string.Join("\n", failures));
        // All-reduces (2·(p−1)/p of the message): embedding rows [N, C], the row maxima [N] and sums + picked logits
        // [2, N] in the statistics dtype, and the head's dx [N, C].
        int es = dtype.SizeInBytes(), stat = dtype == DType.F64 ? 8 : 4;
        long expectedBytes = (2L * (tp - 1) * n * c * es / tp * 2) + (2L * (tp - 1) * n * stat / tp) + (2L * (tp - 1) * 2 * n * stat / tp);
        Assert.All(bytes, b => Assert.Equal(expectedBytes, b));
    }

    [Fact]
    public void Host_cross_entropy_reference_agrees_with_the_fused_single_device_kernel()
    {
        const int n = 12, c = 8, vocab = 13, seed = 9801;
        var reference = new TiedHeadReference(seed, n, c, vocab);
        using var device = new CpuBackend().Open(0);
        var ops = new Ops(device);
        using var logits = ops.FromArray(reference.Logits, new Shape(n, vocab), DType.F64);
        using var targets = ops.FromArray(reference.Targets.Select(i => (double)i).ToArray(), new Shape(n), DType.I64);
        using var losses = ops.Empty(new Shape(n), DType.F32);
        using var lse = ops.Empty(new Shape(n), DType.F32);
        using var dLosses = ops.Full(new Shape(n), LossScale / n, DType.F32);
        using var dLogits = ops.Empty(logits.Shape, DType.F64);

        ops.CrossEntropy(logits, targets, losses, lse);
        ops.CrossEntropyBackward(logits, targets, lse, dLosses, dLogits);

        var failures = new System.Collections.Concurrent.ConcurrentQueue<string>();
        // losses and lse are F32 by the kernel's contract: F32 rounding bounds the agreement.
        Compare(failures, $"fused losses (seed {seed})", ops.ToDoubleArray(losses), reference.Losses, F32Tolerance);
        Compare(failures, $"fused lse (seed {seed})", ops.ToDoubleArray(lse), reference.Lse, F32Tolerance);
        Compare(failures, $"fused dlogits (seed {seed})", ops.ToDoubleArray(dLogits), reference.DLogits, F32Tolerance);
        Assert.True(failures.IsEmpty, string.Join("\n", failures));
    }

    [Theory]
    [InlineData(2, 13)]
    [InlineData(4, 13)]
    [InlineData(4, 5)]
    public void Sequence_parallel_embedding_leaves_this_ranks_rows_and_gathers_dy(int tp, int vocab)
    {
        const int n = 8, c = 8;
        int seed = 9900 + (tp * 100) + vocab;
        var reference = new TiedHeadReference(seed, n, c, vocab);
        int vl = new VocabShard(vocab, tp, 0).LocalRows, nl = n / tp;
        var dy = Normal(new Random(seed + 1), n * c);
        var failures = RunRanks(tp, (comm, ops, failed) =>
        {
            int r = comm.Rank;
            using var embedding = new VocabParallelEmbedding(ops, comm, vocab, sequenceParallel: true);
            using var full = ops.FromArray(reference.Wte, new Shape(vocab, c), DType.F64);
            using var w = ops.Empty(new Shape(vl, c), DType.F64);
            TensorParallelShards.SplitVocab(ops, full, w, r, tp);
            using var g = ops.Zeros(w.Shape, DType.F64);
            using var ids = ops.FromArray(reference.Ids.Select(i => (long)i).ToArray(), new Shape(n), DType.I32);
            using var x = ops.Empty(new Shape(nl, c), DType.F64);
            using var dyLocal = ops.FromArray(Rows(dy, c, r * nl, nl), new Shape(nl, c), DType.F64);

            embedding.Forward(w, ids, x);
            embedding.Backward(ids, dyLocal, g);

            using var gFull = ops.Empty(new Shape(vocab, c), DType.F64);
            TensorParallelShards.GatherVocab(ops, comm, g, gFull);
            var expectedGrad = new double[vocab * c];
            for (int i = 0; i < n; i++)
            {
                for (int j = 0; j < c; j++)
                {
                    expectedGrad[(reference.Ids[i] * c) + j] += dy[(i * c) + j];
                }
            }
            string what = $"sp embedding tp {tp} rank {r} V {vocab} (seed {seed})";
            Compare(failed, what + " x", ops.ToDoubleArray(x), Rows(reference.X, c, r * nl, nl), 0);
            Compare(failed, what + " dW", ops.ToDoubleArray(gFull), expectedGrad, F64Tolerance);
            // A reduce-scatter of [N, C] forward and an all-gather of it backward: (p−1)/p·N·C elements each.
            long expectedBytes = 2L * (tp - 1) * nl * c * sizeof(double);
            if (embedding.BytesCommunicated != expectedBytes)
            {
                failed.Enqueue($"{what}: {embedding.BytesCommunicated} bytes, expected {expectedBytes}");
            }
        });
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    /// <summary>
    /// GPT-2's tied head in double loops: x = wte[ids], logits = x·wteᵀ, per-row softmax cross-entropy (negative
    /// target: loss 0, no gradient, still counted in N), dlogits of LossScale · mean, dx and dwte (head plus lookup).
    /// Weights are rounded to F32 (or BF16) values so an upload in that dtype holds them exactly.
    /// </summary>
    private sealed class TiedHeadReference
    {
        public TiedHeadReference(int seed, int n, int c, int vocab, bool bf16Weights = false)
        {
            Vocab = vocab;
            N = n;
            var random = new Random(seed);
            Wte = Normal(random, vocab * c).Select(v => bf16Weights ? HalfConvert.RoundToBf16((float)v) : (double)(float)v).ToArray();
            Ids = Enumerable.Range(0, n).Select(_ => random.Next(vocab)).ToArray();
            Targets = Enumerable.Range(0, n).Select(i => i % 4 == 3 ? -1 : random.Next(vocab)).ToArray();
            X = new double[n * c];
            for (int i = 0; i < n; i++)
            {
                Array.Copy(Wte, Ids[i] * c, X, i * c, c);
            }
            Logits = MatMul(X, Transpose(Wte, vocab, c), n, c, vocab);
            Losses = new double[n];
            Lse = new double[n];
            DLogits = new double[n * vocab];
            for (int i = 0; i < n; i++)
            {
                var row = Logits.AsSpan(i * vocab, vocab);
                double max = double.NegativeInfinity, sum = 0;
                foreach (double z in row)
                {
                    max = Math.Max(max, z);
                }
                foreach (double z in row)
                {
                    sum += Math.Exp(z - max);
                }
                Lse[i] = max + Math.Log(sum);
                int t = Targets[i];
                if (t < 0)
                {
                    continue;
                }
                Losses[i] = Lse[i] - row[t];
                for (int j = 0; j < vocab; j++)
                {
                    DLogits[(i * vocab) + j] = (Math.Exp(row[j] - Lse[i]) - (j == t ? 1 : 0)) * LossScale / n;
                }
            }
            Dx = MatMul(DLogits, Wte, n, vocab, c);
            DWte = MatMul(Transpose(DLogits, n, vocab), X, vocab, n, c);
            for (int i = 0; i < n; i++)
            {
                for (int j = 0; j < c; j++)
                {
                    DWte[(Ids[i] * c) + j] += Dx[(i * c) + j];
                }
            }
        }

        public int Vocab { get; }
        public int N { get; }
        public double[] Wte { get; }
        public int[] Ids { get; }
        public int[] Targets { get; }
        public double[] X { get; }
        public double[] Logits { get; }
        public double[] Losses { get; }
        public double[] Lse { get; }
        public double[] DLogits { get; }
        public double[] Dx { get; }
        public double[] DWte { get; }

        /// <summary>Rank's dlogits columns [start, start + Vl), zero on the padding columns past V.</summary>
        public double[] LocalDLogits(VocabShard shard)
        {
            var local = new double[N * shard.LocalRows];
            for (int i = 0; i < N; i++)
            {
                for (int j = 0; j < shard.ValidRows; j++)
                {
                    local[(i * shard.LocalRows) + j] = DLogits[(i * Vocab) + shard.Start + j];
                }
            }
            return local;
        }
    }
}
