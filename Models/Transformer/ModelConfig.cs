namespace Hal.Models.Transformer;

/// <summary>The two architectures: GPT-2 (LayerNorm, learned positions, GELU MLP, tied head) and LLaMA (RMSNorm, rotary, SwiGLU, grouped-query attention).</summary>
public enum ModelFamily
{
    Gpt2,
    Llama,
}

/// <summary>
/// The shape of a transformer language model. Legend used across Models: L layers, H query heads, Hkv key/value
/// heads, C channels, D = C/H head size, F MLP hidden size, V vocabulary, T context length.
/// </summary>
public sealed record ModelConfig
{
    /// <summary>The name it was built from (<see cref="Named"/>) or <c>custom</c>.</summary>
    public string Name { get; init; } = "custom";

    public ModelFamily Family { get; init; }

    /// <summary>L.</summary>
    public int Layers { get; init; }

    /// <summary>H.</summary>
    public int Heads { get; init; }

    /// <summary>Hkv; equals H for GPT-2; divides H.</summary>
    public int KvHeads { get; init; }

    /// <summary>C.</summary>
    public int Channels { get; init; }

    /// <summary>F: 4C for GPT-2; LLaMA's intermediate size.</summary>
    public int Hidden { get; init; }

    /// <summary>V.</summary>
    public int VocabSize { get; init; }

    /// <summary>T: the longest sequence (GPT-2's position table has T rows).</summary>
    public int ContextLength { get; init; }

    /// <summary>Epsilon of LayerNorm / RMSNorm.</summary>
    public double NormEps { get; init; } = 1e-5;

    /// <summary>Base of the rotary frequencies (LLaMA).</summary>
    public double RopeTheta { get; init; } = 10000;

    /// <summary>Whether the LM head reuses the token embedding (GPT-2 always; LLaMA per config).</summary>
    public bool TieEmbeddings { get; init; }

    /// <summary>D = C/H.</summary>
    public int HeadSize => Channels / Heads;

    /// <summary>The names <see cref="Named"/> knows.</summary>
    public static IReadOnlyList<string> Names { get; } = ["gpt-tiny", "gpt2-small", "gpt2-124m", "llama-tiny", "llama-small", "gpt-tiny-long", "gpt-mini"];

    /// <summary>
    /// A named configuration. The tiny models take the vocabulary of the data they train on
    /// (<paramref name="vocabSize"/>); the others have their tokenizer's vocabulary and ignore it.
    /// </summary>
    /// <exception cref="ArgumentException">an unknown name (the message lists the known ones).</exception>
    public static ModelConfig Named(string name, int vocabSize = 50257)
    {
        ArgumentNullException.ThrowIfNull(name);
        return name switch
        {
            "gpt-tiny" => Gpt2(name, layers: 2, heads: 4, channels: 128, vocabSize, contextLength: 64),
            // gpt-tiny with a 4096-token context: small enough to train long sequences on a CPU, for sequence parallelism.
            "gpt-tiny-long" => Gpt2(name, layers: 2, heads: 4, channels: 128, vocabSize, contextLength: 4096),
            // The smallest GPT every layout of the parallelism tests splits: 8 blocks (pp 4 × 2 chunks), 8 heads (tp 8,
            // a 2×2 grid's columns, Ulysses over tp 2 × sp 2), C 256 (a 2×2×2 cube); for benchmarking layouts on a CPU.
            "gpt-mini" => Gpt2(name, layers: 8, heads: 8, channels: 256, vocabSize, contextLength: 256),
            "gpt2-small" => Gpt2(name, layers: 6, heads: 6, channels: 384, 50257, contextLength: 256),
            "gpt2-124m" => Gpt2(name, layers: 12, heads: 12, channels: 768, 50257, contextLength: 1024),
            "llama-tiny" => Llama(name, layers: 2, heads: 4, kvHeads: 2, channels: 128, vocabSize, contextLength: 64),
            "llama-small" => Llama(name, layers: 6, heads: 6, kvHeads: 2, channels: 384, 32000, contextLength: 256),
            _ => throw new ArgumentException($"unknown model '{name}'; known models: {string.Join(", ", Names)} (or --init DIR for a Hugging Face directory)", nameof(name)),
        };
    }

    /// <summary>A GPT-2 shape: F = 4C, tied head, LayerNorm eps 1e-5.</summary>
    public static ModelConfig Gpt2(string name, int layers, int heads, int channels, int vocabSize, int contextLength) => new()
    {
        Name = name,
        Family = ModelFamily.Gpt2,
        Layers = layers,
        Heads = heads,
        KvHeads = heads,
        Channels = channels,
        Hidden = 4 * channels,
        VocabSize = vocabSize,
        ContextLength = contextLength,
        NormEps = 1e-5,
        TieEmbeddings = true,
    };

    /// <summary>A LLaMA shape: F = 8C/3 rounded up to a multiple of 64, untied head, RMSNorm eps 1e-5, rotary base 10 000.</summary>
    public static ModelConfig Llama(string name, int layers, int heads, int kvHeads, int channels, int vocabSize, int contextLength) => new()
    {
        Name = name,
        Family = ModelFamily.Llama,
        Layers = layers,
        Heads = heads,
        KvHeads = kvHeads,
        Channels = channels,
        Hidden = (8 * channels / 3 + 63) / 64 * 64,
        VocabSize = vocabSize,
        ContextLength = contextLength,
        NormEps = 1e-5,
        RopeTheta = 10000,
        TieEmbeddings = false,
    };

    /// <summary>Number of parameters (tied weights counted once), from the shapes alone.</summary>
    public long ParameterCount
    {
        get
        {
            long c = Channels, v = VocabSize, f = Hidden, kv = (long)KvHeads * HeadSize;
            if (Family == ModelFamily.Gpt2)
            {
                long block = (2 * c) + (c * 3 * c) + (3 * c) + (c * c) + c + (2 * c) + (c * f) + f + (f * c) + c;
                return (v * c) + ((long)ContextLength * c) + (Layers * block) + (2 * c);
            }
            long llamaBlock = c + (c * c) + (2 * c * kv) + (c * c) + c + (3 * c * f);
            return (v * c) + (Layers * llamaBlock) + c + (TieEmbeddings ? 0 : v * c);
        }
    }

    /// <summary>Checks the shape is buildable.</summary>
    /// <exception cref="ArgumentException">what is wrong and what to change.</exception>
    public void Validate()
    {
        if (Layers < 1 || Heads < 1 || Channels < 1 || VocabSize < 2 || ContextLength < 1 || Hidden < 1)
        {
            throw new ArgumentException($"model '{Name}': layers, heads, channels, hidden, vocabulary (≥ 2) and context must be positive");
        }
        if (Channels % Heads != 0)
        {
            throw new ArgumentException($"model '{Name}': channels {Channels} are not divisible by heads {Heads}");
        }
        if (KvHeads < 1 || Heads % KvHeads != 0)
        {
            throw new ArgumentException($"model '{Name}': heads {Heads} are not a multiple of key/value heads {KvHeads}");
        }
        if (Family == ModelFamily.Llama && HeadSize % 2 != 0)
        {
            throw new ArgumentException($"model '{Name}': rotary embedding needs an even head size, not {HeadSize}");
        }
    }
}
