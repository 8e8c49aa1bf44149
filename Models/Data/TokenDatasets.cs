namespace Hal.Models.Data;

/// <summary>Opens the data source a <c>--data</c> spec names.</summary>
public static class TokenDatasets
{
    /// <summary>The spec that selects <see cref="SyntheticCorpus"/>.</summary>
    public const string SyntheticSpec = "synthetic";

    /// <summary>
    /// <c>"synthetic"</c> → a <see cref="SyntheticCorpus"/> with its defaults, this <paramref name="seed"/> and, when given,
    /// <paramref name="syntheticVocab"/> tokens. Otherwise a path: a file ending in <c>.bin</c> is a token file
    /// (<see cref="TokenFileDataset"/>: raw little-endian uint16, or llm.c's 256×int32 header layout told apart by its
    /// magic number 20240520, version 1 uint16 / version 2 uint32); any other file is UTF-8 text tokenised with GPT-2's
    /// BPE (<see cref="BpeTextDataset"/>).
    /// </summary>
    /// <exception cref="DatasetException">missing file, empty, odd byte count, bad header (see <see cref="DatasetProblem"/>).</exception>
    public static ITokenDataset Open(string spec, ulong seed, int? syntheticVocab = null)
    {
        ArgumentNullException.ThrowIfNull(spec);
        if (string.Equals(spec, SyntheticSpec, StringComparison.OrdinalIgnoreCase))
        {
            return syntheticVocab is int vocab
                ? new SyntheticCorpus(vocabSize: vocab, seed: seed)
                : new SyntheticCorpus(seed: seed);
        }
        if (!File.Exists(spec))
        {
            throw new DatasetException(DatasetProblem.MissingFile, spec,
                $"no such file; pass '{SyntheticSpec}', a UTF-8 text file, or a .bin token file");
        }
        return spec.EndsWith(".bin", StringComparison.OrdinalIgnoreCase)
            ? new TokenFileDataset(spec)
            : new BpeTextDataset(spec);
    }
}
