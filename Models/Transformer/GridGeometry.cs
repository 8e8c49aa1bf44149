using Hal.Parallel.TensorParallel;

namespace Hal.Models.Transformer;

// Legend: p tp ranks; 2D q×q (rank = i·q + j), 2.5D q×q×d (rank = h·q² + i·q + j), 3D c×c×c (rank = a0·c² + a1·c + a2).
// N = B·T rows of a replica's batch, C channels, F MLP hidden, V vocabulary, H heads, Hkv key/value heads, D head size.
// Residual stream [N, C]: 2D block (i, j), 2.5D (h·q + i, j), 3D rows a0·c + a2 of c², features a1 (a Linear3D input on
// axis 1). Vp = V padded to a multiple of the table's vocabulary blocks (q, or c² on 3D). Inner activations (attention q/k/v and heads, MLP hidden) [N, ·]: 2D/2.5D as the residual; 3D rows
// a0·c + a1, features a2 (the Linear3D output). Logits [N, Vp]: the inner layout over the vocabulary.

/// <summary>Which kind of tensor a grid block is cut from (each kind has one blocking per layout).</summary>
public enum GridTensorKind
{
    /// <summary>A [In, Out] weight from the residual stream to an inner activation (q/k/v, MLP up/gate).</summary>
    WeightIn,

    /// <summary>A [In, Out] weight from an inner activation back to the residual stream (attention output, MLP down).</summary>
    WeightOut,

    /// <summary>A bias over inner features (the bias of a <see cref="WeightIn"/> linear).</summary>
    BiasIn,

    /// <summary>A vector over the residual features replicated on every rank that holds them (a norm's gamma and beta).</summary>
    VectorResidual,

    /// <summary>The bias of a <see cref="WeightOut"/> linear: the residual features' block, its gradient only on its owners.</summary>
    BiasOut,

    /// <summary>The [T, C] position table: every position, the residual features.</summary>
    Positions,

    /// <summary>A [V, C] token table (embedding, tied or untied head) in the head's [out, in] layout.</summary>
    Table,
}

/// <summary>
/// The shape of a 2D, 2.5D or 3D tensor-parallel grid and, as pure functions of a tp rank, which block of every
/// tensor kind that rank holds (used to split full tensors, gather them back, and weight replicated blocks).
/// </summary>
public sealed record GridGeometry
{
    private GridGeometry(TensorParallelMode mode, int side, int depth)
    {
        Mode = mode;
        Side = side;
        Depth = depth;
    }

    /// <summary>2D, 2.5D or 3D.</summary>
    public TensorParallelMode Mode { get; }

    /// <summary>q (2D, 2.5D) or c (3D).</summary>
    public int Side { get; }

    /// <summary>d (2.5D); 1 otherwise.</summary>
    public int Depth { get; }

    /// <summary>The number of tp ranks.</summary>
    public int Ranks => Mode == TensorParallelMode.ThreeD ? Side * Side * Side : Side * Side * Depth;

    /// <summary>How many row blocks the N rows of an activation are cut into: q, d·q or c².</summary>
    public int RowBlocks => Mode switch
    {
        TensorParallelMode.TwoAndHalfD => Depth * Side,
        TensorParallelMode.ThreeD => Side * Side,
        _ => Side,
    };

    /// <summary>How many blocks the features of an activation are cut into (heads, channels, hidden units): q or c.</summary>
    public int FeatureBlocks => Side;

    /// <summary>How many row blocks a [V, C] table's vocabulary is cut into: q, or c² on 3D.</summary>
    public int VocabBlocks => Mode == TensorParallelMode.ThreeD ? Side * Side : Side;

    /// <summary>
    /// Vp: <paramref name="vocabSize"/> padded up to a multiple of <see cref="VocabBlocks"/>, the rows of the grid's [Vp, C]
    /// table (every table block the same size) and the columns of its logits. Rows at or past V are zero, never an id,
    /// masked out of the softmax and given no gradient; checkpoints and gathers hold the V real rows only.
    /// </summary>
    public int PaddedVocabSize(int vocabSize) => (vocabSize + VocabBlocks - 1) / VocabBlocks * VocabBlocks;

