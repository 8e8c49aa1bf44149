namespace Hal.Parallel.TensorParallel;

// Legend: p tp ranks, N rows, V vocabulary, Vl = ⌈V/p⌉ logit columns per rank (see VocabShard), S the statistics
// dtype (F64 for F64 logits, F32 otherwise).

/// <summary>
/// Softmax cross-entropy over logits split by vocabulary columns, without gathering them: per row, the global max m is
/// an all-reduce Max of the local maxima; then the local sums of exp(logit − m) and the target's logit (picked by the
/// rank whose columns hold it, 0 elsewhere) travel in one all-reduce Sum; lse = m + log Σ and loss = lse − logit[target].
/// A negative target is ignored: loss 0 and gradient 0, while the row still counts in the mean's N (as the fused
/// single-device cross-entropy). Padding columns (at or past V) are masked to −∞. Backward needs no communication:
/// dlogits_local = (exp(logits_local − lse) − onehot_local)·lossScale/N. Saved between the calls: the logits and targets
/// by reference, and lse [N].
/// </summary>
public sealed class VocabParallelCrossEntropy : IDisposable
{
    private const string Prefix = "vocab.ce";
    private readonly TensorParallelGroup _group;
    private Tensor? _logits, _targets, _padMask;

    /// <summary>A loss over a V-column vocabulary split over the ranks of <paramref name="tpGroup"/>.</summary>
    /// <exception cref="ArgumentNullException">A null argument.</exception>
    /// <exception cref="ArgumentException"><paramref name="ops"/> works on another device than the group.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="vocabSize"/> below 1.</exception>
    public VocabParallelCrossEntropy(Ops ops, ICommunicator tpGroup, int vocabSize)
    {
        _group = new TensorParallelGroup(ops, tpGroup);
        Shard = new VocabShard(vocabSize, tpGroup.Size, tpGroup.Rank);
    }

    /// <summary>A loss over the columns <paramref name="shard"/> names on each rank of <paramref name="tpGroup"/> (a layout's own padding).</summary>
    /// <exception cref="ArgumentNullException">A null argument.</exception>
    /// <exception cref="ArgumentException">The shard is not for this group's size and rank, or <paramref name="ops"/> works on another device.</exception>
    public VocabParallelCrossEntropy(Ops ops, ICommunicator tpGroup, VocabShard shard)
    {
        ArgumentNullException.ThrowIfNull(tpGroup);
        ArgumentNullException.ThrowIfNull(shard);
        if (shard.TpSize != tpGroup.Size || shard.Rank != tpGroup.Rank)
        {
            throw new ArgumentException($"vocab-parallel cross-entropy: the shard is rank {shard.Rank} of {shard.TpSize}, the group's rank {tpGroup.Rank} of {tpGroup.Size}", nameof(shard));
        }
        _group = new TensorParallelGroup(ops, tpGroup);
        Shard = shard;
    }

    /// <summary>This rank's vocabulary columns.</summary>
    public VocabShard Shard { get; }

    /// <summary>Bytes this rank has sent so far (ring count, see <see cref="SequenceParallelRegion"/>).</summary>
    public long BytesCommunicated => _group.BytesCommunicated;

    /// <summary>lse [N] (S) of the latest <see cref="Forward"/>, the same on every rank.</summary>
    /// <exception cref="InvalidOperationException">Before any forward.</exception>
    public Tensor Lse => _group.Existing(Prefix + ".lse") is { } lse ? lse.Reshape(lse.Shape[0]) : throw new InvalidOperationException("vocab-parallel cross-entropy: no forward yet");

    /// <summary>
    /// Per-row losses [N] (S; a buffer of this object, overwritten by the next forward) from this rank's logits
    /// [N, Vl] (any float dtype) and the targets [N] (I32/I64 in [0, V), or negative = ignored), the same on every
    /// rank. Collective: two all-reduces.
    /// </summary>
    /// <exception cref="ArgumentException">The shapes or dtypes do not fit.</exception>
    public Tensor Forward(Tensor logits, Tensor targets)
    {
        Check(logits, targets);
        var ops = _group.Ops;
        int n = logits.Shape[0];
        var stat = StatDType(logits.DType);
        var column = new Shape(n, 1);
        _logits = logits;
        _targets = targets;
        var z = Widened(logits, stat);
        var (index, keep) = Masks(targets, stat);
        // sums and picked share one buffer so a single all-reduce carries both.
        var stats = _group.Scratch(Prefix + ".stats", new Shape(2, n), stat);
        var sums = stats.View(0, column);
        var picked = stats.View(n, column);
        // Picked before the padding mask: a clamped index may point at a padding column, and −∞·0 would be NaN.
        ops.Gather(z, 1, index.Reshape(n, 1), picked);
        ops.Binary(BinaryOp.Mul, picked, keep, picked);
        MaskPadding(z);
        var max = _group.Scratch(Prefix + ".max", column, stat);
        ops.Reduce(ReduceOp.Max, z, 1, max);
        _group.AllReduce(max, ReduceOp.Max);
        ops.Binary(BinaryOp.Sub, z, max, z);
        ops.Unary(UnaryOp.Exp, z, z);
        ops.Reduce(ReduceOp.Sum, z, 1, sums);
        _group.AllReduce(stats, ReduceOp.Sum);
        var lse = _group.Scratch(Prefix + ".lse", column, stat);
        ops.Unary(UnaryOp.Log, sums, lse);
        ops.Binary(BinaryOp.Add, lse, max, lse);
        var losses = _group.Scratch(Prefix + ".losses", column, stat);
        VocabMask.NonNegative(_group, Prefix, targets, keep);
        ops.Binary(BinaryOp.Sub, lse, picked, losses);
        ops.Binary(BinaryOp.Mul, losses, keep, losses);
        return losses.Reshape(n);
    }

