using System.Text;
using Microsoft.ML.Tokenizers;

namespace Hal.Models.Data;

/// <summary>
/// A UTF-8 text file tokenised once, at construction, with GPT-2's byte-level BPE (50 257 tokens; the literal text
/// <c>&lt;|endoftext|&gt;</c> becomes token 50256). The file is one stream of text: it is read in chunks and each chunk
/// is cut where GPT-2's pre-tokenizer would cut anyway, so the tokens equal those of the whole text at once while no
/// single huge string is built. Tokens are kept as uint16, 2 bytes each.
/// </summary>
public sealed class BpeTextDataset : ITokenDataset
{
    /// <summary>GPT-2's vocabulary.</summary>
    public const int Gpt2VocabSize = 50257;

    /// <summary>GPT-2's end-of-text token.</summary>
    public const int EndOfTextToken = 50256;

    // Characters read per chunk; a chunk is encoded up to its last safe cut, the rest carried into the next.
    private const int ChunkChars = 1 << 20;

    // Tokenizers built for parallel encoding (each ~0.7 s to build and tens of MB): beyond 8 the gain is small.
    private const int MaxWorkers = 8;

    private static readonly Lazy<TiktokenTokenizer> Tokenizer = new(() => TiktokenTokenizer.CreateForModel("gpt2"));

    private readonly ushort[] _tokens;
    private readonly string _path;

    /// <summary>Reads and tokenises <paramref name="path"/>.</summary>
    /// <exception cref="DatasetException">the file is missing, or holds no text.</exception>
    public BpeTextDataset(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        _path = path;
        if (!File.Exists(path))
        {
            throw new DatasetException(DatasetProblem.MissingFile, path, "no such text file; check the path");
        }
        using var reader = new StreamReader(path, Encoding.UTF8, detectEncodingFromByteOrderMarks: true);
        _tokens = EncodeStream(reader, ChunkChars, Math.Clamp(Environment.ProcessorCount, 1, MaxWorkers));
        if (_tokens.Length == 0)
        {
            throw new DatasetException(DatasetProblem.Empty, path, "the text file is empty; give it some text");
        }
    }

    /// <inheritdoc/>
    public long Length => _tokens.Length;

    /// <inheritdoc/>
    public int VocabSize => Gpt2VocabSize;

    /// <summary>Null: real text has no known entropy rate.</summary>
    public double? EntropyRateNats => null;

    /// <inheritdoc/>
    public string Description => $"text {_path} (GPT-2 BPE): {Length} tokens";

    /// <summary>GPT-2 BPE token ids of <paramref name="text"/>.</summary>
    public static int[] Encode(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        return [.. Tokenizer.Value.EncodeToIds(text)];
    }

    /// <summary>The text of GPT-2 BPE tokens (for tests and logs).</summary>
    public static string Decode(ReadOnlySpan<int> tokens) => Tokenizer.Value.Decode(tokens.ToArray());

    /// <summary>
    /// Tokenises everything <paramref name="reader"/> yields, <paramref name="chunkChars"/> characters at a time, up
    /// to <paramref name="workers"/> chunks at once (each worker with its own tokenizer); the result equals
    /// <see cref="Encode"/> of the whole text.
    /// </summary>
    public static ushort[] EncodeStream(TextReader reader, int chunkChars, int workers = 1)
    {
        ArgumentNullException.ThrowIfNull(reader);
        ArgumentOutOfRangeException.ThrowIfLessThan(chunkChars, 2);
        ArgumentOutOfRangeException.ThrowIfLessThan(workers, 1);
        var tokenizers = new TiktokenTokenizer?[workers];
        tokenizers[0] = Tokenizer.Value;
        var tokens = new List<ushort>();
        var pending = new List<string>();
        var buffer = new char[chunkChars];
        int held = 0;
        while (true)
        {
            int read = reader.ReadBlock(buffer, held, buffer.Length - held);
            held += read;
            bool atEnd = read == 0 || held < buffer.Length;
            if (atEnd && held == 0)
            {
                break;
            }
            int cut = atEnd ? held : LastSafeCut(buffer.AsSpan(0, held));
            if (cut == 0)
            {
                // No cut point in a whole buffer (one giant "word"): grow it rather than change the tokens.
                Array.Resize(ref buffer, buffer.Length * 2);
                continue;
            }
            pending.Add(new string(buffer, 0, cut));
            buffer.AsSpan(cut, held - cut).CopyTo(buffer);
            held -= cut;
            if (pending.Count == workers)
            {
                EncodeChunks(pending, tokenizers, tokens);
            }
        }
        EncodeChunks(pending, tokenizers, tokens);
        return [.. tokens];
    }

    // Chunk i goes to worker i: the workers' tokenizers are separate instances, so no state is shared between threads.
    private static void EncodeChunks(List<string> chunks, TiktokenTokenizer?[] tokenizers, List<ushort> tokens)
    {
        var encoded = new IReadOnlyList<int>[chunks.Count];
        if (chunks.Count == 1)
        {
            encoded[0] = tokenizers[0]!.EncodeToIds(chunks[0]);
        }
        else
        {
            System.Threading.Tasks.Parallel.For(0, chunks.Count, i =>
            {
                tokenizers[i] ??= TiktokenTokenizer.CreateForModel("gpt2");
                encoded[i] = tokenizers[i]!.EncodeToIds(chunks[i]);
            });
        }
        foreach (IReadOnlyList<int> ids in encoded)
        {
            foreach (int id in ids)
            {
                tokens.Add((ushort)id);
            }
        }
        chunks.Clear();
    }

    /// <inheritdoc/>
    public void Read(long start, Span<int> destination)
    {
        if (start < 0 || start > Length - destination.Length)
        {
            throw new ArgumentOutOfRangeException(nameof(start), start,
                $"tokens {start} … {start + destination.Length - 1} are outside the text's {Length}");
        }
        ReadOnlySpan<ushort> source = _tokens.AsSpan((int)start, destination.Length);
        for (int i = 0; i < source.Length; i++)
        {
            destination[i] = source[i];
        }
    }

    /// <summary>Nothing to release: the tokens live in managed memory.</summary>
    public void Dispose()
    {
    }

    // GPT-2's pre-tokenizer never joins a letter or digit to a following space or newline (only a leading space joins
    // a word, and whitespace runs only hold whitespace), and it matches left to right with no look-behind; so cutting
    // right after a letter/digit that a space or newline follows splits the text exactly between two pre-tokens.
    private static int LastSafeCut(ReadOnlySpan<char> text)
    {
        for (int p = text.Length - 1; p >= 1; p--)
        {
            if ((text[p] == ' ' || text[p] == '\n') && char.IsAsciiLetterOrDigit(text[p - 1]))
            {
                return p;
            }
        }
        return 0;
    }
}
