using static Hal.Parallel.Tests.DataParallelTestKit;

namespace Hal.Parallel.Tests;

// Shape legend: M = N·b samples in the global batch, N ranks with b samples each; n inputs, k outputs;
// X [M, n] inputs, T [M, k] targets, W [k, n] weights (y = W·x), R [b, k] residuals, G [k, n] gradient.

/// <summary>
/// Data parallel training with no model class: linear least squares, loss = 1/(2M) Σ ‖W·x − t‖². Each rank computes
/// its shard's gradient with Ops.Gemm, GradientBucketer averages it, and each rank takes SGD steps; N ranks with
/// batch b must match one rank with batch N·b and a plain double reference.
/// </summary>
public sealed class LeastSquaresDataParallelTests
{
    private const int Inputs = 13;
    private const int Outputs = 5;
    private const int PerRankBatch = 6;
    private const int Steps = 2;
    private const double LearningRate = 0.1;
    private const int Seed = 20_240_917;

    // fp32 bound. |x|, |w|, |t| ≤ 1 (and |w| stays ≤ 1.5 over two steps of lr 0.1), so |R| ≤ 1.5·13 + 1 < 21 and
    // |G| < 21. A Gemm over m terms is within γ_m·Σ|terms| of the exact sum (γ_m ≈ m·2⁻²⁴): R within 14·2⁻²⁴·21 ≈ 2e-5,
    // G's sum over ≤ 24 rows within 24·2⁻²⁴·21 ≈ 3e-5 plus the propagated 2e-5, the mean over ranks adds a few ulp
    // of 21 (~1e-5). Both sides being compared carry such errors, so 1e-4 bounds their distance with margin.
    private const double Fp32Tolerance = 1e-4;

    [Theory]
    [InlineData(2)]
    [InlineData(4)]
    public void N_ranks_with_batch_b_match_one_rank_with_batch_N_times_b(int ranks)
    {
        int samples = ranks * PerRankBatch;
        var (x, t, w0) = Problem(samples);
        var reference = Reference(x, t, w0, samples);

        var parallel = Train(ranks, PerRankBatch, x, t, w0);
        var single = Train(1, samples, x, t, w0);

        for (int r = 1; r < ranks; r++)
        {
            Assert.Equal(parallel[0].Weights, parallel[r].Weights);
            Assert.Equal(parallel[0].FirstGradient, parallel[r].FirstGradient);
        }
        AssertClose(reference.FirstGradient, parallel[0].FirstGradient, $"dp={ranks} gradient vs double reference (seed {Seed})");
        AssertClose(reference.Weights, parallel[0].Weights, $"dp={ranks} weights after {Steps} steps vs double reference (seed {Seed})");
        AssertClose(single[0].FirstGradient, parallel[0].FirstGradient, $"dp={ranks} vs dp=1 gradient (seed {Seed})");
        AssertClose(single[0].Weights, parallel[0].Weights, $"dp={ranks} vs dp=1 weights (seed {Seed})");
        AssertClose(reference.Weights, single[0].Weights, $"dp=1 weights vs double reference (seed {Seed})");
    }

    private sealed record Outcome(double[] FirstGradient, double[] Weights);

    /// <summary>Inputs, targets and initial weights in [−1, 1], rounded to F32 so every side starts from the same numbers.</summary>
    private static (double[] X, double[] T, double[] W0) Problem(int samples)
    {
        var random = new Random(Seed);
        double Next() => (float)((random.NextDouble() * 2) - 1);
        var x = new double[samples * Inputs];
        var t = new double[samples * Outputs];
        var w = new double[Outputs * Inputs];
        for (int i = 0; i < x.Length; i++)
        {
            x[i] = Next();
        }
        for (int i = 0; i < t.Length; i++)
        {
            t[i] = Next();
        }
        for (int i = 0; i < w.Length; i++)
        {
            w[i] = Next();
        }
        return (x, t, w);
    }

