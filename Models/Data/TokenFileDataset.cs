using System.Buffers.Binary;
using System.IO.MemoryMappedFiles;

namespace Hal.Models.Data;

/// <summary>
/// A token file, memory-mapped and never loaded whole. Two layouts, told apart by the first 4 bytes:
/// <list type="bullet">
/// <item>llm.c's: a header of 256 little-endian int32 — [0] magic 20240520, [1] version (1: tokens are uint16,
/// 2: tokens are uint32), [2] token count — then the tokens. The file size must be exactly 1 024 bytes plus the
/// count times the token width.</item>
/// <item>raw: little-endian uint16 tokens and nothing else. (Its first two tokens would read as the magic only if
/// they were 54 728 and 308, and 54 728 is not a GPT-2 token.)</item>
/// </list>
/// The vocabulary is GPT-2's (50 257) for uint16 tokens and LLaMA 3's (128 256) for uint32 tokens, the tokenizers
/// llm.c writes these versions for; a token at or above it is reported by <see cref="Read"/> as
/// <see cref="DatasetProblem.TokenOutOfRange"/>, so a bad file is caught before a token reaches an embedding.
/// </summary>
public sealed unsafe class TokenFileDataset : ITokenDataset
{
    /// <summary>llm.c's magic number, the first int32 of a headered token file.</summary>
    public const int HeaderMagic = 20240520;

    /// <summary>Header size: 256 int32.</summary>
    public const int HeaderBytes = 256 * sizeof(int);

    /// <summary>GPT-2's BPE vocabulary, for uint16 tokens.</summary>
    public const int Gpt2VocabSize = 50257;

    /// <summary>LLaMA 3's vocabulary, for uint32 tokens (llm.c version 2 files).</summary>
    public const int Llama3VocabSize = 128256;

    private readonly MemoryMappedFile _file;
    private readonly MemoryMappedViewAccessor _view;
    private readonly byte* _tokens;
    private readonly string _path;
    private readonly string _layout;
    private bool _disposed;

    /// <summary>Maps <paramref name="path"/> and checks its size and header.</summary>
    /// <exception cref="DatasetException">missing file, empty, odd byte count, bad header.</exception>
    public TokenFileDataset(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        _path = path;
        if (!File.Exists(path))
        {
            throw new DatasetException(DatasetProblem.MissingFile, path, "no such token file; check the path");
        }
        long fileBytes = new FileInfo(path).Length;
        if (fileBytes == 0)
        {
            throw new DatasetException(DatasetProblem.Empty, path, "the token file is empty; write tokens to it first");
        }
        (long dataOffset, TokenBytes, Length, _layout) = ReadLayout(path, fileBytes);
        VocabSize = TokenBytes == 2 ? Gpt2VocabSize : Llama3VocabSize;
        _file = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
        _view = _file.CreateViewAccessor(0, fileBytes, MemoryMappedFileAccess.Read);
        byte* basePointer = null;
        _view.SafeMemoryMappedViewHandle.AcquirePointer(ref basePointer);
        _tokens = basePointer + _view.PointerOffset + dataOffset;
    }

    /// <inheritdoc/>
    public long Length { get; }

    /// <inheritdoc/>
    public int VocabSize { get; }

    /// <summary>Bytes per stored token: 2 (uint16) or 4 (uint32).</summary>
    public int TokenBytes { get; }

    /// <summary>Null: real data has no known entropy rate.</summary>
    public double? EntropyRateNats => null;

    /// <inheritdoc/>
    public string Description => $"token file {_path} ({_layout}): {Length} tokens, vocabulary {VocabSize}";

    /// <inheritdoc/>
    public void Read(long start, Span<int> destination)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (start < 0 || start > Length - destination.Length)
        {
            throw new ArgumentOutOfRangeException(nameof(start), start,
                $"tokens {start} … {start + destination.Length - 1} are outside the file's {Length}");
        }
        for (int i = 0; i < destination.Length; i++)
        {
            long index = start + i;
            uint token = TokenBytes == 2
                ? BinaryPrimitives.ReadUInt16LittleEndian(new ReadOnlySpan<byte>(_tokens + (index * 2), 2))
                : BinaryPrimitives.ReadUInt32LittleEndian(new ReadOnlySpan<byte>(_tokens + (index * 4), 4));
            if (token >= (uint)VocabSize)
            {
                throw new DatasetException(DatasetProblem.TokenOutOfRange, _path,
                    $"token {index} is {token}, not below the vocabulary {VocabSize}; the file was written for another tokenizer or is corrupt");
            }
            destination[i] = (int)token;
        }
    }

    /// <summary>Unmaps the file.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }
        _disposed = true;
        _view.SafeMemoryMappedViewHandle.ReleasePointer();
        _view.Dispose();
        _file.Dispose();
    }

    private static (long DataOffset, int TokenBytes, long Length, string Layout) ReadLayout(string path, long fileBytes)
    {
        Span<byte> header = stackalloc byte[HeaderBytes];
        int headerRead;
        using (var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read))
        {
            headerRead = stream.ReadAtLeast(header, HeaderBytes, throwOnEndOfStream: false);
        }
        bool hasMagic = headerRead >= 4 && BinaryPrimitives.ReadInt32LittleEndian(header) == HeaderMagic;
        if (!hasMagic)
        {
            if (fileBytes % 2 != 0)
            {
                throw new DatasetException(DatasetProblem.OddByteCount, path,
                    $"{fileBytes} bytes is not a whole number of uint16 tokens and there is no llm.c header (magic {HeaderMagic}); the file is truncated or not a token file");
            }
            return (0, 2, fileBytes / 2, "raw uint16");
        }
        if (headerRead < HeaderBytes)
        {
            throw new DatasetException(DatasetProblem.BadHeader, path,
                $"the file starts with llm.c's magic {HeaderMagic} but is {fileBytes} bytes, shorter than its {HeaderBytes}-byte header; rewrite it");
        }
        int version = BinaryPrimitives.ReadInt32LittleEndian(header[4..]);
        int tokenBytes = version switch
        {
            1 => 2,
            2 => 4,
            _ => throw new DatasetException(DatasetProblem.BadHeader, path,
                $"llm.c header version {version} is unknown (1: uint16 tokens, 2: uint32 tokens); rewrite the file with a supported version"),
        };
        long count = BinaryPrimitives.ReadInt32LittleEndian(header[8..]);
        long expectedBytes = HeaderBytes + (count * tokenBytes);
        if (count <= 0 || expectedBytes != fileBytes)
        {
            throw new DatasetException(count == 0 ? DatasetProblem.Empty : DatasetProblem.BadHeader, path,
                $"the llm.c header says {count} tokens of {tokenBytes} bytes ({expectedBytes} bytes with the header) but the file is {fileBytes} bytes; the file is truncated or its header is wrong");
        }
        return (HeaderBytes, tokenBytes, count, $"llm.c v{version}, uint{tokenBytes * 8}");
    }
}
