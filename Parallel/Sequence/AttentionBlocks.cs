namespace Hal.Parallel.Sequence;

// Legend: B batch, H query heads, Hkv key/value heads, Tl local tokens, n chunks per rank (2 zig-zag, 1 contiguous),
// Tc = Tl/n tokens per chunk, D head size. Local tensors [B, H, Tl, D]; chunk-major copies [n, B, H, Tc, D] (each
// chunk one contiguous run, so it can be a kernel argument or a message); lse [B, H, Tl] ↔ [n, B, H, Tc].

/// <summary>Tensor moves and the log-sum-exp algebra shared by the sequence-parallel attentions.</summary>
internal sealed class AttentionBlocks(Ops ops) : IDisposable
{
    private readonly List<Tensor> _owned = [];
    private readonly Dictionary<(int Chunk, int Chunks), Tensor> _chunkIndex = [];
    private readonly Dictionary<(int Tq, int Tk, DType DType), Tensor> _causalMasks = [];

    public Ops Ops { get; } = ops;

    /// <summary>F64 computes in F64; every other float dtype in F32 (16-bit floats are storage).</summary>
    public static DType ComputeDType(DType dtype) => dtype == DType.F64 ? DType.F64 : DType.F32;

    /// <summary>A new tensor that lives until this object is disposed.</summary>
    public Tensor Keep(Tensor t)
    {
        _owned.Add(t);
        return t;
    }

    /// <summary>A scratch tensor, freed with this object.</summary>
    public Tensor Empty(Shape shape, DType dtype) => Keep(Ops.Empty(shape, dtype));

    /// <summary>A zero-filled scratch tensor, freed with this object.</summary>
    public Tensor Zeros(Shape shape, DType dtype) => Keep(Ops.Zeros(shape, dtype));

    /// <summary>x [B, H, Tl, D] (or lse [B, H, Tl]) → chunk-major [n, B, H, Tc, D] in dtype <paramref name="dtype"/>.</summary>
    public Tensor SplitChunks(Tensor x, int chunks, DType dtype)
    {
        var split = Empty(ChunkMajorShape(x.Shape, chunks), dtype);
        SplitChunks(x, chunks, split);
        return split;
    }

    /// <summary>x [B, H, Tl, D] → <paramref name="split"/> [n, B, H, Tc, D] (cast to split's dtype).</summary>
    public void SplitChunks(Tensor x, int chunks, Tensor split)
    {
        var rows = Rows(x, chunks, out int perChunk);
        var dtype = split.DType;
        var source = x;
        if (x.DType != dtype)
        {
            source = Empty(x.Shape, dtype);
            Ops.Cast(x, source);
        }
        if (chunks == 1)
        {
            Ops.Copy(source, split.Reshape(source.Shape.ToArray()));
            return;
        }
        var view = source.Reshape(rows, chunks, perChunk);
        for (int c = 0; c < chunks; c++)
        {
            Ops.IndexSelect(view, 1, ChunkIndex(c, chunks), Chunk(split, c).Reshape(rows, 1, perChunk));
        }
    }

    /// <summary>Chunk-major [n, B, H, Tc, D] → <paramref name="x"/> [B, H, Tl, D], cast to x's dtype.</summary>
    public void JoinChunks(Tensor split, int chunks, Tensor x)
    {
        var rows = Rows(x, chunks, out int perChunk);
        var target = x.DType == split.DType ? x : Empty(x.Shape, split.DType);
        if (chunks == 1)
        {
            Ops.Copy(split.Reshape(target.Shape.ToArray()), target);
        }
        else
        {
            // IndexAdd into zeros writes each chunk's rows exactly (0 + v = v); there is no strided copy in the contract.
            Ops.Fill(target, 0);
            var view = target.Reshape(rows, chunks, perChunk);
            for (int c = 0; c < chunks; c++)
            {
                Ops.IndexAdd(Chunk(split, c).Reshape(rows, 1, perChunk), 1, ChunkIndex(c, chunks), view);
            }
        }
        if (!ReferenceEquals(target, x))
        {
            Ops.Cast(target, x);
        }
    }

