namespace Hal.Parallel.Pipeline;

/// <summary>
/// Contiguous runs of layers for the p·v model chunks of a pipeline: p stages, v virtual chunks per stage, model chunk
/// c on stage c mod p (so with v = 1 chunk s is stage s). Layers are assigned in order, every chunk gets at least one,
/// and the split minimises the largest chunk cost — with v = 1 that is the largest stage cost; with v &gt; 1 each tick
/// of the interleaved schedule runs one chunk, so the chunk is the unit that has to be balanced. Among the splits
/// that reach that optimum, the one with the least sum of squared chunk costs is taken, so the spare capacity is spread
/// out instead of piled on the last chunks.
/// </summary>
public sealed class StagePartition
{
    private readonly int[] _starts;
    private readonly double[] _chunkCosts;

    private StagePartition(int stages, int chunksPerStage, int[] starts, double[] chunkCosts)
    {
        Stages = stages;
        ChunksPerStage = chunksPerStage;
        _starts = starts;
        _chunkCosts = chunkCosts;
    }

    /// <summary>Number of pipeline stages p.</summary>
    public int Stages { get; }

    /// <summary>Virtual chunks per stage v (1 without interleaving).</summary>
    public int ChunksPerStage { get; }

    /// <summary>Number of model chunks, p·v.</summary>
    public int ChunkCount => Stages * ChunksPerStage;

    /// <summary>Number of layers split.</summary>
    public int LayerCount => _starts[^1];

    /// <summary>Chunk boundaries: model chunk c holds layers [Starts[c], Starts[c+1]); length p·v + 1.</summary>
    public IReadOnlyList<int> Starts => _starts;

    /// <summary>The largest chunk cost, the quantity the split minimises.</summary>
    public double MaxChunkCost => _chunkCosts.Max();

