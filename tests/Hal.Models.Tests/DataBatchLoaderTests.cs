using Hal.Models.Data;

namespace Hal.Models.Tests;

public sealed class DataBatchLoaderTests
{
    /// <summary>Token i is i itself, so a window's first input is its start position.</summary>
    private sealed class CountingDataset(long length) : ITokenDataset
    {
        public long Length => length;

        public int VocabSize => int.MaxValue;

        public double? EntropyRateNats => null;

        public string Description => $"counting 0 … {length - 1}";

        public void Read(long start, Span<int> destination)
        {
            Assert.InRange(start, 0, length - destination.Length);
            for (int i = 0; i < destination.Length; i++)
            {
                destination[i] = (int)(start + i);
            }
        }

        public void Dispose()
        {
        }
    }

    private static (int[] Inputs, int[] Targets) Draw(BatchLoader loader)
    {
        var inputs = new int[loader.Batch * loader.Seq];
        var targets = new int[loader.Batch * loader.Seq];
        loader.Next(inputs, targets);
        return (inputs, targets);
    }

    [Theory]
    [InlineData(1000, 1, 1)]
    [InlineData(1000, 4, 7)]
    [InlineData(1000, 3, 8)]
    [InlineData(1000, 2, 9)]
    [InlineData(500, 2, 15)]
    [InlineData(500, 3, 16)]
    [InlineData(500, 1, 17)]
    [InlineData(300, 2, 31)]
    [InlineData(300, 5, 32)]
    [InlineData(300, 2, 33)]
    [InlineData(200, 3, 63)]
    [InlineData(200, 2, 64)]
    [InlineData(66, 1, 65)]
    public void Consecutive_WindowsFollowTheFormula_AndWrapAtTheEnd(long length, int batch, int seq)
    {
        var loader = new BatchLoader(new CountingDataset(length), batch, seq, shuffle: false, seed: 0);
        // Enough batches to wrap several times.
        long batches = (3 * length / (batch * seq)) + 2;
        for (long n = 0; n < batches; n++)
        {
            long expectedPosition = n * batch * seq % (length - seq);
            Assert.Equal(expectedPosition, loader.Position);
            Assert.Equal(n * batch * seq / (length - seq), loader.Epoch);
            var (inputs, targets) = Draw(loader);
            for (int r = 0; r < batch; r++)
            {
                long start = ((n * batch * seq) + (r * seq)) % (length - seq);
                for (int t = 0; t < seq; t++)
                {
                    Assert.Equal(start + t, inputs[(r * seq) + t]);
                    Assert.Equal(start + t + 1, targets[(r * seq) + t]);
                }
            }
            Assert.Equal(n + 1, loader.BatchesDrawn);
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Seek_ReproducesTheUninterruptedSequence(bool shuffle)
    {
        const ulong seed = 77;
        using var corpus = new SyntheticCorpus(length: 3000, seed: seed);
        var straight = new BatchLoader(corpus, 3, 16, shuffle, seed);
        var expected = new List<int[]>();
        // 3000 tokens hold 187 windows of 16: 120 batches of 3 cross the end (or an epoch) about twice.
        for (int n = 0; n < 120; n++)
        {
            var (inputs, targets) = Draw(straight);
            expected.Add([.. inputs, .. targets]);
        }
        foreach (int resumeAt in new[] { 0, 1, 7, 61, 62, 63, 119 })
        {
            var resumed = new BatchLoader(corpus, 3, 16, shuffle, seed);
            resumed.Seek(resumeAt);
            Assert.Equal(resumeAt, resumed.BatchesDrawn);
            for (int n = resumeAt; n < 120; n++)
            {
                var (inputs, targets) = Draw(resumed);
                Assert.True(expected[n].SequenceEqual([.. inputs, .. targets]), $"shuffle {shuffle}, seed {seed}: batch {n} after Seek({resumeAt})");
            }
        }
        // Seeking back on the same loader works too.
        straight.Seek(5);
        var (again, againTargets) = Draw(straight);
        Assert.Equal(expected[5], (int[])[.. again, .. againTargets]);
    }

    [Theory]
    [InlineData(101, 1, 10)]
    [InlineData(100, 1, 10)]
    [InlineData(1000, 4, 7)]
    [InlineData(640, 8, 8)]
    [InlineData(1 + (33 * 17), 3, 17)]
    public void Shuffle_VisitsEveryWindowOncePerEpoch(long length, int batch, int seq)
    {
        const ulong seed = 2024;
        var loader = new BatchLoader(new CountingDataset(length), batch, seq, shuffle: true, seed: seed);
        long windows = (length - 1) / seq;
        Assert.Equal(windows, loader.WindowsPerEpoch);
        var starts = new List<long>();
        while (starts.Count < 3 * windows)
        {
            long position = loader.Position;
            Assert.Equal(starts.Count / windows, loader.Epoch);
            var (inputs, targets) = Draw(loader);
            Assert.Equal(position, inputs[0]);
            for (int r = 0; r < batch; r++)
            {
                long start = inputs[r * seq];
                for (int t = 0; t < seq; t++)
                {
                    Assert.Equal(start + t, inputs[(r * seq) + t]);
                    Assert.Equal(start + t + 1, targets[(r * seq) + t]);
                }
                starts.Add(start);
            }
        }
        var expectedSet = Enumerable.Range(0, (int)windows).Select(w => (long)w * seq).ToArray();
        var orders = new List<long[]>();
        for (int epoch = 0; epoch < 3; epoch++)
        {
            long[] visited = [.. starts.Skip(epoch * (int)windows).Take((int)windows)];
            orders.Add(visited);
            Assert.Equal(expectedSet, visited.Order().ToArray());
        }
        // 1/W! chance that two epochs agree by luck: for W ≥ 10 that is below 3e-7.
        Assert.False(orders[0].SequenceEqual(orders[1]), $"seed {seed}: epochs 0 and 1 have the same order");
        Assert.False(orders[0].SequenceEqual(expectedSet), $"seed {seed}: epoch 0 is not shuffled");
    }

    [Fact]
    public void Shuffle_DependsOnTheSeedOnly()
    {
        var a = new BatchLoader(new CountingDataset(4097), 4, 16, shuffle: true, seed: 1);
        var b = new BatchLoader(new CountingDataset(4097), 4, 16, shuffle: true, seed: 1);
        var c = new BatchLoader(new CountingDataset(4097), 4, 16, shuffle: true, seed: 2);
        int differ = 0;
        for (int n = 0; n < 64; n++)
        {
            var (ia, _) = Draw(a);
            var (ib, _) = Draw(b);
            var (ic, _) = Draw(c);
            Assert.Equal(ia, ib);
            differ += ia.SequenceEqual(ic) ? 0 : 1;
        }
        // Seeds 1 and 2 over 256 windows: equal batches would mean the seed is ignored.
        Assert.True(differ > 60, $"seeds 1 and 2 gave {64 - differ} equal batches of 64");
    }

    [Fact]
    public void SmallestDataset_OneWindow()
    {
        // T + 1 tokens: one start position, one shuffled window.
        foreach (bool shuffle in new[] { false, true })
        {
            var loader = new BatchLoader(new CountingDataset(9), 2, 8, shuffle, seed: 3);
            var (inputs, targets) = Draw(loader);
            Assert.Equal([0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3, 4, 5, 6, 7], inputs);
            Assert.Equal([1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8], targets);
            Assert.Equal(0, loader.Position);
        }
    }

    [Fact]
    public void BadArguments_Throw()
    {
        var data = new CountingDataset(100);
        Assert.Throws<ArgumentOutOfRangeException>(() => new BatchLoader(data, 0, 8, false, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => new BatchLoader(data, 1, 0, false, 0));
        var tooShort = Assert.Throws<DatasetException>(() => new BatchLoader(data, 1, 100, false, 0));
        Assert.Equal(DatasetProblem.TooShort, tooShort.Problem);
        var loader = new BatchLoader(data, 2, 8, false, 0);
        Assert.Throws<ArgumentException>(() => loader.Next(new int[15], new int[16]));
        Assert.Throws<ArgumentException>(() => loader.Next(new int[16], new int[17]));
        Assert.Throws<ArgumentOutOfRangeException>(() => loader.Seek(-1));
        Assert.Equal(0, loader.BatchesDrawn);
    }

    [Fact]
    public void Position_IsExactFarIntoALongRun()
    {
        // k·T overflows nothing: 10¹² batches of 512 × 1024 tokens.
        var loader = new BatchLoader(new CountingDataset(1_000_003), 512, 1024, shuffle: false, seed: 0);
        long n = 1_000_000_000_000;
        loader.Seek(n);
        long expected = (long)((System.Numerics.BigInteger)n * 512 * 1024 % (1_000_003 - 1024));
        Assert.Equal(expected, loader.Position);
    }
}
