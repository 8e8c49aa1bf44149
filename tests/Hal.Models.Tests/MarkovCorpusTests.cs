using Hal.Models.Data;

namespace Hal.Models.Tests;

public sealed class MarkovCorpusTests
{
    [Theory]
    [InlineData(2, 1)]
    [InlineData(16, 3)]
    [InlineData(64, 4)]
    [InlineData(7, 7)]
    public void TransitionRowsAreDistributions(int vocab, int successors)
    {
        var c = new MarkovCorpus(vocab, successors, seed: 5);
        for (int i = 0; i < vocab; i++)
        {
            double sum = 0;
            int nonzero = 0;
            for (int j = 0; j < vocab; j++)
            {
                double p = c.TransitionProbability(i, j);
                Assert.InRange(p, 0.0, 1.0);
                sum += p;
                nonzero += p > 0 ? 1 : 0;
            }
            // Row sums are exact up to double rounding of `successors` divisions.
            Assert.Equal(1.0, sum, 12);
            Assert.Equal(successors, nonzero);
        }
    }

    [Fact]
    public void ADeterministicChainHasZeroEntropy()
    {
        var c = new MarkovCorpus(8, 1, seed: 1);
        Assert.Equal(0.0, c.EntropyRateNats, 12);
        var (inputs, targets) = c.NextBatch(20);
        for (int n = 0; n < inputs.Length; n++)
        {
            Assert.Equal((inputs[n] + 1) % 8, targets[n]);
        }
    }

    [Fact]
    public void AFullyUniformChainHasLogVEntropy()
    {
        // All V successors with random weights: entropy below ln V but above ln V − 0.5 for weights in [0.1, 1.1).
        var c = new MarkovCorpus(16, 16, seed: 3);
        Assert.InRange(c.EntropyRateNats, Math.Log(16) - 0.5, Math.Log(16));
    }

    [Fact]
    public void SamplesFollowTheTransitionProbabilities()
    {
        var c = new MarkovCorpus(6, 3, seed: 11);
        var (inputs, targets) = c.NextBatch(120_000);
        var counts = new double[6, 6];
        var rows = new double[6];
        for (int n = 0; n < inputs.Length; n++)
        {
            counts[inputs[n], targets[n]]++;
            rows[inputs[n]]++;
        }
        for (int i = 0; i < 6; i++)
        {
            for (int j = 0; j < 6; j++)
            {
                double p = c.TransitionProbability(i, j);
                double freq = counts[i, j] / rows[i];
                // Binomial standard error with ≥ ~10⁴ samples per row is ≤ 0.005; allow 5 of them.
                Assert.True(Math.Abs(freq - p) < 0.025, $"P({j}|{i}) = {p}, sampled {freq}");
            }
        }
    }

    [Fact]
    public void TheSameSeedGivesTheSameCorpus()
    {
        var a = new MarkovCorpus(32, 4, seed: 9).NextBatch(500);
        var b = new MarkovCorpus(32, 4, seed: 9).NextBatch(500);
        var c = new MarkovCorpus(32, 4, seed: 10).NextBatch(500);
        Assert.Equal(a.Targets, b.Targets);
        Assert.NotEqual(a.Targets, c.Targets);
    }

    [Fact]
    public void BadArgumentsAreRefused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new MarkovCorpus(1, 1, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => new MarkovCorpus(8, 9, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => new MarkovCorpus(8, 0, 0));
    }
}
