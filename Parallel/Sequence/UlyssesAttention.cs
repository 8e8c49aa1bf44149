namespace Hal.Parallel.Sequence;

// Legend: B batch, H query heads, Hkv key/value heads, sp ranks, T full length, Tl = T/sp local tokens (contiguous:
// rank r holds [r·Tl, (r+1)·Tl)), Hs = H/sp heads per rank after the exchange, D head size (1 for lse).
// Sequence-sharded x [B, H, Tl, D] ⇄ head-sharded [B, Hs, T, D]; the all-to-all message is [sp, B, Hs, Tl, D]
// (block j: heads j·Hs.. of the local tokens going out, or rank j's tokens of this rank's heads coming in).

/// <summary>
/// Sequence-parallel attention by re-sharding: an all-to-all turns sequence-sharded q, k, v into head-sharded ones
/// holding the whole sequence, each rank runs the fused kernel on its heads, and a second all-to-all returns the output
/// (and lse) to sequence sharding. Exact (the kernel sees every key), with communication independent of the mask;
/// it needs the heads (query and key/value) divisible by sp.
/// </summary>
public sealed class UlyssesAttention : IDisposable
{
    private readonly Ops _ops;
    private readonly ICommunicator _group;

    /// <summary>Re-sharding attention over the ranks of <paramref name="spGroup"/>, computing with <paramref name="ops"/>.</summary>
    /// <exception cref="ArgumentNullException">A null argument.</exception>
    /// <exception cref="ArgumentException"><paramref name="ops"/> works on another device than the group.</exception>
    public UlyssesAttention(Ops ops, ICommunicator spGroup)
    {
        ArgumentNullException.ThrowIfNull(ops);
        ArgumentNullException.ThrowIfNull(spGroup);
        SequenceChecks.SameDevice(ops, spGroup);
        _ops = ops;
        _group = spGroup;
    }

    /// <summary>Bytes this rank has sent to other ranks so far: (sp−1)/sp of every all-to-all message (its own block stays).</summary>
    public long BytesSent { get; private set; }

    /// <summary>output [B, H, Tl, D] and lse [B, H, Tl] (F32) of this rank's tokens over the whole sequence. Collective over the group.</summary>
    /// <exception cref="ArgumentException">H or Hkv is not divisible by sp.</exception>
    /// <exception cref="ShapeMismatchException">The shapes do not fit.</exception>
    public void Forward(Tensor q, Tensor k, Tensor v, bool causal, double scale, Tensor output, Tensor lse)
    {
        SequenceChecks.Attention("ulysses attention", q, k, v, output, lse, requireSameLength: true);
        CheckHeads(q, k);
        using var blocks = new AttentionBlocks(_ops);
        var qh = ToHeads(blocks, q);
        var kh = ToHeads(blocks, k);
        var vh = ToHeads(blocks, v);
        var outputHeads = blocks.Empty(qh.Shape, q.DType);
        var lseHeads = blocks.Empty(new Shape(qh.Shape[0], qh.Shape[1], qh.Shape[2]), DType.F32);
        _ops.Attention(qh, kh, vh, causal, scale, outputHeads, lseHeads);
        ToSequence(blocks, outputHeads, output);
        ToSequence(blocks, AsRows(lseHeads), AsRows(lse));
    }

    /// <summary>dq [B, H, Tl, D], dk and dv [B, Hkv, Tl, D] from the output and lse of <see cref="Forward"/>. Collective over the group.</summary>
    /// <exception cref="ArgumentException">H or Hkv is not divisible by sp.</exception>
    /// <exception cref="ShapeMismatchException">The shapes do not fit.</exception>
    public void Backward(Tensor q, Tensor k, Tensor v, Tensor output, Tensor lse, Tensor dOutput, bool causal, double scale, Tensor dq, Tensor dk, Tensor dv)
    {
        SequenceChecks.Attention("ulysses attention backward", q, k, v, output, lse, requireSameLength: true);
        SequenceChecks.Gradients("ulysses attention backward", q, k, dOutput, dq, dk, dv);
        CheckHeads(q, k);
        using var blocks = new AttentionBlocks(_ops);
        var qh = ToHeads(blocks, q);
        var kh = ToHeads(blocks, k);
        var vh = ToHeads(blocks, v);
        var oh = ToHeads(blocks, output);
        var doh = ToHeads(blocks, dOutput);
        var lseh = ToHeads(blocks, AsRows(lse));
        var dqh = blocks.Empty(qh.Shape, q.DType);
        var dkh = blocks.Empty(kh.Shape, k.DType);
        var dvh = blocks.Empty(vh.Shape, v.DType);
        _ops.AttentionBackward(qh, kh, vh, oh, lseh.Reshape(qh.Shape[0], qh.Shape[1], qh.Shape[2]), doh, causal, scale, dqh, dkh, dvh);
        ToSequence(blocks, dqh, dq);
        ToSequence(blocks, dkh, dk);
        ToSequence(blocks, dvh, dv);
    }

