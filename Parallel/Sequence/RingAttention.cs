namespace Hal.Parallel.Sequence;

// Legend: B batch, H query heads, Hkv key/value heads, sp ranks in the ring, T full length, Tl = T/sp local tokens,
// n chunks per rank (2 with the zig-zag placement when causal, 1 contiguous block otherwise), Tc = Tl/n, D head size.
// q, output, dOutput, dq [B, H, Tl, D]; k, v, dk, dv [B, Hkv, Tl, D]; lse [B, H, Tl] F32. Inside, tensors are held
// chunk-major [n, B, H, Tc, D] in the compute dtype (F64 for F64, else F32); the travelling block packs k and v
// (forward) or k, v, dk, dv (backward) as [parts, n, B, Hkv, Tc, D], one message per hop.

/// <summary>
/// Attention over a sequence split across the ranks of a ring. Each rank keeps its queries; key/value blocks travel
/// around the ring, and at every hop each local query chunk attends to each visible key chunk of the block in hand with
/// the fused kernel. Partial outputs are combined by their log-sum-exps, so the result equals single-device attention
/// over the whole sequence. Causal attention expects the <see cref="ZigZag"/> placement: query chunk g sees key chunk g'
/// fully when g' &lt; g, through the causal diagonal when g' = g, and not at all when g' &gt; g (the pair is skipped).
/// Non-causal attention expects contiguous placement (rank r holds tokens [r·Tl, (r+1)·Tl)).
/// The communicator has no asynchronous point-to-point call, so transfers overlap compute only as far as a send
/// returns before its receiver is ready (even ranks send before computing, odd ranks after).
/// </summary>
public sealed class RingAttention : IDisposable
{
    private readonly Ops _ops;
    private readonly ICommunicator _group;

    /// <summary>A ring over the ranks of <paramref name="spGroup"/>, computing with <paramref name="ops"/> on that rank's device.</summary>
    /// <exception cref="ArgumentNullException">A null argument.</exception>
    /// <exception cref="ArgumentException"><paramref name="ops"/> works on another device than the group.</exception>
    public RingAttention(Ops ops, ICommunicator spGroup)
    {
        ArgumentNullException.ThrowIfNull(ops);
        ArgumentNullException.ThrowIfNull(spGroup);
        SequenceChecks.SameDevice(ops, spGroup);
        _ops = ops;
        _group = spGroup;
    }

    /// <summary>Bytes this rank has sent to its ring neighbour so far (forward and backward, all calls).</summary>
    public long BytesSent { get; private set; }

    /// <summary>Where a key chunk stands for a query chunk under the causal mask.</summary>
    private enum Visibility
    {
        None,
        Diagonal,
        Full,
    }

