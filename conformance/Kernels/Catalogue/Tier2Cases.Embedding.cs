namespace Hal.Conformance.Kernels.Catalogue;

// embedding and its backward. Shapes: weight, dweight [V,C]; ids [N] or [N1,N2] (I32/I64, in [0, V));
// y, dy [N,C] or [...ids, C].
public static partial class Tier2Cases
{
    private static readonly (int V, int C, int[] Ids)[] EmbeddingShapes =
    [
        (1, 1, [1]), (7, 8, [9]), (5, 9, [4, 5]), (33, 17, [65]), (3, 64, [12]), (9, 65, [2, 7]), (4, 7, [33]),
    ];

    private static IEnumerable<KernelCase> EmbeddingCases()
    {
        foreach (var dtype in FloatDTypes)
        {
            foreach (var (vocab, cols, ids) in EmbeddingShapes)
            {
                string shape = $"w{Dims(vocab, cols)} ids{Dims(ids)}";
                foreach (var index in new[] { DType.I64, DType.I32 })
                {
                    bool quick = vocab == 33 && index == DType.I64;
                    foreach (var c in Both(FusedOp.Embedding, dtype, shape, index.Name(), quick,
                        $"y = weight rows at {index.Name()} ids (repeated ids included)",
                        ctx => RunEmbedding(ctx, dtype, index, vocab, cols, ids, backward: false), [index]))
                    {
                        yield return c;
                    }
                    foreach (var c in Both(FusedOp.EmbeddingBackward, dtype, shape, index.Name(), quick,
                        $"dweight = Σ of the dy rows per id ({index.Name()} ids, repeated: the sums collide)",
                        ctx => RunEmbedding(ctx, dtype, index, vocab, cols, ids, backward: true), [index]))
                    {
                        yield return c;
                    }
                }
            }
        }
    }

    private static IReadOnlyList<CaseOutput> RunEmbedding(CaseContext ctx, DType dtype, DType index, int vocab, int cols, int[] idsShape, bool backward)
    {
        var sIds = new Shape(idsShape);
        int count = checked((int)sIds.ElementCount);
        // Ids drawn from the lower half of the vocabulary (at least one id), so that ids repeat and some rows of
        // dweight receive nothing (they must be written as 0).
        long[] ids = new long[count];
        for (int i = 0; i < count; i++)
        {
            ids[i] = ctx.Values.NextInt(Math.Max(1, vocab / 2));
        }
        var tids = ctx.Upload(Array.ConvertAll(ids, v => (double)v), sIds, index);
        // Rows shaped [...ids, C] for 2-D ids, [N, C] for 1-D ones.
        var rowsShape = new Shape([.. idsShape, cols]);
        if (!backward)
        {
            double[] w = ctx.Values.Floats((long)vocab * cols, ValueKind.Edge, dtype);
            var tw = ctx.Upload(w, new Shape(vocab, cols), dtype);
            var ty = ctx.Output(rowsShape, dtype);
            ctx.Ops.Embedding(tw, tids, ty);
            var y = new double[(long)count * cols];
            for (int i = 0; i < count; i++)
            {
                Array.Copy(w, ids[i] * cols, y, (long)i * cols, cols);
            }
            return [Out("y", KernelNames.Of(FusedOp.Embedding), dtype, ctx.Download(ty), y)];
        }
        double[] dy = ctx.Values.Floats((long)count * cols, ValueKind.Normal, dtype);
        var tdy = ctx.Upload(dy, rowsShape, dtype);
        var tdw = ctx.Output(new Shape(vocab, cols), dtype);
        ctx.Ops.EmbeddingBackward(tdy, tids, tdw);
        var dw = new double[(long)vocab * cols];
        var scale = new double[dw.Length];
        var repeats = new int[vocab];
        for (int i = 0; i < count; i++)
        {
            repeats[ids[i]]++;
            for (int c = 0; c < cols; c++)
            {
                dw[ids[i] * cols + c] += dy[(long)i * cols + c];
                scale[ids[i] * cols + c] += Math.Abs(dy[(long)i * cols + c]);
            }
        }
        return [Out("dweight", KernelNames.Of(FusedOp.EmbeddingBackward), dtype, ctx.Download(tdw), dw, repeats.Max() + 1, scale)];
    }
}