    /// <summary>
    /// Backward of lossScale · mean over the N rows of the forward's losses: dLogits [N, Vl] (the logits' dtype; may be
    /// the logits tensor itself) = (softmax − onehot)·lossScale/N on rows with a real target, 0 on ignored rows and on
    /// padding columns. No communication.
    /// </summary>
    /// <exception cref="InvalidOperationException">Before <see cref="Forward"/>.</exception>
    /// <exception cref="ShapeMismatchException">dLogits is not shaped like the logits.</exception>
    public void Backward(double lossScale, Tensor dLogits)
    {
        ArgumentNullException.ThrowIfNull(dLogits);
        var logits = _logits ?? throw new InvalidOperationException("vocab-parallel cross-entropy: backward before forward");
        var targets = _targets!;
        if (dLogits.Shape != logits.Shape || dLogits.DType != logits.DType)
        {
            throw new ShapeMismatchException("vocab-parallel cross-entropy backward", logits.Shape, dLogits.Shape, $"dLogits must be {logits.DType.Name()} like the logits");
        }
        var ops = _group.Ops;
        int n = logits.Shape[0];
        var stat = StatDType(logits.DType);
        var z = Widened(logits, stat);
        MaskPadding(z);
        ops.Binary(BinaryOp.Sub, z, _group.Existing(Prefix + ".lse")!, z);
        ops.Unary(UnaryOp.Exp, z, z);
        var (index, keep) = Masks(targets, stat);
        ops.Unary(UnaryOp.Neg, keep, keep);
        ops.ScatterAdd(keep, 1, index.Reshape(n, 1), z);
        // rowScale = lossScale/N for a real target, 0 for an ignored one.
        var rowScale = _group.Scratch(Prefix + ".rowscale", new Shape(n, 1), stat);
        VocabMask.NonNegative(_group, Prefix, targets, rowScale);
        ops.Binary(BinaryOp.Mul, rowScale, _group.Constant(lossScale / n, stat), rowScale);
        ops.Binary(BinaryOp.Mul, z, rowScale, z);
        if (z.DType == dLogits.DType)
        {
            ops.Copy(z, dLogits);
        }
        else
        {
            ops.Cast(z, dLogits);
        }
    }

    /// <summary>Frees lse and the scratch.</summary>
    public void Dispose()
    {
        _padMask?.Dispose();
        _group.Dispose();
    }

    /// <summary>A copy of the logits in S (never the logits themselves: they stay intact for backward).</summary>
    private Tensor Widened(Tensor logits, DType stat)
    {
        var z = _group.Scratch(Prefix + ".z", logits.Shape, stat);
        if (logits.DType == stat)
        {
            _group.Ops.Copy(logits, z);
        }
        else
        {
            _group.Ops.Cast(logits, z);
        }
        return z;
    }

    /// <summary>z [N, Vl] += [0 … 0, −∞ … −∞] (−∞ on the padding columns), when this shard has padding.</summary>
    private void MaskPadding(Tensor z)
    {
        if (Shard.ValidRows == Shard.LocalRows)
        {
            return;
        }
        if (_padMask is null || _padMask.DType != z.DType)
        {
            _padMask?.Dispose();
            var values = new double[Shard.LocalRows];
            Array.Fill(values, double.NegativeInfinity, Shard.ValidRows, Shard.LocalRows - Shard.ValidRows);
            _padMask = _group.Ops.FromArray(values, new Shape(1, Shard.LocalRows), z.DType);
        }
        _group.Ops.Binary(BinaryOp.Add, z, _padMask, z);
    }

    private (Tensor Index, Tensor Keep) Masks(Tensor targets, DType stat)
    {
        int n = (int)targets.ElementCount;
        var index = _group.Scratch(Prefix + ".index", new Shape(n), targets.DType);
        var keep = _group.Scratch(Prefix + ".keep", new Shape(n, 1), stat);
        VocabMask.InRange(_group, Prefix, targets, Shard.Start, Shard.LocalRows, index, keep);
        return (index, keep);
    }

    private void Check(Tensor logits, Tensor targets)
    {
        ArgumentNullException.ThrowIfNull(logits);
        ArgumentNullException.ThrowIfNull(targets);
        if (logits.Rank != 2 || logits.Shape[1] != Shard.LocalRows || !logits.DType.IsFloatingPoint()
            || targets.Shape != new Shape(logits.Shape[0]) || !targets.DType.IsIndex())
        {
            throw new ArgumentException(
                $"vocab-parallel cross-entropy: logits must be float [N, {Shard.LocalRows}] (V {Shard.VocabSize} over tp {Shard.TpSize}, padded) " +
                $"and targets I32/I64 [N], not {logits.DType.Name()} {logits.Shape} and {targets.DType.Name()} {targets.Shape}",
                nameof(logits));
        }
    }

    /// <summary>Row statistics are F64 for F64 logits (the reference path) and F32 otherwise.</summary>
    private static DType StatDType(DType compute) => compute == DType.F64 ? DType.F64 : DType.F32;
}