    /// <summary>
    /// output [B, H, Tl, D] and lse [B, H, Tl] (F32, natural log-sum-exp of the scaled visible scores, as the fused
    /// kernel defines it) of this rank's queries against the keys of every rank. Collective over the group.
    /// </summary>
    /// <exception cref="ArgumentException">Causal with an odd local length (zig-zag needs T a multiple of 2·sp).</exception>
    /// <exception cref="ShapeMismatchException">The shapes do not fit [B, H, Tl, D] / [B, Hkv, Tl, D] / [B, H, Tl].</exception>
    public void Forward(Tensor q, Tensor k, Tensor v, bool causal, double scale, Tensor output, Tensor lse)
    {
        SequenceChecks.Attention("ring attention", q, k, v, output, lse, requireSameLength: true);
        int chunks = Chunks(q, causal);
        int sp = _group.Size, rank = _group.Rank;
        var ct = AttentionBlocks.ComputeDType(q.DType);
        using var blocks = new AttentionBlocks(_ops);
        var queries = blocks.SplitChunks(q, chunks, ct);
        var kvShape = AttentionBlocks.ChunkMajorShape(k.Shape, chunks);
        var current = blocks.Empty(Packed(2, kvShape), ct);
        var next = sp > 1 ? blocks.Empty(current.Shape, ct) : current;
        blocks.SplitChunks(k, chunks, AttentionBlocks.Chunk(current, 0));
        blocks.SplitChunks(v, chunks, AttentionBlocks.Chunk(current, 1));

        var outputs = blocks.Empty(AttentionBlocks.ChunkMajorShape(q.Shape, chunks), ct);
        var lses = blocks.Empty(AttentionBlocks.ChunkMajorShape(lse.Shape, chunks), ct);
        var blockOutput = blocks.Empty(AttentionBlocks.Chunk(outputs, 0).Shape, ct);
        var kernelLse = blocks.Empty(AttentionBlocks.Chunk(lses, 0).Shape, DType.F32);
        var blockLse = ct == DType.F32 ? kernelLse : blocks.Empty(kernelLse.Shape, ct);
        var merged = new bool[chunks];

        for (int step = 0; step < sp; step++)
        {
            int source = (rank - step + sp) % sp;
            var held = current;
            void Compute()
            {
                for (int a = 0; a < chunks; a++)
                {
                    for (int b = 0; b < chunks; b++)
                    {
                        var seen = See(causal, chunks, sp, rank, a, source, b);
                        if (seen == Visibility.None)
                        {
                            continue;
                        }
                        bool diagonal = seen == Visibility.Diagonal;
                        var qa = AttentionBlocks.Chunk(queries, a);
                        var kb = AttentionBlocks.Chunk(AttentionBlocks.Chunk(held, 0), b);
                        var vb = AttentionBlocks.Chunk(AttentionBlocks.Chunk(held, 1), b);
                        // The first block of a chunk is written in place; later ones go to scratch and are merged in.
                        var outTarget = merged[a] ? blockOutput : AttentionBlocks.Chunk(outputs, a);
                        var lseTarget = merged[a] ? blockLse : AttentionBlocks.Chunk(lses, a);
                        _ops.Attention(qa, kb, vb, diagonal, scale, outTarget, ct == DType.F32 ? lseTarget : kernelLse);
                        if (ct != DType.F32)
                        {
                            // The kernel's lse is F32; an F64 merge needs the block's lse in F64.
                            blocks.LogSumExp(qa, kb, diagonal, scale, lseTarget);
                        }
                        if (merged[a])
                        {
                            blocks.Merge(AttentionBlocks.Chunk(outputs, a), AttentionBlocks.Chunk(lses, a), blockOutput, blockLse);
                        }
                        merged[a] = true;
                    }
                }
            }
            if (step == sp - 1)
            {
                Compute();
            }
            else
            {
                Rotate(current, next, Compute);
                (current, next) = (next, current);
            }
        }
        blocks.JoinChunks(outputs, chunks, output);
        blocks.JoinChunks(lses, chunks, lse);
    }