    /// <summary>How many ranks hold the same block of a tensor of <paramref name="kind"/> with the same gradient (a bias counts its owners).</summary>
    public int Copies(GridTensorKind kind) => (Mode, kind) switch
    {
        (TensorParallelMode.TwoD, GridTensorKind.VectorResidual or GridTensorKind.Positions) => Side,
        (TensorParallelMode.TwoD, _) => 1,
        (TensorParallelMode.TwoAndHalfD, GridTensorKind.VectorResidual or GridTensorKind.Positions) => Side * Depth,
        (TensorParallelMode.TwoAndHalfD, _) => Depth,
        (_, GridTensorKind.VectorResidual or GridTensorKind.Positions) => Side * Side,
        (_, GridTensorKind.BiasIn or GridTensorKind.BiasOut) => Side,
        _ => 1,
    };

    /// <summary>The geometry of <paramref name="mode"/> over <paramref name="tp"/> ranks, or the reason there is none.</summary>
    /// <param name="mode">2D, 2.5D or 3D.</param>
    /// <param name="tp">the tp group size.</param>
    /// <param name="depth">2.5D's d; null or 0 picks the d ≥ 2 with the largest q (see <see cref="DefaultDepth"/>).</param>
    public static (GridGeometry? Geometry, string? Problem) For(TensorParallelMode mode, int tp, int? depth)
    {
        switch (mode)
        {
            case TensorParallelMode.TwoD:
                return Root(tp, 2) is { } q
                    ? (new GridGeometry(mode, q, 1), null)
                    : (null, $"--tp {tp} --tp-mode 2d needs a square number of ranks q² (4, 9, 16, ...); give --tp 4 or --tp 9, or another --tp-mode");
            case TensorParallelMode.ThreeD:
                return Root(tp, 3) is { } c
                    ? (new GridGeometry(mode, c, 1), null)
                    : (null, $"--tp {tp} --tp-mode 3d needs a cube number of ranks c³ (8, 27, 64, ...); give --tp 8 or another --tp-mode");
            case TensorParallelMode.TwoAndHalfD:
                int d = depth is null or 0 ? DefaultDepth(tp) ?? 0 : depth.Value;
                if (d < 1)
                {
                    return (null, depth is null or 0
                        ? $"--tp {tp} --tp-mode 2.5d needs q²·d ranks with q ≥ 2 and d ≥ 2 (8, 12, 16, 18, ...); give such a --tp, --tp-depth D, or --tp-mode 2d"
                        : $"--tp-depth {depth}: the 2.5D depth must be at least 1");
                }
                return tp % d == 0 && Root(tp / d, 2) is { } side
                    ? (new GridGeometry(mode, side, d), null)
                    : (null, $"--tp {tp} --tp-mode 2.5d --tp-depth {d} needs --tp = q²·{d} ({d}, {4 * d}, {9 * d}, ...); give such a --tp or another --tp-depth");
            default:
                return (null, $"--tp-mode {mode.Name()} is not a grid layout");
        }
    }

    /// <summary>
    /// 2.5D's default depth for <paramref name="tp"/> ranks: of the ways to write tp = q²·d with q ≥ 2 and d ≥ 2, the one
    /// with the largest q (the most feature splitting); null when there is none (tp = q² alone is 2D, say so).
    /// </summary>
    public static int? DefaultDepth(int tp)
    {
        for (int q = (int)Math.Sqrt(tp) + 1; q >= 2; q--)
        {
            if (tp % (q * q) == 0 && tp / (q * q) >= 2)
            {
                return tp / (q * q);
            }
        }
        return null;
    }

    /// <summary>(layer h, row i, column j) on 2D/2.5D; (a0, a1, a2) on 3D.</summary>
    public (int A, int B, int C) Coordinates(int rank) => Mode == TensorParallelMode.ThreeD
        ? (rank / (Side * Side), rank / Side % Side, rank % Side)
        : (rank / (Side * Side), rank / Side % Side, rank % Side);

