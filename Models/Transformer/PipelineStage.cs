using Hal.Parallel.Pipeline;

namespace Hal.Models.Transformer;

// Legend: L blocks, p stages, v chunks per stage; model chunk c = k·p + s is local chunk k of stage s. Parameter
// layers: 0 embeddings, 1..L blocks, L+1 final norm and head.

/// <summary>
/// Which part of a transformer one pipeline stage holds: the blocks of its v model chunks (contiguous block ranges
/// from a <see cref="StagePartition"/> of the L blocks), the embeddings when it runs model chunk 0, and the final norm,
/// LM head and loss when it runs the last model chunk. A stage whose head is tied to the token embedding it does not
/// run also holds a copy of that matrix (initialised like the original; the trainer sums the two copies' gradients).
/// </summary>
public sealed record PipelineStage
{
    /// <summary>Stage <paramref name="stage"/> of <paramref name="blocks"/>' layout.</summary>
    /// <exception cref="ArgumentNullException"><paramref name="blocks"/> is null.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="stage"/> outside [0, p).</exception>
    public PipelineStage(StagePartition blocks, int stage)
    {
        ArgumentNullException.ThrowIfNull(blocks);
        ArgumentOutOfRangeException.ThrowIfNegative(stage);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(stage, blocks.Stages);
        Blocks = blocks;
        Stage = stage;
    }

    /// <summary>The split of the L blocks over the p·v model chunks.</summary>
    public StagePartition Blocks { get; }

    /// <summary>This stage, 0 ≤ Stage &lt; p.</summary>
    public int Stage { get; }

    /// <summary>Number of stages p.</summary>
    public int Stages => Blocks.Stages;

    /// <summary>Local chunks v.</summary>
    public int ChunksPerStage => Blocks.ChunksPerStage;

    /// <summary>Whether this stage runs model chunk 0 (the embeddings): stage 0.</summary>
    public bool HoldsEmbedding => Stage == 0;

    /// <summary>Whether this stage runs the last model chunk (final norm, head, loss): stage p − 1.</summary>
    public bool HoldsHead => Stage == Stages - 1;

    /// <summary>The model chunk local chunk <paramref name="localChunk"/> is.</summary>
    public int ModelChunk(int localChunk) => Blocks.ModelChunk(Stage, localChunk);

    /// <summary>Whether local chunk <paramref name="localChunk"/> is model chunk 0 (it reads the tokens).</summary>
    public bool IsFirstChunk(int localChunk) => ModelChunk(localChunk) == 0;

    /// <summary>Whether local chunk <paramref name="localChunk"/> is the last model chunk (it computes the loss).</summary>
    public bool IsLastChunk(int localChunk) => ModelChunk(localChunk) == Blocks.ChunkCount - 1;

    /// <summary>The blocks (0-based) local chunk <paramref name="localChunk"/> runs: [Start, Start + Count).</summary>
    public (int Start, int Count) BlocksOf(int localChunk) => Blocks.LayersOf(ModelChunk(localChunk));

    /// <summary>Whether parameter layer <paramref name="layer"/> (0 embeddings, 1..L blocks, L+1 head) is on this stage.</summary>
    public bool HoldsLayer(int layer)
    {
        int blocks = Blocks.LayerCount;
        if (layer == 0)
        {
            return HoldsEmbedding;
        }
        if (layer == blocks + 1)
        {
            return HoldsHead;
        }
        for (int k = 0; k < ChunksPerStage; k++)
        {
            var (start, count) = BlocksOf(k);
            if (layer - 1 >= start && layer - 1 < start + count)
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>
    /// The split of <paramref name="config"/>'s blocks over <paramref name="stages"/> × <paramref name="chunksPerStage"/>
    /// model chunks, balanced by the parameters that take part in matmuls (a block's projections; the LM head's V·C on
    /// the last chunk, whose matmul and softmax cost what a block of that many parameters costs; the embedding lookup
    /// costs nothing like its size and counts 0). Equal blocks and a small head: an even split, the remainder on the
    /// first chunks; a large vocabulary (GPT-2's 50257) moves blocks off the last stage.
    /// </summary>
    /// <exception cref="PipelineException">fewer blocks than model chunks.</exception>
    public static StagePartition Partition(ModelConfig config, int stages, int chunksPerStage)
    {
        ArgumentNullException.ThrowIfNull(config);
        long c = config.Channels;
        long perBlock = config.Family == ModelFamily.Gpt2
            ? 12L * c * c
            : (2L * c * config.Heads * config.HeadSize) + (2L * c * config.KvHeads * config.HeadSize) + (3L * c * config.Hidden);
        return StagePartition.Balance([.. Enumerable.Repeat((double)perBlock, config.Layers)], stages, chunksPerStage,
            firstChunkExtra: 0, lastChunkExtra: (double)config.VocabSize * c);
    }

    /// <inheritdoc />
    public override string ToString() => $"stage {Stage} of {Blocks}";
}