    /// <summary>Plain loops in double: G = (1/M)·Rᵀ·X with R = X·Wᵀ − T, then W −= lr·G, <see cref="Steps"/> times.</summary>
    private static Outcome Reference(double[] x, double[] t, double[] w0, int samples)
    {
        var w = (double[])w0.Clone();
        double[]? first = null;
        for (int step = 0; step < Steps; step++)
        {
            var g = new double[Outputs * Inputs];
            for (int i = 0; i < samples; i++)
            {
                for (int j = 0; j < Outputs; j++)
                {
                    double r = -t[(i * Outputs) + j];
                    for (int l = 0; l < Inputs; l++)
                    {
                        r += x[(i * Inputs) + l] * w[(j * Inputs) + l];
                    }
                    for (int l = 0; l < Inputs; l++)
                    {
                        g[(j * Inputs) + l] += r * x[(i * Inputs) + l] / samples;
                    }
                }
            }
            first ??= g;
            for (int i = 0; i < w.Length; i++)
            {
                w[i] -= LearningRate * g[i];
            }
        }
        return new Outcome(first!, w);
    }

    /// <summary>Trains on <paramref name="ranks"/> in-process ranks, rank r on samples [r·b, (r+1)·b).</summary>
    private static Outcome[] Train(int ranks, int perRank, double[] x, double[] t, double[] w0)
    {
        var outcomes = new Outcome[ranks];
        var failures = RunRanks(ranks, (comm, ops, failed) =>
        {
            int r = comm.Rank;
            using var xShard = ops.FromArray(x.AsSpan(r * perRank * Inputs, perRank * Inputs), new Shape(perRank, Inputs));
            using var tShard = ops.FromArray(t.AsSpan(r * perRank * Outputs, perRank * Outputs), new Shape(perRank, Outputs));
            // Only rank 0 holds the initial weights; the broadcast must give them to the others.
            using var w = r == 0 ? ops.FromArray(w0, new Shape(Outputs, Inputs)) : ops.Full(new Shape(Outputs, Inputs), r + 7);
            using var residual = ops.Empty(new Shape(perRank, Outputs));
            using var prediction = ops.Empty(new Shape(perRank, Outputs));
            using var gradSlab = ops.Empty(new Shape(Outputs * Inputs));
            using var step = ops.Empty(new Shape(Outputs, Inputs));
            using var updated = ops.Empty(new Shape(Outputs, Inputs));
            using var learningRate = ops.Full(new Shape(1), LearningRate);
            var g = gradSlab.Reshape(Outputs, Inputs);
            // 7 elements per bucket: 65 = 9·7 + 2, so the last bucket is short.
            using var bucketer = new GradientBucketer(comm, gradSlab, 7 * sizeof(float));

            DataParallel.BroadcastParameters(comm, w.Reshape(Outputs * Inputs));
            double[]? first = null;
            for (int s = 0; s < Steps; s++)
            {
                bucketer.BeginBackward();
                ops.Gemm(xShard, w, prediction, transB: true);
                ops.Binary(BinaryOp.Sub, prediction, tShard, residual);
                // G = (1/b)·Rᵀ·X, written one output row at a time from the last, reporting each row final as it lands.
                for (int j = Outputs - 1; j >= 0; j--)
                {
                    using var rowOfR = ops.Empty(new Shape(perRank, 1));
                    using var index = ops.FromArray([(long)j], new Shape(1), DType.I64);
                    ops.IndexSelect(residual, 1, index, rowOfR);
                    ops.Gemm(rowOfR, xShard, g.Slice(j, 1), transA: true, alpha: 1.0 / perRank);
                    bucketer.GradientsReadyFrom((long)j * Inputs);
                }
                bucketer.FinishBackward();
                first ??= ops.ToDoubleArray(gradSlab);
                ops.Binary(BinaryOp.Mul, g, learningRate, step);
                ops.Binary(BinaryOp.Sub, w, step, updated);
                ops.Copy(updated, w);
            }
            outcomes[r] = new Outcome(first!, ops.ToDoubleArray(w));
            if (bucketer.BucketsOverlapped == 0)
            {
                failed.Enqueue($"rank {r}: no bucket was launched before FinishBackward");
            }
        });

        Assert.True(failures.Count == 0, string.Join("\n", failures));
        return outcomes;
    }

    private static void AssertClose(double[] expected, double[] actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
        {
            Assert.True(Math.Abs(expected[i] - actual[i]) <= Fp32Tolerance, $"{what}: element {i} is {actual[i]}, expected {expected[i]}");
        }
    }
}