    /// <summary>The row block (of <see cref="RowBlocks"/>) of the residual stream on <paramref name="rank"/>.</summary>
    public int ResidualRowBlock(int rank)
    {
        var (a, b, c) = Coordinates(rank);
        return Mode == TensorParallelMode.ThreeD ? (a * Side) + c : (a * Side) + b;
    }

    /// <summary>The row block of the inner activations and the logits on <paramref name="rank"/>.</summary>
    public int InnerRowBlock(int rank)
    {
        var (a, b, _) = Coordinates(rank);
        return (a * Side) + b;
    }

    /// <summary>The feature block of the residual stream on <paramref name="rank"/>.</summary>
    public int ResidualFeatureBlock(int rank)
    {
        var (_, b, c) = Coordinates(rank);
        return Mode == TensorParallelMode.ThreeD ? b : c;
    }

    /// <summary>The feature block of the inner activations (heads, hidden units) and the logits' vocabulary block on <paramref name="rank"/>.</summary>
    public int InnerFeatureBlock(int rank) => Coordinates(rank).C;

    /// <summary>The block of a tensor of <paramref name="kind"/> that <paramref name="rank"/> holds.</summary>
    public GridBlock Block(GridTensorKind kind, int rank)
    {
        var (a, b, c) = Coordinates(rank);
        int s = Side;
        if (Mode != TensorParallelMode.ThreeD)
        {
            return kind switch
            {
                GridTensorKind.BiasIn or GridTensorKind.BiasOut or GridTensorKind.VectorResidual => new GridBlock(0, 1, c, s),
                GridTensorKind.Positions => new GridBlock(0, 1, c, s),
                _ => new GridBlock(b, s, c, s),
            };
        }
        // 3D: residual features on axis 1, inner on axis 2; see TensorGrid3D.WeightBlock and VocabHead3D.
        return kind switch
        {
            GridTensorKind.WeightIn => new GridBlock((b * s) + a, s * s, c, s),
            GridTensorKind.WeightOut => new GridBlock((c * s) + a, s * s, b, s),
            GridTensorKind.BiasIn => new GridBlock(0, 1, c, s),
            GridTensorKind.BiasOut or GridTensorKind.VectorResidual or GridTensorKind.Positions => new GridBlock(0, 1, b, s),
            _ => new GridBlock((c * s) + a, s * s, b, s),
        };
    }

    /// <summary>What keeps <paramref name="model"/> with <paramref name="rows"/> sequences per replica from this grid, or null.</summary>
    public string? Problem(ModelConfig model, int rows)
    {
        ArgumentNullException.ThrowIfNull(model);
        string mode = $"--tp {Ranks} --tp-mode {Mode.Name()}";
        int f = FeatureBlocks, wideRows = Mode == TensorParallelMode.ThreeD ? Side * Side : Side;
        if (model.Heads % f != 0)
        {
            return $"{mode}: model '{model.Name}' has {model.Heads} heads, not divisible by {f} (each grid column holds whole heads); pick a layout whose side divides {model.Heads}";
        }
        if (model.KvHeads % f != 0)
        {
            return $"{mode}: model '{model.Name}' has {model.KvHeads} key/value heads, not divisible by {f}; pick a layout whose side divides {model.KvHeads}";
        }
        // Weights [In, Out]: In split wideRows ways (c² on 3D), Out f ways; tables are padded (PaddedVocabSize), never refused.
        foreach (var (what, size) in new[] { ("channels", model.Channels), ("hidden units", model.Hidden), ("attention features H·D", model.Heads * model.HeadSize) })
        {
            if (size % wideRows != 0)
            {
                return $"{mode}: model '{model.Name}' has {size} {what}, not divisible by {wideRows}; pick a model or layout that splits them evenly";
            }
        }
        if (rows % RowBlocks != 0)
        {
            return $"{mode}: {rows} sequences per replica are not divisible by {RowBlocks} (the row blocks of the activations, each whole sequences); give --batch divisible by dp × {RowBlocks}";
        }
        return null;
    }

    private static int? Root(int value, int power)
    {
        for (int r = 1; Math.Pow(r, power) <= value; r++)
        {
            if ((long)Math.Pow(r, power) == value)
            {
                return r > 1 ? r : null;
            }
        }
        return null;
    }
}
