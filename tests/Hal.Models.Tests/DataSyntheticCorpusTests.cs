using Hal.Models.Data;

namespace Hal.Models.Tests;

public sealed class DataSyntheticCorpusTests
{
    private static double Log(double p) => Math.Log(p);

    [Fact]
    public void EntropyRate_MatchesTheLossOfTheTrueChainOnALongSample()
    {
        const ulong seed = 1337;
        using var corpus = new SyntheticCorpus(seed: seed);
        var tokens = new int[corpus.Length];
        corpus.Read(0, tokens);
        int k = corpus.Order;
        long transitions = tokens.Length - k;
        // Batch means: 32 contiguous blocks; their spread gives a standard error that includes the chain's
        // autocorrelation, which a plain σ/√N would ignore.
        const int blocks = 32;
        long perBlock = transitions / blocks;
        var blockMeans = new double[blocks];
        for (int b = 0; b < blocks; b++)
        {
            double sum = 0;
            for (long i = k + (b * perBlock); i < k + ((b + 1) * perBlock); i++)
            {
                double p = corpus.Probability(tokens.AsSpan((int)(i - k), k), tokens[i]);
                Assert.True(p > 0, $"seed {seed}: token {i} = {tokens[i]} has probability 0 after its context");
                sum -= Log(p);
            }
            blockMeans[b] = sum / perBlock;
        }
        double mean = blockMeans.Average();
        double variance = blockMeans.Sum(m => (m - mean) * (m - mean)) / (blocks - 1);
        double standardError = Math.Sqrt(variance / blocks);
        // 5 standard errors: a false failure has probability below 1e-6 under the normal approximation.
        Assert.True(Math.Abs(mean - corpus.EntropyRateNats) < 5 * standardError,
            $"seed {seed}: empirical {mean:F5} vs exact {corpus.EntropyRateNats:F5}, standard error {standardError:F5}");
        Assert.True(standardError < 0.01, $"seed {seed}: standard error {standardError} too wide to test anything");
    }

    [Theory]
    [InlineData(32, 2, 4, 1337UL)]
    [InlineData(7, 3, 3, 5UL)]
    [InlineData(16, 1, 16, 9UL)]
    [InlineData(3, 4, 2, 21UL)]
    public void Stationary_IsFixedByTheTransitions_AndEntropyIsItsWeightedConditionalEntropy(int v, int order, int successors, ulong seed)
    {
        using var corpus = new SyntheticCorpus(v, order, successors, length: 1000, seed: seed);
        int contexts = (int)Math.Pow(v, order);
        var context = new int[order];
        var pi = new double[contexts];
        double total = 0, entropy = 0;
        for (int c = 0; c < contexts; c++)
        {
            Decode(c, v, context);
            pi[c] = corpus.StationaryProbability(context);
            total += pi[c];
            double rowSum = 0;
            int nonZero = 0;
            for (int next = 0; next < v; next++)
            {
                double p = corpus.Probability(context, next);
                rowSum += p;
                if (p > 0)
                {
                    nonZero++;
                    entropy -= pi[c] * p * Math.Log(p);
                }
            }
            // Rows are normalised in double: a few ulps of rounding over ≤ 16 terms.
            Assert.True(Math.Abs(rowSum - 1) < 1e-12, $"seed {seed}: row {c} sums to {rowSum}");
            Assert.Equal(successors, nonZero);
        }
        Assert.True(Math.Abs(total - 1) < 1e-9, $"seed {seed}: π sums to {total}");
        // π(b) = Σ_a π(a) P(a → b), each context having one possible predecessor per oldest token.
        var successor = new int[order];
        var flow = new double[contexts];
        for (int c = 0; c < contexts; c++)
        {
            Decode(c, v, context);
            for (int next = 0; next < v; next++)
            {
                double p = corpus.Probability(context, next);
                if (p > 0)
                {
                    context.AsSpan(1).CopyTo(successor);
                    successor[order - 1] = next;
                    flow[Encode(successor, v)] += pi[c] * p;
                }
            }
        }
        for (int c = 0; c < contexts; c++)
        {
            // The power iteration stops at an L1 change below 1e-14; 1e-9 leaves room for slow-mixing chains.
            Assert.True(Math.Abs(flow[c] - pi[c]) < 1e-9, $"seed {seed}: context {c}: πP = {flow[c]}, π = {pi[c]}");
        }
        // Same sum in another order: rounding only.
        Assert.Equal(entropy, corpus.EntropyRateNats, 1e-12);
    }

    [Fact]
    public void TwoTokenChain_MatchesTheClosedForm()
    {
        using var corpus = new SyntheticCorpus(vocabSize: 2, order: 1, successors: 2, length: 100, seed: 3);
        double p01 = corpus.Probability([0], 1), p10 = corpus.Probability([1], 0);
        double pi0 = p10 / (p01 + p10), pi1 = 1 - pi0;
        static double H(double p) => -(p * Math.Log(p)) - ((1 - p) * Math.Log(1 - p));
        double expected = (pi0 * H(p01)) + (pi1 * H(p10));
        // Closed form vs power iteration to 1e-14.
        Assert.Equal(pi0, corpus.StationaryProbability([0]), 1e-12);
        Assert.Equal(expected, corpus.EntropyRateNats, 1e-12);
    }