    /// <summary>Chunk c of a chunk-major tensor [n, ...] as a view [...].</summary>
    public static Tensor Chunk(Tensor split, int c)
    {
        var inner = split.Shape.ToArray()[1..];
        return split.View(c * split.Shape.Product(1, split.Rank), new Shape(inner));
    }

    /// <summary>
    /// Folds one block's partial attention (output o and lse over a subset of keys) into the running result over the
    /// keys seen so far: lse' = log(e^lse + e^lseBlock); out' = out·e^(lse − lse') + o·e^(lseBlock − lse').
    /// Both lse finite (every merged block has at least one visible key per row). <paramref name="output"/> may be null
    /// (lse only). Shapes: output/blockOutput [B, H, Tc, D], lse/blockLse [B, H, Tc], all in one compute dtype.
    /// </summary>
    public void Merge(Tensor? output, Tensor lse, Tensor? blockOutput, Tensor blockLse)
    {
        var column = ColumnShape(lse);
        var a = lse.Reshape(column.ToArray());
        var b = blockLse.Reshape(column.ToArray());
        using var max = Ops.Empty(column, lse.DType);
        using var weightA = Ops.Empty(column, lse.DType);
        using var weightB = Ops.Empty(column, lse.DType);
        Ops.Binary(BinaryOp.Max, a, b, max);
        Ops.Binary(BinaryOp.Sub, a, max, weightA);
        Ops.Unary(UnaryOp.Exp, weightA, weightA);
        Ops.Binary(BinaryOp.Sub, b, max, weightB);
        Ops.Unary(UnaryOp.Exp, weightB, weightB);
        // lse' = max + log(e^(a−max) + e^(b−max)); the weights are e^(a−lse') = e^(a−max) / sum.
        using var sum = Ops.Empty(column, lse.DType);
        Ops.Binary(BinaryOp.Add, weightA, weightB, sum);
        Ops.Binary(BinaryOp.Div, weightA, sum, weightA);
        Ops.Binary(BinaryOp.Div, weightB, sum, weightB);
        Ops.Unary(UnaryOp.Log, sum, sum);
        Ops.Binary(BinaryOp.Add, max, sum, a);
        if (output is not null && blockOutput is not null)
        {
            using var scaled = Ops.Empty(output.Shape, output.DType);
            Ops.Binary(BinaryOp.Mul, output, weightA, output);
            Ops.Binary(BinaryOp.Mul, blockOutput, weightB, scaled);
            Ops.Binary(BinaryOp.Add, output, scaled, output);
        }
    }

    /// <summary>
    /// lse [B, H, Tq] = log Σ_j exp(scale·q·k_j) over the visible keys, computed in q's dtype through GEMM and
    /// reductions (the fused kernel reports lse in F32; F64 merges need it in F64). q [B, H, Tq, D], k [B, Hkv, Tk, D];
    /// causal uses the kernel's bottom-right aligned mask (every row sees at least one key when Tq = Tk).
    /// </summary>
    public void LogSumExp(Tensor q, Tensor k, bool causal, double scale, Tensor lse)
    {
        int b = q.Shape[0], h = q.Shape[1], tq = q.Shape[2], tk = k.Shape[2];
        var dtype = q.DType;
        var keys = k;
        Tensor? expanded = null;
        if (k.Shape[1] != h)
        {
            int group = h / k.Shape[1];
            var index = new long[h];
            for (int i = 0; i < h; i++)
            {
                index[i] = i / group;
            }
            using var heads = Ops.FromArray(index, new Shape(h));
            expanded = Ops.Empty(k.Shape.With(1, h), dtype);
            Ops.IndexSelect(k, 1, heads, expanded);
            keys = expanded;
        }
        using var scores = Ops.Empty(new Shape(b, h, tq, tk), dtype);
        Ops.Gemm(q, keys, scores, transB: true, alpha: scale);
        expanded?.Dispose();
        if (causal)
        {
            Ops.Binary(BinaryOp.Add, scores, CausalMask(tq, tk, dtype), scores);
        }
        var column = new Shape(b, h, tq, 1);
        using var max = Ops.Empty(column, dtype);
        Ops.Reduce(ReduceOp.Max, scores, 3, max);
        Ops.Binary(BinaryOp.Sub, scores, max, scores);
        Ops.Unary(UnaryOp.Exp, scores, scores);
        var result = lse.Reshape(b, h, tq, 1);
        Ops.Reduce(ReduceOp.Sum, scores, 3, result);
        Ops.Unary(UnaryOp.Log, result, result);
        Ops.Binary(BinaryOp.Add, result, max, result);
    }

