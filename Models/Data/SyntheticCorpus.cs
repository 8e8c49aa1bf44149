using Hal.Numerics;

namespace Hal.Models.Data;

/// <summary>
/// A seeded random Markov chain of order <see cref="Order"/> over <see cref="VocabSize"/> tokens, sampled to
/// <see cref="Length"/> tokens in memory, whose entropy rate is known exactly: "the model learned" is a number (the
/// loss approaches <see cref="EntropyRateNats"/>) and no download is needed.
/// <para>
/// Structure: a context is the last <see cref="Order"/> tokens (t₁ oldest … tₖ newest). Each context has
/// <see cref="Successors"/> possible next tokens with random weights in [0.1, 1.1): always t₁ and (t₁ + 1) mod V, the
/// rest drawn at random. Those two fixed successors make the chain irreducible (emitting t₁ rotates the context,
/// emitting t₁ + 1 rotates and increments, so every context reaches every other), hence its stationary distribution
/// is unique and a long sample's loss converges to the entropy rate whatever the start. They also tie the next token
/// to the one <see cref="Order"/> positions back, which a model can only see through attention.
/// </para>
/// <para>
/// Defaults (V = 32, order 2, 4 successors): the uniform loss ln 32 ≈ 3.47 nats sits about 2.2 nats above the entropy
/// rate (1.28 nats for seed 1337), a gap a loss curve shows plainly; order 2 means the previous token alone does not determine the
/// distribution, so a bigram model stalls above the entropy and the model has to attend; 32² = 1 024 contexts with 4
/// successors each are few enough that gpt-tiny sees every context ~150 times in 300 steps of 8×64 tokens.
/// </para>
/// <para>
/// Randomness: every draw is a 32-bit word of the <see cref="Philox"/> stream keyed by the seed (element g is block
/// g / 4, lane g mod 4): the structure from elements 0, 1, 2 …, the first context from elements 2⁶¹ …, the draw for
/// token i ≥ order from element 2⁶² + i − order. One seed gives the same corpus on every machine.
/// </para>
/// </summary>
public sealed class SyntheticCorpus : ITokenDataset
{
    /// <summary>Most contexts (V^order) the chain may have: its tables and the power iteration stay in memory.</summary>
    public const long MaxContexts = 1L << 22;

    private const ulong SampleCounterBase = 1UL << 62;

    // Per context c, entries c·S … c·S + S − 1: the successor token and its probability.
    private readonly int[] _nextToken;
    private readonly double[] _nextProbability;
    private readonly double[] _stationary;
    private readonly int[] _tokens;
    private readonly int _contextCount;
    private readonly ulong _seed;

