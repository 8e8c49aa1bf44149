namespace Hal.Models.Data;

/// <summary>
/// A finite sequence of tokens that <see cref="BatchLoader"/> cuts training windows from. Implementations are
/// read-only after construction, so <see cref="Read"/> may be called from any thread.
/// </summary>
public interface ITokenDataset : IDisposable
{
    /// <summary>Number of tokens.</summary>
    long Length { get; }

    /// <summary>The tokenizer's vocabulary (50257 for GPT-2 BPE), or the synthetic corpus's; every token is below it.</summary>
    int VocabSize { get; }

    /// <summary>The known entropy rate in nats per token (synthetic corpora), or null for real text.</summary>
    double? EntropyRateNats { get; }

    /// <summary>One line for logs: what, where, how many tokens.</summary>
    string Description { get; }

    /// <summary>Copies tokens <paramref name="start"/> … start + destination.Length − 1 into <paramref name="destination"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException">the range is not inside 0 … <see cref="Length"/>.</exception>
    /// <exception cref="DatasetException">a stored token is not below <see cref="VocabSize"/>.</exception>
    void Read(long start, Span<int> destination);
}

/// <summary>What was wrong with a data source; <see cref="DatasetException.Problem"/> carries it.</summary>
public enum DatasetProblem
{
    /// <summary>The path does not exist.</summary>
    MissingFile,

    /// <summary>The file holds no tokens (or text that tokenises to none).</summary>
    Empty,

    /// <summary>A raw uint16 token file whose size is not a whole number of tokens.</summary>
    OddByteCount,

    /// <summary>An llm.c token file whose header has an unknown version, a bad count, or a size that disagrees with it.</summary>
    BadHeader,

    /// <summary>A stored token is not below the vocabulary.</summary>
    TokenOutOfRange,

    /// <summary>The data has too few tokens for the requested window.</summary>
    TooShort,
}

/// <summary>A data source cannot be used; the message says which file, what is wrong and what to do.</summary>
public sealed class DatasetException(DatasetProblem problem, string path, string message)
    : HalException($"{path}: {message}")
{
    /// <summary>What kind of problem it is.</summary>
    public DatasetProblem Problem { get; } = problem;

    /// <summary>The file (or spec) it concerns.</summary>
    public string DataPath { get; } = path;
}