    /// <summary>x [B, H, T, D] ·= e^(a − b) per row, with a, b [B, H, T].</summary>
    public void ScaleRows(Tensor x, Tensor a, Tensor b, Tensor scaled)
    {
        var column = ColumnShape(a);
        using var factor = Ops.Empty(column, a.DType);
        Ops.Binary(BinaryOp.Sub, a.Reshape(column.ToArray()), b.Reshape(column.ToArray()), factor);
        Ops.Unary(UnaryOp.Exp, factor, factor);
        Ops.Binary(BinaryOp.Mul, x, factor, scaled);
    }

    /// <summary>dst += src.</summary>
    public void AddInto(Tensor src, Tensor dst) => Ops.Binary(BinaryOp.Add, dst, src, dst);

    public void Dispose()
    {
        foreach (var t in _owned)
        {
            t.Dispose();
        }
        _owned.Clear();
        foreach (var t in _chunkIndex.Values)
        {
            t.Dispose();
        }
        _chunkIndex.Clear();
        foreach (var t in _causalMasks.Values)
        {
            t.Dispose();
        }
        _causalMasks.Clear();
    }

    /// <summary>[n, B, H, Tc, D] for x [B, H, Tl, D] (or [n, B, H, Tc] for lse [B, H, Tl]).</summary>
    public static Shape ChunkMajorShape(Shape x, int chunks)
    {
        var dims = new int[x.Rank + 1];
        dims[0] = chunks;
        for (int i = 0; i < x.Rank; i++)
        {
            dims[i + 1] = i == 2 ? x[2] / chunks : x[i];
        }
        return new Shape(dims);
    }

    /// <summary>x viewed as [B·H, n, Tc·D]: returns B·H and sets Tc·D.</summary>
    private static int Rows(Tensor x, int chunks, out int perChunk)
    {
        int rows = x.Shape[0] * x.Shape[1];
        perChunk = checked((int)(x.ElementCount / Math.Max(1, (long)rows * chunks)));
        return rows;
    }

    private static Shape ColumnShape(Tensor lse) => new(lse.Shape[0], lse.Shape[1], lse.Shape[2], 1);

    /// <summary>The one-element I64 index [c], kept for reuse.</summary>
    public Tensor ChunkIndex(int c, int chunks)
    {
        if (!_chunkIndex.TryGetValue((c, chunks), out var index))
        {
            index = Ops.FromArray([(long)c], new Shape(1));
            _chunkIndex[(c, chunks)] = index;
        }
        return index;
    }

    /// <summary>[Tq, Tk]: 0 where key j ≤ i + Tk − Tq, −Inf elsewhere (the fused kernel's causal rule).</summary>
    private Tensor CausalMask(int tq, int tk, DType dtype)
    {
        var key = (tq, tk, dtype);
        if (!_causalMasks.TryGetValue(key, out var mask))
        {
            var values = new double[(long)tq * tk];
            for (int i = 0; i < tq; i++)
            {
                for (int j = 0; j < tk; j++)
                {
                    values[((long)i * tk) + j] = j <= i + (tk - tq) ? 0 : double.NegativeInfinity;
                }
            }
            mask = Ops.FromArray(values, new Shape(tq, tk), dtype);
            _causalMasks[key] = mask;
        }
        return mask;
    }
}