    /// <summary>
    /// dq [B, H, Tl, D], dk and dv [B, Hkv, Tl, D] of this rank's tokens, from the merged output and lse that
    /// <see cref="Forward"/> returned. Key/value blocks travel the ring again, carrying their dk/dv partial sums,
    /// and a last hop returns each block's sums to its owner. Collective over the group.
    /// Each block's share of the gradient needs the global softmax P = exp(s − lse), but fused backwards differ in which
    /// lse they use: the CPU F32 kernel reads the one it is given, the CPU F64 and CUDA kernels recompute the block's own
    /// from q and k. So every block is passed its own lse (computed here by GEMM and reductions) and dOutput scaled by
    /// exp(lse_block − lse) per row, which yields the block's exact share whichever lse the kernel uses; the merged
    /// output still supplies rowsum(dO ⊙ O). F64 first rebuilds the global lse in F64 (the saved one is F32) with one
    /// more pass of the keys alone.
    /// </summary>
    /// <exception cref="ArgumentException">Causal with an odd local length.</exception>
    /// <exception cref="ShapeMismatchException">The shapes do not fit.</exception>
    public void Backward(Tensor q, Tensor k, Tensor v, Tensor output, Tensor lse, Tensor dOutput, bool causal, double scale, Tensor dq, Tensor dk, Tensor dv)
    {
        SequenceChecks.Attention("ring attention backward", q, k, v, output, lse, requireSameLength: true);
        SequenceChecks.Gradients("ring attention backward", q, k, dOutput, dq, dk, dv);
        int chunks = Chunks(q, causal);
        int sp = _group.Size, rank = _group.Rank;
        var ct = AttentionBlocks.ComputeDType(q.DType);
        using var blocks = new AttentionBlocks(_ops);
        var queries = blocks.SplitChunks(q, chunks, ct);
        var outputs = blocks.SplitChunks(output, chunks, ct);
        var dOutputs = blocks.SplitChunks(dOutput, chunks, ct);
        var kvShape = AttentionBlocks.ChunkMajorShape(k.Shape, chunks);
        var current = blocks.Zeros(Packed(4, kvShape), ct);
        var next = sp > 1 ? blocks.Empty(current.Shape, ct) : current;
        blocks.SplitChunks(k, chunks, AttentionBlocks.Chunk(current, 0));
        blocks.SplitChunks(v, chunks, AttentionBlocks.Chunk(current, 1));

        // The global lse: F32 work reads the saved one; F64 rebuilds it in F64 (the saved one is F32) with one pass of
        // the keys alone, keeping each block's own lse for the gradient pass.
        Tensor lses;
        Dictionary<(int Step, int A, int B), Tensor>? blockLses = null;
        if (ct == DType.F64)
        {
            (lses, blockLses) = GlobalLse(blocks, queries, AttentionBlocks.Chunk(current, 0), causal, chunks, scale);
        }
        else
        {
            lses = blocks.SplitChunks(lse, chunks, ct);
        }

        var dQueries = blocks.Zeros(queries.Shape, ct);
        var chunkShape = AttentionBlocks.Chunk(queries, 0).Shape;
        var kvChunkShape = kvShape.ToArray()[1..];
        var dqPart = blocks.Empty(chunkShape, ct);
        var dkPart = blocks.Empty(new Shape(kvChunkShape), ct);
        var dvPart = blocks.Empty(new Shape(kvChunkShape), ct);
        var scaledDo = blocks.Empty(chunkShape, ct);
        var lseShape = AttentionBlocks.Chunk(lses, 0).Shape;
        var computedLse = blockLses is null ? blocks.Empty(lseShape, ct) : null;
        var kernelLse = ct == DType.F32 ? null : blocks.Empty(lseShape, DType.F32);

        for (int step = 0; step < sp; step++)
        {
            int source = (rank - step + sp) % sp;
            for (int a = 0; a < chunks; a++)
            {
                for (int b = 0; b < chunks; b++)
                {
                    var seen = See(causal, chunks, sp, rank, a, source, b);
                    if (seen == Visibility.None)
                    {
                        continue;
                    }
                    bool diagonal = seen == Visibility.Diagonal;
                    var qa = AttentionBlocks.Chunk(queries, a);
                    var kb = AttentionBlocks.Chunk(AttentionBlocks.Chunk(current, 0), b);
                    var vb = AttentionBlocks.Chunk(AttentionBlocks.Chunk(current, 1), b);
                    var oa = AttentionBlocks.Chunk(outputs, a);
                    // This block's own softmax is P_block = P · exp(lse − lse_block); dOutput scaled by
                    // exp(lse_block − lse) turns its gradient into this block's share of the global one.
                    var own = blockLses?[(step, a, b)] ?? computedLse!;
                    if (blockLses is null)
                    {
                        blocks.LogSumExp(qa, kb, diagonal, scale, own);
                    }
                    blocks.ScaleRows(AttentionBlocks.Chunk(dOutputs, a), own, AttentionBlocks.Chunk(lses, a), scaledDo);
                    var ownF32 = own;
                    if (kernelLse is not null)
                    {
                        _ops.Cast(own, kernelLse);
                        ownF32 = kernelLse;
                    }
                    _ops.AttentionBackward(qa, kb, vb, oa, ownF32, scaledDo, diagonal, scale, dqPart, dkPart, dvPart);
                    blocks.AddInto(dqPart, AttentionBlocks.Chunk(dQueries, a));
                    blocks.AddInto(dkPart, AttentionBlocks.Chunk(AttentionBlocks.Chunk(current, 2), b));
                    blocks.AddInto(dvPart, AttentionBlocks.Chunk(AttentionBlocks.Chunk(current, 3), b));
                }
            }
            if (step < sp - 1)
            {
                Rotate(current, next, compute: null);
                (current, next) = (next, current);
            }
        }
        var gradients = current;
        if (sp > 1)
        {
            // The block in hand belongs to the next rank: send its dk/dv home and receive this rank's own.
            long half = current.ElementCount / 2;
            var sums = current.Shape.With(0, 2);
            Rotate(current.View(half, sums), next.View(half, sums), compute: null);
            gradients = next;
        }
        blocks.JoinChunks(dQueries, chunks, dq);
        blocks.JoinChunks(AttentionBlocks.Chunk(gradients, 2), chunks, dk);
        blocks.JoinChunks(AttentionBlocks.Chunk(gradients, 3), chunks, dv);
    }

    /// <summary>Nothing to free: scratch lives for one call. Present so a caller can scope the ring with its group.</summary>
    public void Dispose()
    {
    }