    [Fact]
    public void Defaults_LeaveALargeGapBelowTheUniformLoss()
    {
        using var corpus = new SyntheticCorpus();
        Assert.Equal(32, corpus.VocabSize);
        Assert.Equal(2, corpus.Order);
        Assert.Equal(4, corpus.Successors);
        Assert.Equal(1L << 20, corpus.Length);
        // The documented design point: ln 32 ≈ 3.47 nats uniform, entropy ≈ 1.28 (seed 1337), a gap of at least 2 nats.
        Assert.True(Math.Log(32) - corpus.EntropyRateNats > 2.0, $"entropy {corpus.EntropyRateNats}");
        Assert.True(corpus.EntropyRateNats < Math.Log(4), $"entropy {corpus.EntropyRateNats} above ln 4");
        Assert.Equal(corpus.EntropyRateNats, ((ITokenDataset)corpus).EntropyRateNats);
    }

    [Fact]
    public void OrderTwo_IsNotPredictableFromThePreviousTokenAlone()
    {
        // The conditional entropy given only the previous token must exceed the order-2 rate: otherwise a bigram
        // model would reach the entropy and the corpus would not need attention.
        const ulong seed = 1337;
        using var corpus = new SyntheticCorpus(seed: seed);
        var tokens = new int[corpus.Length];
        corpus.Read(0, tokens);
        int v = corpus.VocabSize;
        var pair = new double[v, v];
        var single = new double[v];
        for (int i = 1; i < tokens.Length; i++)
        {
            pair[tokens[i - 1], tokens[i]]++;
            single[tokens[i - 1]]++;
        }
        double bigram = 0;
        for (int a = 0; a < v; a++)
        {
            for (int b = 0; b < v; b++)
            {
                if (pair[a, b] > 0)
                {
                    bigram -= pair[a, b] / (tokens.Length - 1) * Math.Log(pair[a, b] / single[a]);
                }
            }
        }
        Assert.True(bigram > corpus.EntropyRateNats + 0.5, $"seed {seed}: bigram entropy {bigram}, rate {corpus.EntropyRateNats}");
    }

    [Fact]
    public void SameSeed_SameTokens_OtherSeed_OtherTokens()
    {
        using var a = new SyntheticCorpus(length: 5000, seed: 42);
        using var b = new SyntheticCorpus(length: 5000, seed: 42);
        using var c = new SyntheticCorpus(length: 5000, seed: 43);
        var ta = new int[5000];
        var tb = new int[5000];
        var tc = new int[5000];
        a.Read(0, ta);
        b.Read(0, tb);
        c.Read(0, tc);
        Assert.Equal(ta, tb);
        Assert.Equal(a.EntropyRateNats, b.EntropyRateNats);
        Assert.True(ta.Zip(tc).Count(p => p.First != p.Second) > 1000, "seeds 42 and 43 gave near-identical corpora");
        Assert.All(ta, t => Assert.InRange(t, 0, 31));
    }

    [Fact]
    public void OneSuccessor_IsDeterministic_WithZeroEntropy()
    {
        using var corpus = new SyntheticCorpus(vocabSize: 9, order: 3, successors: 1, length: 200, seed: 8);
        var tokens = new int[200];
        corpus.Read(0, tokens);
        for (int i = 3; i < tokens.Length; i++)
        {
            Assert.Equal((tokens[i - 3] + 1) % 9, tokens[i]);
        }
        Assert.Equal(0.0, corpus.EntropyRateNats);
    }

    [Fact]
    public void Read_ReturnsTheRequestedSlice_AndRejectsRangesOutside()
    {
        using var corpus = new SyntheticCorpus(length: 100, seed: 1);
        var all = new int[100];
        corpus.Read(0, all);
        foreach (int n in new[] { 0, 1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65 })
        {
            var part = new int[n];
            corpus.Read(100 - n, part);
            Assert.Equal(all[(100 - n)..], part);
        }
        Assert.Throws<ArgumentOutOfRangeException>(() => corpus.Read(-1, new int[1]));
        Assert.Throws<ArgumentOutOfRangeException>(() => corpus.Read(95, new int[6]));
        Assert.Contains("synthetic", corpus.Description);
    }

    [Fact]
    public void BadArguments_Throw()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new SyntheticCorpus(vocabSize: 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => new SyntheticCorpus(order: 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => new SyntheticCorpus(successors: 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => new SyntheticCorpus(vocabSize: 8, successors: 9));
        Assert.Throws<ArgumentOutOfRangeException>(() => new SyntheticCorpus(vocabSize: 64, order: 4));
        Assert.Throws<ArgumentOutOfRangeException>(() => new SyntheticCorpus(length: 2));
        using var corpus = new SyntheticCorpus(length: 10);
        Assert.Throws<ArgumentException>(() => corpus.Probability([1], 2));
        Assert.Throws<ArgumentOutOfRangeException>(() => corpus.Probability([1, 32], 2));
    }

    private static void Decode(int c, int v, int[] context)
    {
        for (int i = context.Length - 1; i >= 0; i--)
        {
            context[i] = c % v;
            c /= v;
        }
    }

    private static int Encode(int[] context, int v)
    {
        int c = 0;
        foreach (int t in context)
        {
            c = (c * v) + t;
        }
        return c;
    }
}