    /// <param name="vocabSize">tokens V (2 … 65 536).</param>
    /// <param name="order">tokens k the next token depends on (≥ 1; V^k ≤ <see cref="MaxContexts"/>).</param>
    /// <param name="successors">possible next tokens per context (1 … V; 1 makes a deterministic chain).</param>
    /// <param name="length">tokens to sample (order + 1 … <see cref="Array.MaxLength"/>).</param>
    /// <param name="seed">key of the chain's structure and of its sample.</param>
    /// <exception cref="ArgumentOutOfRangeException">a parameter is outside its range.</exception>
    public SyntheticCorpus(int vocabSize = 32, int order = 2, int successors = 4, long length = 1 << 20, ulong seed = 1337)
    {
        if (vocabSize < 2 || vocabSize > 65536)
        {
            throw new ArgumentOutOfRangeException(nameof(vocabSize), vocabSize, "the corpus needs 2 … 65 536 tokens");
        }
        if (order < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(order), order, "the order must be at least 1");
        }
        double contexts = Math.Pow(vocabSize, order);
        if (contexts > MaxContexts)
        {
            throw new ArgumentOutOfRangeException(nameof(order), order,
                $"{vocabSize}^{order} contexts exceed {MaxContexts}; use a smaller vocabulary or order");
        }
        if (successors < 1 || successors > vocabSize)
        {
            throw new ArgumentOutOfRangeException(nameof(successors), successors, $"successors must be in 1 … {vocabSize}");
        }
        if (length <= order || length > Array.MaxLength)
        {
            throw new ArgumentOutOfRangeException(nameof(length), length, $"length must be in {order + 1} … {Array.MaxLength}");
        }
        VocabSize = vocabSize;
        Order = order;
        Successors = successors;
        Length = length;
        _seed = seed;
        _contextCount = (int)contexts;
        (_nextToken, _nextProbability) = BuildTransitions();
        _stationary = StationaryDistribution();
        EntropyRateNats = EntropyRate();
        _tokens = Sample();
    }

    /// <inheritdoc/>
    public long Length { get; }

    /// <inheritdoc/>
    public int VocabSize { get; }

    /// <summary>Tokens the next token depends on.</summary>
    public int Order { get; }

    /// <summary>Possible next tokens per context.</summary>
    public int Successors { get; }

    /// <summary>H = Σ_context π(context) · H(next | context) in nats: the lowest expected loss any predictor can reach.</summary>
    public double EntropyRateNats { get; }

    double? ITokenDataset.EntropyRateNats => EntropyRateNats;

    /// <inheritdoc/>
    public string Description =>
        $"synthetic Markov corpus: V={VocabSize}, order {Order}, {Successors} successors, seed {_seed}, {Length} tokens, " +
        $"entropy {EntropyRateNats:F4} nats/token (uniform {Math.Log(VocabSize):F4})";

    /// <summary>P(next | context), the context being the last <see cref="Order"/> tokens, oldest first.</summary>
    public double Probability(ReadOnlySpan<int> context, int next)
    {
        int c = ContextIndex(context);
        for (int s = 0; s < Successors; s++)
        {
            if (_nextToken[(c * Successors) + s] == next)
            {
                return _nextProbability[(c * Successors) + s];
            }
        }
        return 0;
    }

    /// <summary>The stationary probability π(context) of a context (last <see cref="Order"/> tokens, oldest first).</summary>
    public double StationaryProbability(ReadOnlySpan<int> context) => _stationary[ContextIndex(context)];

    /// <inheritdoc/>
    public void Read(long start, Span<int> destination)
    {
        if (start < 0 || start > Length - destination.Length)
        {
            throw new ArgumentOutOfRangeException(nameof(start), start,
                $"tokens {start} … {start + destination.Length - 1} are outside the corpus's {Length}");
        }
        _tokens.AsSpan((int)start, destination.Length).CopyTo(destination);
    }

    /// <summary>Nothing to release: the corpus lives in managed memory.</summary>
    public void Dispose()
    {
    }

    private int ContextIndex(ReadOnlySpan<int> context)
    {
        if (context.Length != Order)
        {
            throw new ArgumentException($"a context is {Order} tokens, got {context.Length}", nameof(context));
        }
        int c = 0;
        foreach (int t in context)
        {
            if ((uint)t >= (uint)VocabSize)
            {
                throw new ArgumentOutOfRangeException(nameof(context), t, $"tokens are in 0 … {VocabSize - 1}");
            }
            c = (c * VocabSize) + t;
        }
        return c;
    }

    // After emitting `next` from context c the context drops its oldest token and appends `next`.
    private int Advance(int context, int next) => ((context % (_contextCount / VocabSize)) * VocabSize) + next;

    private (int[] Tokens, double[] Probabilities) BuildTransitions()
    {
        int v = VocabSize, k = Successors;
        var tokens = new int[_contextCount * k];
        var probabilities = new double[_contextCount * k];
        int oldestDivisor = _contextCount / v;
        ulong draw = 0;
        for (int c = 0; c < _contextCount; c++)
        {
            int oldest = c / oldestDivisor;
            Span<int> chosen = tokens.AsSpan(c * k, k);
            int count = 0;
            chosen[count++] = (oldest + 1) % v;
            if (k >= 2)
            {
                chosen[count++] = oldest;
            }
            while (count < k)
            {
                int candidate = (int)(Philox.Raw(_seed, draw++) % (uint)v);
                if (!chosen[..count].Contains(candidate))
                {
                    chosen[count++] = candidate;
                }
            }
            double total = 0;
            for (int s = 0; s < k; s++)
            {
                double weight = 0.1 + (Philox.Raw(_seed, draw++) * (1.0 / 4294967296.0));
                probabilities[(c * k) + s] = weight;
                total += weight;
            }
            for (int s = 0; s < k; s++)
            {
                probabilities[(c * k) + s] /= total;
            }
        }
        return (tokens, probabilities);
    }

    private double[] StationaryDistribution()
    {
        var pi = new double[_contextCount];
        var next = new double[_contextCount];
        Array.Fill(pi, 1.0 / _contextCount);
        // Power iteration on the lazy chain (P + I)/2: same stationary distribution, and it converges even where the
        // chain is periodic.
        for (int iteration = 0; iteration < 1_000_000; iteration++)
        {
            for (int c = 0; c < _contextCount; c++)
            {
                next[c] = 0.5 * pi[c];
            }
            for (int c = 0; c < _contextCount; c++)
            {
                double half = 0.5 * pi[c];
                for (int s = 0; s < Successors; s++)
                {
                    int e = (c * Successors) + s;
                    next[Advance(c, _nextToken[e])] += half * _nextProbability[e];
                }
            }
            double change = 0;
            for (int c = 0; c < _contextCount; c++)
            {
                change += Math.Abs(next[c] - pi[c]);
            }
            (pi, next) = (next, pi);
            if (change < 1e-14)
            {
                break;
            }
        }
        return pi;
    }

    private double EntropyRate()
    {
        double h = 0;
        for (int c = 0; c < _contextCount; c++)
        {
            double conditional = 0;
            for (int s = 0; s < Successors; s++)
            {
                double p = _nextProbability[(c * Successors) + s];
                conditional -= p * Math.Log(p);
            }
            h += _stationary[c] * conditional;
        }
        return h;
    }

    private int[] Sample()
    {
        var tokens = new int[Length];
        // The first context from elements 2⁶¹ …, transition draws from elements 2⁶² … (structure uses 0 …).
        ulong counter = SampleCounterBase / 2;
        int context = 0;
        for (int i = 0; i < Order; i++)
        {
            tokens[i] = (int)(Philox.Raw(_seed, counter++) % (uint)VocabSize);
            context = (context * VocabSize) + tokens[i];
        }
        // One Philox block gives four 32-bit words: the draw for token i is word (i − order) of the sample stream.
        (uint X0, uint X1, uint X2, uint X3) block = default;
        for (long i = Order; i < tokens.Length; i++)
        {
            long draw = i - Order;
            if (draw % 4 == 0)
            {
                block = Philox.Block(_seed, (SampleCounterBase / 4) + (ulong)(draw / 4));
            }
            uint word = (draw % 4) switch { 0 => block.X0, 1 => block.X1, 2 => block.X2, _ => block.X3 };
            double u = word * (1.0 / 4294967296.0);
            int baseEntry = context * Successors;
            int next = _nextToken[baseEntry + Successors - 1];
            double cumulative = 0;
            for (int s = 0; s < Successors - 1; s++)
            {
                cumulative += _nextProbability[baseEntry + s];
                if (u < cumulative)
                {
                    next = _nextToken[baseEntry + s];
                    break;
                }
            }
            tokens[i] = next;
            context = Advance(context, next);
        }
        return tokens;
    }
}