    /// <summary>Nothing to free: scratch lives for one call.</summary>
    public void Dispose()
    {
    }

    private void CheckHeads(Tensor q, Tensor k)
    {
        int sp = _group.Size;
        if (q.Shape[1] % sp != 0 || k.Shape[1] % sp != 0)
        {
            throw new ArgumentException(
                $"Ulysses attention splits heads over the sp ranks: heads must be divisible by sp = {sp}, got {q.Shape[1]} query and {k.Shape[1]} key/value heads " +
                "(choose sp dividing both, or use ring attention)",
                nameof(q));
        }
    }

    /// <summary>lse [B, H, T] viewed as [B, H, T, 1], so it moves like a tensor with head size 1.</summary>
    private static Tensor AsRows(Tensor lse) => lse.Reshape(lse.Shape[0], lse.Shape[1], lse.Shape[2], 1);

    /// <summary>[B, H, Tl, D] sequence-sharded → [B, H/sp, T, D] head-sharded (a new scratch tensor).</summary>
    private Tensor ToHeads(AttentionBlocks blocks, Tensor x)
    {
        int sp = _group.Size;
        int b = x.Shape[0], heads = x.Shape[1] / sp, tl = x.Shape[2], d = x.Shape[3];
        var send = blocks.Empty(new Shape(sp, b, heads, tl, d), x.DType);
        var receive = blocks.Empty(send.Shape, x.DType);
        int run = heads * tl * d;
        var byRank = x.Reshape(b, sp, run);
        for (int j = 0; j < sp; j++)
        {
            _ops.IndexSelect(byRank, 1, blocks.ChunkIndex(j, sp), AttentionBlocks.Chunk(send, j).Reshape(b, 1, run));
        }
        Exchange(send, receive);
        var result = blocks.Empty(new Shape(b, heads, sp * tl, d), x.DType);
        // IndexAdd into zeros writes each rank's rows exactly; the contract has no strided copy.
        _ops.Fill(result, 0);
        var bySource = result.Reshape(b * heads, sp, tl * d);
        for (int j = 0; j < sp; j++)
        {
            _ops.IndexAdd(AttentionBlocks.Chunk(receive, j).Reshape(b * heads, 1, tl * d), 1, blocks.ChunkIndex(j, sp), bySource);
        }
        return result;
    }

    /// <summary>[B, H/sp, T, D] head-sharded → <paramref name="x"/> [B, H, Tl, D] sequence-sharded.</summary>
    private void ToSequence(AttentionBlocks blocks, Tensor heads, Tensor x)
    {
        int sp = _group.Size;
        int b = heads.Shape[0], hs = heads.Shape[1], tl = heads.Shape[2] / sp, d = heads.Shape[3];
        var send = blocks.Empty(new Shape(sp, b, hs, tl, d), heads.DType);
        var receive = blocks.Empty(send.Shape, heads.DType);
        var byTarget = heads.Reshape(b * hs, sp, tl * d);
        for (int j = 0; j < sp; j++)
        {
            _ops.IndexSelect(byTarget, 1, blocks.ChunkIndex(j, sp), AttentionBlocks.Chunk(send, j).Reshape(b * hs, 1, tl * d));
        }
        Exchange(send, receive);
        int run = hs * tl * d;
        _ops.Fill(x, 0);
        var byRank = x.Reshape(b, sp, run);
        for (int j = 0; j < sp; j++)
        {
            _ops.IndexAdd(AttentionBlocks.Chunk(receive, j).Reshape(b, 1, run), 1, blocks.ChunkIndex(j, sp), byRank);
        }
    }

    private void Exchange(Tensor send, Tensor receive)
    {
        int sp = _group.Size;
        if (sp == 1)
        {
            _ops.Copy(send, receive);
            return;
        }
        _group.AllToAll(send, receive);
        BytesSent += send.SizeInBytes / sp * (sp - 1);
    }
}
