namespace Hal.Parallel.TensorParallel;

// Legend: V vocabulary, g ranks of the vocabulary group, Vl = ⌈V/g⌉ rows of a table block (see VocabShard), Hl hidden
// features of the block, N ids of the batch (the same on every rank), Nb = N/g rows of this rank's output block.

/// <summary>
/// A token embedding whose table [V, H] is split both ways: hidden features over the grid's feature axis and vocabulary
/// rows over a vocabulary group, the ranks that hold the same hidden block and, between them, every row block of the
/// batch. Each rank looks up all N ids in its vocabulary rows (ids it does not hold give zero rows) and one
/// reduce-scatter over the vocabulary group sums the partial rows and leaves each rank its own row block [Nb, Hl]; one
/// rank contributes a non-zero row per id, so the result equals a whole-table lookup bit for bit. Backward all-gathers
/// dy over the same group and index-adds the rows whose ids this rank holds. The ids of the whole batch are passed on
/// every rank (N integers, small next to the activations), which keeps the lookup to one collective each way.
/// </summary>
internal sealed class GridEmbedding : IDisposable
{
    private const string Prefix = "grid.embedding";
    private readonly TensorParallelGroup _group;
    private readonly string _layer;

    /// <summary>The vocabulary rows are block <paramref name="vocabBlock"/> of the group's size (the group rank when null).</summary>
    public GridEmbedding(Ops ops, ICommunicator vocabGroup, int vocabSize, string layer, int? vocabBlock = null)
    {
        _group = new TensorParallelGroup(ops, vocabGroup);
        Shard = new VocabShard(vocabSize, vocabGroup.Size, vocabBlock ?? vocabGroup.Rank);
        _layer = layer;
    }

    public VocabShard Shard { get; }

    public long BytesCommunicated => _group.BytesCommunicated;

    public void Forward(Tensor weight, Tensor ids, Tensor y)
    {
        ArgumentNullException.ThrowIfNull(y);
        int n = Check(weight, ids, y);
        var ops = _group.Ops;
        var (index, keep) = Masks(ids, weight.DType);
        var rows = _group.Scratch(Prefix + ".partial", new Shape(n, weight.Shape[1]), weight.DType);
        ops.IndexSelect(weight, 0, index, rows);
        ops.Binary(BinaryOp.Mul, rows, keep, rows);
        _group.ReduceScatter(rows, y);
    }

    public void Backward(Tensor ids, Tensor dy, Tensor weightGrad)
    {
        int n = Check(weightGrad, ids, dy);
        var ops = _group.Ops;
        var full = _group.Scratch(Prefix + ".dy.gathered", new Shape(n, weightGrad.Shape[1]), dy.DType);
        _group.AllGather(dy, full);
        var (index, keep) = Masks(ids, dy.DType);
        ops.Binary(BinaryOp.Mul, full, keep, full);
        ops.IndexAdd(full, 0, index, weightGrad);
    }

    public void Dispose() => _group.Dispose();

    private (Tensor Index, Tensor Keep) Masks(Tensor ids, DType dtype)
    {
        int n = (int)ids.ElementCount;
        var index = _group.Scratch(Prefix + ".index", new Shape(n), ids.DType);
        var keep = _group.Scratch(Prefix + ".keep", new Shape(n, 1), dtype);
        VocabMask.InRange(_group, Prefix, ids, Shard.Start, Shard.LocalRows, index, keep);
        return (index, keep);
    }

    /// <summary>N, after checking the ids, the table block and the output block.</summary>
    private int Check(Tensor weight, Tensor ids, Tensor y)
    {
        ArgumentNullException.ThrowIfNull(weight);
        ArgumentNullException.ThrowIfNull(ids);
        ArgumentNullException.ThrowIfNull(y);
        if (!ids.DType.IsIndex())
        {
            throw new ArgumentException($"{_layer}: ids must be I32 or I64, not {ids.DType.Name()}", nameof(ids));
        }
        if (weight.Rank != 2 || weight.Shape[0] != Shard.LocalRows)
        {
            throw new ArgumentException(
                $"{_layer}: the table block must be [{Shard.LocalRows}, Hl] (V {Shard.VocabSize} padded to {Shard.PaddedVocabSize} over {Shard.TpSize} ranks), got {weight.Shape}",
                nameof(weight));
        }
        int n = (int)ids.ElementCount, g = _group.Size;
        if (n % g != 0)
        {
            throw new ArgumentException($"{_layer}: {n} ids do not split into {g} equal row blocks; choose a batch of N·T divisible by {g}", nameof(ids));
        }
        var expected = new Shape(n / g, weight.Shape[1]);
        if (y.Shape != expected || y.DType != weight.DType)
        {
            throw new ShapeMismatchException(_layer, expected, y.Shape, $"the output block holds rows [r·{n / g}, (r+1)·{n / g}) of the {n} ids, {weight.DType.Name()}");
        }
        return n;
    }
}

