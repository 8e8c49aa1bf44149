using System.Buffers.Binary;
using Hal.Models.Data;

namespace Hal.Models.Tests;

public sealed class DataTokenFileTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("hal-data-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string WriteHeadered(string name, int version, int[] tokens, int? headerCount = null, int? magic = null, int truncateBytes = 0)
    {
        int width = version == 2 ? 4 : 2;
        var bytes = new byte[1024 + (tokens.Length * width)];
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(0), magic ?? 20240520);
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(4), version);
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(8), headerCount ?? tokens.Length);
        for (int i = 0; i < tokens.Length; i++)
        {
            if (width == 2)
            {
                BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(1024 + (2 * i)), (ushort)tokens[i]);
            }
            else
            {
                BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(1024 + (4 * i)), (uint)tokens[i]);
            }
        }
        string path = Path.Combine(_dir, name);
        File.WriteAllBytes(path, bytes[..^truncateBytes]);
        return path;
    }

    private string WriteRaw(string name, int[] tokens, int extraBytes = 0)
    {
        var bytes = new byte[(tokens.Length * 2) + extraBytes];
        for (int i = 0; i < tokens.Length; i++)
        {
            BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(2 * i), (ushort)tokens[i]);
        }
        string path = Path.Combine(_dir, name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    private static int[] RandomTokens(int count, int below, int seed)
    {
        var random = new Random(seed);
        return [.. Enumerable.Range(0, count).Select(_ => random.Next(below))];
    }

    [Theory]
    [InlineData(1)]
    [InlineData(7)]
    [InlineData(64)]
    [InlineData(65)]
    [InlineData(1000)]
    public void HeaderedVersion1_ReadsBack(int count)
    {
        const int seed = 11;
        int[] tokens = RandomTokens(count, 50257, seed);
        tokens[0] = 50256;
        using var data = new TokenFileDataset(WriteHeadered("v1.bin", 1, tokens));
        Assert.Equal(count, data.Length);
        Assert.Equal(50257, data.VocabSize);
        Assert.Equal(2, data.TokenBytes);
        Assert.Null(data.EntropyRateNats);
        var back = new int[count];
        data.Read(0, back);
        Assert.True(tokens.SequenceEqual(back), $"seed {seed}: tokens differ");
        var tail = new int[count / 2];
        data.Read(count - tail.Length, tail);
        Assert.Equal(tokens[(count - tail.Length)..], tail);
        Assert.Contains("llm.c v1", data.Description);
    }

    [Fact]
    public void HeaderedVersion2_ReadsUInt32Tokens()
    {
        const int seed = 12;
        int[] tokens = RandomTokens(333, 128256, seed);
        tokens[5] = 128255;
        tokens[6] = 65536;
        using var data = new TokenFileDataset(WriteHeadered("v2.bin", 2, tokens));
        Assert.Equal(333, data.Length);
        Assert.Equal(4, data.TokenBytes);
        Assert.Equal(128256, data.VocabSize);
        var back = new int[333];
        data.Read(0, back);
        Assert.True(tokens.SequenceEqual(back), $"seed {seed}: tokens differ");
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(511)]
    [InlineData(512)]
    [InlineData(513)]
    [InlineData(4096)]
    public void RawUInt16_ReadsBack(int count)
    {
        const int seed = 13;
        int[] tokens = RandomTokens(count, 50257, seed);
        using var data = new TokenFileDataset(WriteRaw("raw.bin", tokens));
        Assert.Equal(count, data.Length);
        Assert.Equal(2, data.TokenBytes);
        var back = new int[count];
        data.Read(0, back);
        Assert.True(tokens.SequenceEqual(back), $"seed {seed}: tokens differ");
        Assert.Contains("raw uint16", data.Description);
    }

    [Fact]
    public void Errors_AreTypedAndSayWhatIsWrong()
    {
        DatasetProblem ProblemOf(Action open) => Assert.Throws<DatasetException>(open).Problem;

        string missing = Path.Combine(_dir, "missing.bin");
        Assert.Equal(DatasetProblem.MissingFile, ProblemOf(() => new TokenFileDataset(missing)));
        Assert.Equal(DatasetProblem.MissingFile, ProblemOf(() => TokenDatasets.Open(missing, 0)));
        Assert.Equal(DatasetProblem.Empty, ProblemOf(() => new TokenFileDataset(WriteRaw("empty.bin", []))));
        Assert.Equal(DatasetProblem.OddByteCount, ProblemOf(() => new TokenFileDataset(WriteRaw("odd.bin", [1, 2, 3], extraBytes: 1))));
        Assert.Equal(DatasetProblem.BadHeader, ProblemOf(() => new TokenFileDataset(WriteHeadered("v3.bin", 3, [1, 2]))));
        Assert.Equal(DatasetProblem.BadHeader, ProblemOf(() => new TokenFileDataset(WriteHeadered("count.bin", 1, [1, 2, 3], headerCount: 4))));
        Assert.Equal(DatasetProblem.BadHeader, ProblemOf(() => new TokenFileDataset(WriteHeadered("trunc.bin", 1, [1, 2, 3], truncateBytes: 2))));
        Assert.Equal(DatasetProblem.BadHeader, ProblemOf(() => new TokenFileDataset(WriteHeadered("short.bin", 1, [], truncateBytes: 1000))));
        Assert.Equal(DatasetProblem.BadHeader, ProblemOf(() => new TokenFileDataset(WriteHeadered("negative.bin", 1, [1], headerCount: -1))));
        Assert.Equal(DatasetProblem.Empty, ProblemOf(() => new TokenFileDataset(WriteHeadered("zero.bin", 1, []))));

        var error = Assert.Throws<DatasetException>(() => new TokenFileDataset(WriteHeadered("v9.bin", 9, [1])));
        Assert.Contains("version 9", error.Message);
        Assert.EndsWith("v9.bin", error.DataPath);
    }

    [Fact]
    public void TokenAtOrAboveTheVocabulary_IsReportedOnRead()
    {
        using var raw = new TokenFileDataset(WriteRaw("big.bin", [1, 2, 50257, 4]));
        var ok = new int[2];
        raw.Read(0, ok);
        Assert.Equal([1, 2], ok);
        var error = Assert.Throws<DatasetException>(() => raw.Read(1, new int[2]));
        Assert.Equal(DatasetProblem.TokenOutOfRange, error.Problem);
        Assert.Contains("50257", error.Message);

        using var wide = new TokenFileDataset(WriteHeadered("wide.bin", 2, [5, 128256]));
        Assert.Equal(DatasetProblem.TokenOutOfRange, Assert.Throws<DatasetException>(() => wide.Read(0, new int[2])).Problem);
        Assert.Throws<ArgumentOutOfRangeException>(() => wide.Read(1, new int[2]));
        Assert.Throws<ArgumentOutOfRangeException>(() => wide.Read(-1, new int[1]));
    }

    [Fact]
    public void Open_ChoosesTheDatasetBySpec()
    {
        using (var bin = TokenDatasets.Open(WriteRaw("tokens.bin", [3, 4, 5]), seed: 0))
        {
            Assert.IsType<TokenFileDataset>(bin);
            Assert.Equal(3, bin.Length);
        }
        string text = Path.Combine(_dir, "tiny.txt");
        File.WriteAllText(text, "Hello world");
        using (var bpe = TokenDatasets.Open(text, seed: 0))
        {
            Assert.IsType<BpeTextDataset>(bpe);
            var ids = new int[2];
            bpe.Read(0, ids);
            Assert.Equal([15496, 995], ids);
        }
        using (var synthetic = TokenDatasets.Open("synthetic", seed: 5, syntheticVocab: 16))
        {
            var corpus = Assert.IsType<SyntheticCorpus>(synthetic);
            Assert.Equal(16, corpus.VocabSize);
            Assert.NotNull(synthetic.EntropyRateNats);
            using var same = new SyntheticCorpus(vocabSize: 16, seed: 5);
            Assert.Equal(same.EntropyRateNats, corpus.EntropyRateNats);
        }
        using (var defaults = TokenDatasets.Open("synthetic", seed: 1337))
        {
            using var same = new SyntheticCorpus();
            Assert.Equal(same.EntropyRateNats, defaults.EntropyRateNats);
        }
    }

    [Fact]
    public void Dispose_UnmapsTheFile_SoItCanBeDeleted()
    {
        string path = WriteRaw("delete.bin", [1, 2, 3]);
        var data = new TokenFileDataset(path);
        data.Dispose();
        data.Dispose();
        File.Delete(path);
        Assert.False(File.Exists(path));
        Assert.Throws<ObjectDisposedException>(() => data.Read(0, new int[1]));
    }
}