    /// <summary>
    /// The global lse in F64, chunk-major [n, B, H, Tc], from a pass of the key blocks alone, and each visible
    /// (step, query chunk, key chunk) block's own lse, kept for the gradient pass.
    /// </summary>
    private (Tensor Global, Dictionary<(int Step, int A, int B), Tensor> Blocks) GlobalLse(
        AttentionBlocks blocks, Tensor queries, Tensor keys, bool causal, int chunks, double scale)
    {
        int sp = _group.Size, rank = _group.Rank;
        var ct = queries.DType;
        var global = blocks.Empty(new Shape(queries.Shape.ToArray()[..4]), ct);
        var perBlock = new Dictionary<(int, int, int), Tensor>();
        var current = blocks.Empty(keys.Shape, ct);
        _ops.Copy(keys, current);
        var next = sp > 1 ? blocks.Empty(keys.Shape, ct) : current;
        var merged = new bool[chunks];
        for (int step = 0; step < sp; step++)
        {
            int source = (rank - step + sp) % sp;
            var held = current;
            void Compute()
            {
                for (int a = 0; a < chunks; a++)
                {
                    for (int b = 0; b < chunks; b++)
                    {
                        var seen = See(causal, chunks, sp, rank, a, source, b);
                        if (seen == Visibility.None)
                        {
                            continue;
                        }
                        var own = blocks.Empty(AttentionBlocks.Chunk(global, a).Shape, ct);
                        blocks.LogSumExp(AttentionBlocks.Chunk(queries, a), AttentionBlocks.Chunk(held, b), seen == Visibility.Diagonal, scale, own);
                        perBlock[(step, a, b)] = own;
                        if (merged[a])
                        {
                            blocks.Merge(null, AttentionBlocks.Chunk(global, a), null, own);
                        }
                        else
                        {
                            _ops.Copy(own, AttentionBlocks.Chunk(global, a));
                        }
                        merged[a] = true;
                    }
                }
            }
            if (step == sp - 1)
            {
                Compute();
            }
            else
            {
                Rotate(current, next, Compute);
                (current, next) = (next, current);
            }
        }
        return (global, perBlock);
    }

    /// <summary>
    /// Sends <paramref name="send"/> to the next rank and receives <paramref name="receive"/> from the previous one,
    /// running <paramref name="compute"/> in between. Even ranks send first and odd ranks receive first, so blocking
    /// sends (MPI) cannot all wait on each other; with buffered sends (in-process) the even ranks' compute overlaps
    /// the transfer.
    /// </summary>
    private void Rotate(Tensor send, Tensor receive, Action? compute)
    {
        int sp = _group.Size, rank = _group.Rank;
        int nextRank = (rank + 1) % sp, previousRank = (rank - 1 + sp) % sp;
        if (rank % 2 == 0)
        {
            _group.Send(send, nextRank);
            compute?.Invoke();
            _group.Recv(receive, previousRank);
        }
        else
        {
            _group.Recv(receive, previousRank);
            compute?.Invoke();
            _group.Send(send, nextRank);
        }
        BytesSent += send.SizeInBytes;
    }

    /// <summary>How query chunk a of <paramref name="rank"/> sees key chunk b of <paramref name="source"/>.</summary>
    private static Visibility See(bool causal, int chunks, int sp, int rank, int a, int source, int b)
    {
        if (!causal)
        {
            return Visibility.Full;
        }
        int queryChunk = GlobalChunk(chunks, sp, rank, a);
        int keyChunk = GlobalChunk(chunks, sp, source, b);
        return keyChunk < queryChunk ? Visibility.Full : keyChunk == queryChunk ? Visibility.Diagonal : Visibility.None;
    }

    private static int GlobalChunk(int chunks, int sp, int rank, int local) =>
        chunks == 1 ? rank : local == 0 ? rank : (2 * sp) - 1 - rank;

    private static int Chunks(Tensor q, bool causal)
    {
        if (causal && q.Shape[2] % 2 != 0)
        {
            throw new ArgumentException(
                $"causal ring attention uses the zig-zag placement (two chunks per rank), so the local length must be even; got {q.Shape[2]} (make T a multiple of 2·sp)",
                nameof(q));
        }
        return causal ? 2 : 1;
    }

    private static Shape Packed(int parts, Shape chunkMajor)
    {
        var dims = new int[chunkMajor.Rank + 1];
        dims[0] = parts;
        chunkMajor.Dims.CopyTo(dims.AsSpan(1));
        return new Shape(dims);
    }
}
