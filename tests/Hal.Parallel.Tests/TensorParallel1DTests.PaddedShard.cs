using System.Collections.Concurrent;
using Hal.Parallel.TensorParallel;
using static Hal.Parallel.Tests.DataParallelTestKit;

namespace Hal.Parallel.Tests;

// Legend: p ranks, V vocabulary, Vl columns per rank chosen by the layout (≥ ⌈V/p⌉), Vp = p·Vl, N rows.

public sealed partial class TensorParallel1DTests
{
    [Theory]
    [InlineData(37, 2, 20, 0, 0, 20)]
    [InlineData(37, 2, 20, 1, 20, 17)]
    [InlineData(37, 4, 12, 3, 36, 1)]
    [InlineData(5, 2, 8, 1, 8, 0)]
    [InlineData(40, 2, 20, 1, 20, 20)]
    public void A_shard_of_a_layouts_own_width_starts_at_rank_times_width(int vocab, int tp, int localRows, int rank, int start, int valid)
    {
        var shard = new VocabShard(vocab, tp, rank, localRows);
        Assert.Equal(start, shard.Start);
        Assert.Equal(valid, shard.ValidRows);
        Assert.Equal(tp * localRows, shard.PaddedVocabSize);
    }

    [Fact]
    public void A_shard_narrower_than_the_vocabulary_needs_is_refused()
    {
        // 2 ranks of 18 columns hold 36 < 37 rows.
        Assert.Throws<ArgumentOutOfRangeException>(() => new VocabShard(37, 2, 0, 18));
    }

    [Theory]
    [InlineData(37, 2, 20, 9811)]
    [InlineData(37, 2, 19, 9812)]
    [InlineData(13, 4, 5, 9813)]
    public void Cross_entropy_over_a_wider_padded_shard_equals_the_whole_vocabulary_softmax(int vocab, int tp, int localRows, int seed)
    {
        const int n = 9;
        var rng = new Random(seed);
        // Logits of the whole padded vocabulary; the padding columns hold large values that would win an unmasked softmax.
        int padded = tp * localRows;
        var logits = new double[n * padded];
        var targets = new int[n];
        for (int i = 0; i < n; i++)
        {
            for (int v = 0; v < padded; v++)
            {
                logits[(i * padded) + v] = v < vocab ? (rng.NextDouble() * 4) - 2 : 50;
            }
            targets[i] = rng.Next(vocab);
        }
        // Reference: log Σ_{v<V} exp(z_v) − z_target and softmax − onehot per row, in double.
        var expectedLoss = new double[n];
        var expectedGrad = new double[n * padded];
        for (int i = 0; i < n; i++)
        {
            double sum = 0;
            for (int v = 0; v < vocab; v++)
            {
                sum += Math.Exp(logits[(i * padded) + v]);
            }
            expectedLoss[i] = Math.Log(sum) - logits[(i * padded) + targets[i]];
            for (int v = 0; v < vocab; v++)
            {
                expectedGrad[(i * padded) + v] = (Math.Exp(logits[(i * padded) + v]) / sum - (v == targets[i] ? 1 : 0)) / n;
            }
        }
        var failures = RunRanks(tp, (comm, ops, failed) =>
        {
            int r = comm.Rank;
            var shard = new VocabShard(vocab, tp, r, localRows);
            using var loss = new VocabParallelCrossEntropy(ops, comm, shard);
            var local = new double[n * localRows];
            var expectedLocal = new double[n * localRows];
            for (int i = 0; i < n; i++)
            {
                Array.Copy(logits, (i * padded) + shard.Start, local, i * localRows, localRows);
                Array.Copy(expectedGrad, (i * padded) + shard.Start, expectedLocal, i * localRows, localRows);
            }
            using var z = ops.FromArray(local, new Shape(n, localRows), DType.F64);
            using var t = ops.FromArray(targets.Select(v => (double)v).ToArray(), new Shape(n), DType.I32);
            using var dz = ops.Empty(z.Shape, DType.F64);
            var losses = ops.ToDoubleArray(loss.Forward(z, t));
            loss.Backward(1.0, dz);
            // F64 logits and statistics: a few ulps of exp/log over ≤ 37 terms.
            CheckClose(failed, $"V {vocab} p {tp} Vl {localRows} rank {r} (seed {seed}) losses", losses, expectedLoss, 1e-12);
            CheckClose(failed, $"V {vocab} p {tp} Vl {localRows} rank {r} (seed {seed}) dlogits", ops.ToDoubleArray(dz), expectedLocal, 1e-12);
        });
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    [Fact]
    public void Cross_entropy_refuses_a_shard_of_another_rank()
    {
        var failures = RunRanks(2, (comm, ops, failed) =>
        {
            var other = new VocabShard(37, 2, 1 - comm.Rank, 20);
            try
            {
                using var loss = new VocabParallelCrossEntropy(ops, comm, other);
                failed.Enqueue($"rank {comm.Rank}: a shard of rank {other.Rank} was accepted");
            }
            catch (ArgumentException e) when (e.Message.Contains("the shard is rank", StringComparison.Ordinal))
            {
            }
        });
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    private static void CheckClose(ConcurrentQueue<string> failed, string what, double[] actual, double[] expected, double tolerance)
    {
        for (int i = 0; i < expected.Length; i++)
        {
            if (!(Math.Abs(actual[i] - expected[i]) <= tolerance * Math.Max(1, Math.Abs(expected[i]))))
            {
                failed.Enqueue($"{what}[{i}]: {actual[i]:R}, expected {expected[i]:R}");
                return;
            }
        }
    }
}