    /// <summary>
    /// The split of <paramref name="layerCosts"/> (one non-negative cost per layer: parameter count, measured time)
    /// over <paramref name="stages"/> stages of <paramref name="chunksPerStage"/> chunks each. Exact: a dynamic program
    /// over (chunk, first layer), O(p·v·L²). <paramref name="firstChunkExtra"/> and <paramref name="lastChunkExtra"/>
    /// are fixed costs the first and last model chunk carry besides their layers (a transformer's embeddings, its LM
    /// head and loss), so the layers move away from them.
    /// </summary>
    /// <exception cref="ArgumentNullException"><paramref name="layerCosts"/> is null.</exception>
    /// <exception cref="ArgumentOutOfRangeException">stages or chunksPerStage below 1, or a cost negative, NaN or infinite.</exception>
    /// <exception cref="PipelineException">Fewer layers than model chunks.</exception>
    public static StagePartition Balance(IReadOnlyList<double> layerCosts, int stages, int chunksPerStage = 1, double firstChunkExtra = 0, double lastChunkExtra = 0)
    {
        ArgumentNullException.ThrowIfNull(layerCosts);
        ArgumentOutOfRangeException.ThrowIfLessThan(stages, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(chunksPerStage, 1);
        int layers = layerCosts.Count;
        int chunks = stages * chunksPerStage;
        if (layers < chunks)
        {
            throw new PipelineException(
                $"{layers} layers cannot fill {stages} stages × {chunksPerStage} chunks = {chunks} model chunks (each needs at least one layer); " +
                "use fewer stages or fewer virtual chunks per stage");
        }
        foreach (double extra in new[] { firstChunkExtra, lastChunkExtra })
        {
            if (!double.IsFinite(extra) || extra < 0)
            {
                throw new ArgumentOutOfRangeException(nameof(firstChunkExtra), extra, $"a chunk's extra cost is {extra}; costs must be finite and non-negative");
            }
        }
        var prefix = new double[layers + 1];
        for (int i = 0; i < layers; i++)
        {
            double cost = layerCosts[i];
            if (!double.IsFinite(cost) || cost < 0)
            {
                throw new ArgumentOutOfRangeException(nameof(layerCosts), cost, $"layer {i} has cost {cost}; costs must be finite and non-negative");
            }
            prefix[i + 1] = prefix[i] + cost;
        }

        // Pass 1: best[k, i] = least possible largest chunk cost when layers [i, L) are split into k chunks.
        double Cost(int from, int to) => prefix[to] - prefix[from] + (from == 0 ? firstChunkExtra : 0) + (to == layers ? lastChunkExtra : 0);
        var best = new double[chunks + 1, layers + 1];
        for (int i = 0; i <= layers; i++)
        {
            best[1, i] = i < layers ? Cost(i, layers) : double.PositiveInfinity;
        }
        for (int k = 2; k <= chunks; k++)
        {
            for (int i = 0; i <= layers; i++)
            {
                double b = double.PositiveInfinity;
                // The first of the k chunks is [i, j); the remaining k − 1 chunks need at least k − 1 layers.
                for (int j = i + 1; j <= layers - (k - 1); j++)
                {
                    b = Math.Min(b, Math.Max(Cost(i, j), best[k - 1, j]));
                }
                best[k, i] = b;
            }
        }
        double bound = best[chunks, 0];

        // Pass 2: among splits whose every chunk costs at most the optimum, the least sum of squares. Chunk costs are
        // compared with the same prefix differences as in pass 1, so the optimum itself always passes the test.
        var squares = new double[chunks + 1, layers + 1];
        var next = new int[chunks + 1, layers + 1];
        for (int i = 0; i <= layers; i++)
        {
            squares[1, i] = i < layers && Cost(i, layers) <= bound ? Cost(i, layers) * Cost(i, layers) : double.PositiveInfinity;
            next[1, i] = layers;
        }
        for (int k = 2; k <= chunks; k++)
        {
            for (int i = 0; i <= layers; i++)
            {
                double s = double.PositiveInfinity;
                int arg = -1;
                for (int j = i + 1; j <= layers - (k - 1); j++)
                {
                    double c = Cost(i, j);
                    if (c <= bound && (c * c) + squares[k - 1, j] < s)
                    {
                        s = (c * c) + squares[k - 1, j];
                        arg = j;
                    }
                }
                squares[k, i] = s;
                next[k, i] = arg;
            }
        }

        var starts = new int[chunks + 1];
        var chunkCosts = new double[chunks];
        int at = 0;
        for (int c = 0; c < chunks; c++)
        {
            int end = next[chunks - c, at];
            starts[c] = at;
            chunkCosts[c] = Cost(at, end);
            at = end;
        }
        starts[chunks] = layers;
        return new StagePartition(stages, chunksPerStage, starts, chunkCosts);
    }

    /// <summary>The pipeline stage that runs model chunk <paramref name="modelChunk"/>: chunk mod p.</summary>
    public int StageOf(int modelChunk) => CheckChunk(modelChunk) % Stages;

    /// <summary>The model chunk that is local chunk <paramref name="localChunk"/> of <paramref name="stage"/>: localChunk·p + stage.</summary>
    public int ModelChunk(int stage, int localChunk)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(stage);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(stage, Stages);
        ArgumentOutOfRangeException.ThrowIfNegative(localChunk);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(localChunk, ChunksPerStage);
        return (localChunk * Stages) + stage;
    }

    /// <summary>The layers of model chunk <paramref name="modelChunk"/>: [Start, Start + Count).</summary>
    public (int Start, int Count) LayersOf(int modelChunk) => (_starts[CheckChunk(modelChunk)], _starts[modelChunk + 1] - _starts[modelChunk]);

    /// <summary>The summed layer cost of model chunk <paramref name="modelChunk"/>.</summary>
    public double ChunkCost(int modelChunk) => _chunkCosts[CheckChunk(modelChunk)];

    /// <summary>The summed cost of the chunks stage <paramref name="stage"/> runs.</summary>
    public double StageCost(int stage)
    {
        double sum = 0;
        for (int k = 0; k < ChunksPerStage; k++)
        {
            sum += _chunkCosts[ModelChunk(stage, k)];
        }
        return sum;
    }

    /// <inheritdoc />
    public override string ToString() =>
        $"{LayerCount} layers over {Stages} stages × {ChunksPerStage} chunks: " +
        string.Join(" | ", Enumerable.Range(0, ChunkCount).Select(c => $"[{_starts[c]}, {_starts[c + 1]})"));

    private int CheckChunk(int modelChunk)
    {
        if (modelChunk < 0 || modelChunk >= ChunkCount)
        {
            throw new ArgumentOutOfRangeException(nameof(modelChunk), modelChunk, $"model chunk must be in [0, {ChunkCount})");
        }
        return modelChunk;
    }
}
