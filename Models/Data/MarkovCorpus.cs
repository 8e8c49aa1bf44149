using Hal.Numerics;

namespace Hal.Models.Data;

/// <summary>
/// A built-in synthetic corpus: a seeded first-order Markov chain over <see cref="VocabSize"/> tokens whose
/// entropy rate is known exactly, so "the model learned" is a number (the loss approaches <see cref="EntropyRateNats"/>)
/// and no download is needed. Each token has <see cref="Successors"/> possible next tokens with random weights.
/// Every random draw comes from the Philox stream, so a seed gives the same corpus everywhere.
/// </summary>
public sealed class MarkovCorpus
{
    private readonly double[,] _transition;
    private readonly double[] _stationary;
    private readonly ulong _seed;
    private ulong _drawIndex;
    private int _state;

    /// <param name="vocabSize">number of tokens V (≥ 2).</param>
    /// <param name="successors">possible next tokens per token (1..V).</param>
    /// <param name="seed">seed of the chain's structure and of its samples.</param>
    public MarkovCorpus(int vocabSize, int successors, ulong seed)
    {
        if (vocabSize < 2)
        {
            throw new ArgumentOutOfRangeException(nameof(vocabSize), vocabSize, "the corpus needs at least 2 tokens");
        }
        if (successors < 1 || successors > vocabSize)
        {
            throw new ArgumentOutOfRangeException(nameof(successors), successors, $"successors must be in 1..{vocabSize}");
        }
        VocabSize = vocabSize;
        Successors = successors;
        _seed = seed;
        _transition = BuildTransitions(vocabSize, successors, seed);
        _stationary = Stationary(_transition);
        EntropyRateNats = EntropyRate(_transition, _stationary);
        _state = 0;
    }

    public int VocabSize { get; }

    public int Successors { get; }

    /// <summary>H = −Σᵢ πᵢ Σⱼ Pᵢⱼ ln Pᵢⱼ: the lowest expected cross-entropy any next-token predictor can reach, in nats.</summary>
    public double EntropyRateNats { get; }

    /// <summary>P(next = j | current = i).</summary>
    public double TransitionProbability(int from, int to) => _transition[from, to];

    /// <summary>Samples <paramref name="count"/> consecutive (input, target) pairs: target[n] follows input[n] in the chain.</summary>
    public (long[] Inputs, long[] Targets) NextBatch(int count)
    {
        var inputs = new long[count];
        var targets = new long[count];
        for (int n = 0; n < count; n++)
        {
            inputs[n] = _state;
            _state = Step(_state);
            targets[n] = _state;
        }
        return (inputs, targets);
    }

    private int Step(int from)
    {
        // A second seed stream (seed + 1) for samples keeps the chain's structure independent of how much was sampled.
        double u = Philox.ToUnit(Philox.Raw(_seed + 1, _drawIndex++));
        double acc = 0;
        for (int j = 0; j < VocabSize; j++)
        {
            acc += _transition[from, j];
            if (u < acc)
            {
                return j;
            }
        }
        // u is within rounding of 1: the last token with any mass.
        for (int j = VocabSize - 1; j >= 0; j--)
        {
            if (_transition[from, j] > 0)
            {
                return j;
            }
        }
        return from;
    }

    private static double[,] BuildTransitions(int v, int k, ulong seed)
    {
        var p = new double[v, v];
        ulong draw = 0;
        for (int i = 0; i < v; i++)
        {
            // Successor j of i is (i + 1 + offset) mod V for k distinct offsets: every token is reachable, the chain is irreducible.
            var chosen = new HashSet<int> { (i + 1) % v };
            while (chosen.Count < k)
            {
                chosen.Add((int)(Philox.Raw(seed, draw++) % (uint)v));
            }
            double total = 0;
            foreach (int j in chosen)
            {
                // Weights in [0.1, 1.1): some successors likelier than others, none negligible.
                double w = 0.1 + Philox.ToUnit(Philox.Raw(seed, draw++));
                p[i, j] = w;
                total += w;
            }
            foreach (int j in chosen)
            {
                p[i, j] /= total;
            }
        }
        return p;
    }

    private static double[] Stationary(double[,] p)
    {
        int v = p.GetLength(0);
        var pi = new double[v];
        Array.Fill(pi, 1.0 / v);
        var next = new double[v];
        // Power iteration on the lazy chain (P + I)/2, which converges even for periodic chains.
        for (int iter = 0; iter < 100_000; iter++)
        {
            Array.Clear(next);
            for (int i = 0; i < v; i++)
            {
                next[i] += 0.5 * pi[i];
                for (int j = 0; j < v; j++)
                {
                    next[j] += 0.5 * pi[i] * p[i, j];
                }
            }
            double diff = 0;
            for (int i = 0; i < v; i++)
            {
                diff += Math.Abs(next[i] - pi[i]);
            }
            (pi, next) = (next, pi);
            if (diff < 1e-15)
            {
                break;
            }
        }
        return pi;
    }

    private static double EntropyRate(double[,] p, double[] pi)
    {
        int v = pi.Length;
        double h = 0;
        for (int i = 0; i < v; i++)
        {
            for (int j = 0; j < v; j++)
            {
                if (p[i, j] > 0)
                {
                    h -= pi[i] * p[i, j] * Math.Log(p[i, j]);
                }
            }
        }
        return h;
    }
}
