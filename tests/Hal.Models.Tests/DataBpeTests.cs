using System.Text;
using Hal.Models.Data;

namespace Hal.Models.Tests;

public sealed class DataBpeTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("hal-bpe-").FullName;

    // Varied text: contractions, digits, punctuation runs, whitespace runs, tabs, CRLF, unicode letters, CJK, emoji
    // (surrogate pairs), combining marks, and the end-of-text marker.
    private static readonly string[] Samples =
    [
        "Hello world",
        " Hello world",
        "I'm sure they'll say it's fine, don't you think? We've 3.14159 reasons.",
        "  leading and trailing spaces   ",
        "tabs\tand\nnewlines\n\n\nand\r\nCRLF",
        "Ünïcödé façade — naïve café, Ελληνικά, русский текст",
        "中文字符和日本語のテキスト",
        "emoji 🙂👍🏽 and 𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
        "e\u0301 combining accent",
        "!!!??? ... ((brackets)) [x] {y} <z> #tag @user $5 100%",
        "first document<|endoftext|>second document",
        "",
        " ",
        "\n",
    ];

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void KnownIds_FromTheHuggingFaceGpt2TokenizerDocs()
    {
        // The Hugging Face transformers GPT-2 tokenizer docstring: tokenizer("Hello world") → [15496, 995] and
        // tokenizer(" Hello world") → [18435, 995].
        Assert.Equal([15496, 995], BpeTextDataset.Encode("Hello world"));
        Assert.Equal([18435, 995], BpeTextDataset.Encode(" Hello world"));
        Assert.Equal([50256], BpeTextDataset.Encode("<|endoftext|>"));
    }

    [Fact]
    public void PrintableAsciiBytes_AreTheFirstNinetyFourIds()
    {
        // GPT-2's byte-level alphabet lists the printable bytes '!' (33) … '~' (126) first, as ids 0 … 93; a single
        // character has nothing to merge with, so it is exactly its byte's id.
        for (int b = 33; b <= 126; b++)
        {
            Assert.Equal([b - 33], BpeTextDataset.Encode(((char)b).ToString()));
        }
    }

    [Fact]
    public void Decode_InvertsEncode()
    {
        foreach (string text in Samples)
        {
            int[] ids = BpeTextDataset.Encode(text);
            Assert.All(ids, id => Assert.InRange(id, 0, 50256));
            Assert.Equal(text, BpeTextDataset.Decode(ids));
        }
    }

    [Theory]
    [InlineData(2, 1)]
    [InlineData(3, 1)]
    [InlineData(7, 1)]
    [InlineData(16, 1)]
    [InlineData(17, 1)]
    [InlineData(64, 1)]
    [InlineData(1 << 20, 1)]
    [InlineData(7, 3)]
    [InlineData(64, 2)]
    public void StreamedEncoding_EqualsEncodingTheWholeText(int chunkChars, int workers)
    {
        var text = new StringBuilder();
        for (int repeat = 0; repeat < 5; repeat++)
        {
            foreach (string sample in Samples)
            {
                text.Append(sample).Append(repeat % 2 == 0 ? "\n" : " ");
            }
        }
        text.Append(new string('x', 300)).Append(" tail");
        string whole = text.ToString();
        int[] expected = BpeTextDataset.Encode(whole);
        ushort[] streamed = BpeTextDataset.EncodeStream(new StringReader(whole), chunkChars, workers);
        Assert.Equal(expected, streamed.Select(t => (int)t).ToArray());
    }

    [Fact]
    public void TextFile_TokenisesToTheSameIdsAsTheString()
    {
        string text = string.Join("\n\n", Samples);
        string path = Path.Combine(_dir, "corpus.txt");
        File.WriteAllText(path, text, new UTF8Encoding(encoderShouldEmitUTF8Identifier: true));
        using var data = new BpeTextDataset(path);
        int[] expected = BpeTextDataset.Encode(text);
        Assert.Equal(expected.Length, data.Length);
        Assert.Equal(50257, data.VocabSize);
        Assert.Null(data.EntropyRateNats);
        var ids = new int[data.Length];
        data.Read(0, ids);
        Assert.Equal(expected, ids);
        Assert.Equal(text, BpeTextDataset.Decode(ids));
        Assert.Contains(50256, ids);
        Assert.Throws<ArgumentOutOfRangeException>(() => data.Read(1, new int[data.Length]));
    }

    [Fact]
    public void MissingOrEmptyTextFile_IsATypedError()
    {
        string empty = Path.Combine(_dir, "empty.txt");
        File.WriteAllText(empty, "");
        Assert.Equal(DatasetProblem.Empty, Assert.Throws<DatasetException>(() => new BpeTextDataset(empty)).Problem);
        Assert.Equal(DatasetProblem.MissingFile,
            Assert.Throws<DatasetException>(() => new BpeTextDataset(Path.Combine(_dir, "none.txt"))).Problem);
    }
}