/// <summary>
/// A token embedding on the 2D layout: rank (i, j) holds vocabulary rows block i (of q, padded as
/// <see cref="VocabShard"/>) of hidden block j, and outputs the 2D activation block (i, j) [N/q, H/q] for the batch's ids.
/// The vocabulary group is column j. Per rank and step with e bytes: forward (q−1)/q·N·(H/q)·e (one reduce-scatter),
/// backward the same (one all-gather).
/// </summary>
public sealed class Embedding2D : IDisposable
{
    private readonly GridEmbedding _embedding;

    /// <summary>An embedding of <paramref name="vocabSize"/> rows over <paramref name="grid"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="vocabSize"/> below 1.</exception>
    /// <exception cref="ArgumentException"><paramref name="ops"/> works on another device than the grid.</exception>
    public Embedding2D(Ops ops, TensorGrid2D grid, int vocabSize)
    {
        ArgumentNullException.ThrowIfNull(grid);
        _embedding = new GridEmbedding(ops, grid.ColumnGroup, vocabSize, "2D embedding");
    }

    /// <summary>This rank's vocabulary rows (block i of the column).</summary>
    public VocabShard Shard => _embedding.Shard;

    /// <summary>Bytes this rank has sent so far (ring count).</summary>
    public long BytesCommunicated => _embedding.BytesCommunicated;

    /// <summary>y [N/q, H/q] = rows block i, hidden block j of table[ids]; ids (I32/I64, in [0, V)) are the whole batch's. Collective.</summary>
    /// <exception cref="ArgumentException">ids not integer or not divisible by q, or the table block is not [Vl, Hl].</exception>
    /// <exception cref="ShapeMismatchException">y is not [N/q, Hl].</exception>
    public void Forward(Tensor weight, Tensor ids, Tensor y) => _embedding.Forward(weight, ids, y);

    /// <summary>Adds into the table gradient block the rows of dy [N/q, Hl] (gathered over the column) whose ids this rank holds. Collective.</summary>
    /// <exception cref="ArgumentException">ids not integer or not divisible by q, or the gradient block is not [Vl, Hl].</exception>
    public void Backward(Tensor ids, Tensor dy, Tensor weightGrad) => _embedding.Backward(ids, dy, weightGrad);

    /// <summary>Frees the scratch.</summary>
    public void Dispose() => _embedding.Dispose();
}

/// <summary>
/// A token embedding on the 3D layout, feeding a <see cref="Linear3D"/> with input axis <c>inputAxis</c>: the hidden
/// features lie on that axis and the vocabulary rows are split over its plane (the c² ranks sharing the coordinate),
/// so rank (a0, a_out, a_in) holds vocabulary block a0·c + a_out of c² and hidden block a_in, and outputs the layer's
/// input piece [N/c², H/c]. Nothing is replicated. Per rank and step: forward (c²−1)/c²·N·(H/c)·e, backward the same.
/// </summary>
public sealed class Embedding3D : IDisposable
{
    private readonly GridEmbedding _embedding;

    /// <summary>An embedding of <paramref name="vocabSize"/> rows over <paramref name="grid"/>, output features on <paramref name="inputAxis"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="vocabSize"/> below 1, or <paramref name="inputAxis"/> not 1 or 2.</exception>
    /// <exception cref="ArgumentException"><paramref name="ops"/> works on another device than the grid.</exception>
    public Embedding3D(Ops ops, TensorGrid3D grid, int vocabSize, int inputAxis)
    {
        ArgumentNullException.ThrowIfNull(grid);
        _embedding = new GridEmbedding(ops, grid.Plane(inputAxis), vocabSize, "3D embedding");
        InputAxis = inputAxis;
    }

    /// <summary>The cube axis the output features lie on (the input axis of the layer it feeds).</summary>
    public int InputAxis { get; }

    /// <summary>This rank's vocabulary rows (its block of the plane).</summary>
    public VocabShard Shard => _embedding.Shard;

    /// <summary>Bytes this rank has sent so far (ring count).</summary>
    public long BytesCommunicated => _embedding.BytesCommunicated;

    /// <summary>y [N/c², H/c] = this rank's input piece of table[ids]; ids are the whole batch's. Collective over the plane.</summary>
    /// <exception cref="ArgumentException">ids not integer or not divisible by c², or the table block is not [Vl, Hl].</exception>
    /// <exception cref="ShapeMismatchException">y is not [N/c², Hl].</exception>
    public void Forward(Tensor weight, Tensor ids, Tensor y) => _embedding.Forward(weight, ids, y);

    /// <summary>Adds into the table gradient block the rows of dy (gathered over the plane) whose ids this rank holds. Collective.</summary>
    /// <exception cref="ArgumentException">ids not integer or not divisible by c², or the gradient block is not [Vl, Hl].</exception>
    public void Backward(Tensor ids, Tensor dy, Tensor weightGrad) => _embedding.Backward(ids, dy, weightGrad);

    /// <summary>Frees the scratch.</summary>
    public void Dispose() => _embedding.Dispose();
}
