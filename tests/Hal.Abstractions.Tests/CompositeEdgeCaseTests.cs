namespace Hal.Abstractions.Tests;

// Edge values (±Inf, NaN) and empty shapes through the composite path. Shapes as in the per-op test files.
public sealed class CompositeEdgeCaseTests : CompositeTestBase
{
    [Fact]
    public void SoftmaxGivesZeroToNegativeInfinityAndPropagatesNaN()
    {
        double ninf = double.NegativeInfinity;
        using var x = Upload([0, ninf, 0, ninf, 1, double.NaN, 2, 3, 1e300, 0, ninf, 1e300], DType.F64, 3, 4);
        using var y = Ops.Empty(new Shape(3, 4), DType.F64);
        Ops.Softmax(x, y);
        var r = Download(y);
        // Row 0: two equal finite logits share the mass, −Inf gets exactly 0.
        Assert.Equal([0.5, 0, 0.5, 0], r[..4]);
        // Row 1: a NaN logit makes the row NaN.
        Assert.All(r[4..8], v => Assert.True(double.IsNaN(v), $"row 1 gave {v}"));
        // Row 2: huge logits do not overflow thanks to the max shift.
        Assert.Equal([0.5, 0, 0, 0.5], r[8..]);

        Ops.LogSoftmax(x, y);
        var l = Download(y);
        Assert.Equal(ninf, l[1]);
        Assert.Equal(-Math.Log(2), l[0], 15);
    }

    [Fact]
    public void CrossEntropyOfACertainPredictionIsZeroAndInfiniteLogitsElsewhereDoNotLeak()
    {
        // Target 0 has logit 0 and every other logit is −Inf: softmax is one-hot, loss 0, gradient 0.
        double ninf = double.NegativeInfinity;
        using var logits = Upload([0, ninf, ninf, 5, 1, 2], DType.F32, 2, 3);
        using var targets = UploadIndices([0, -1], DType.I64, 2);
        using var losses = Ops.Empty(new Shape(2), DType.F32);
        using var lse = Ops.Empty(new Shape(2), DType.F32);
        Ops.CrossEntropy(logits, targets, losses, lse);
        Assert.Equal([0.0, 0.0], Download(losses));
        Assert.Equal(0.0, Download(lse)[0]);
        using var dl = Upload([1, 1], DType.F32, 2);
        using var dx = Ops.Empty(new Shape(2, 3), DType.F32);
        Ops.CrossEntropyBackward(logits, targets, lse, dl, dx);
        Assert.Equal([0.0, 0, 0, 0, 0, 0], Download(dx));
    }

    [Fact]
    public void ActivationBackwardHandlesInfinitiesWhereTheDerivativeIsFinite()
    {
        // Relu, Tanh and Sigmoid have derivatives 1/0, 0, 0 at ±Inf that their formulas give without Inf·0.
        using var x = Upload([double.PositiveInfinity, double.NegativeInfinity], DType.F32, 2);
        using var dy = Upload([1, 1], DType.F32, 2);
        using var dx = Ops.Empty(new Shape(2), DType.F32);
        Ops.ActivationBackward(UnaryOp.Relu, x, dy, dx);
        Assert.Equal([1.0, 0.0], Download(dx));
        Ops.ActivationBackward(UnaryOp.Tanh, x, dy, dx);
        Assert.Equal([0.0, 0.0], Download(dx));
        Ops.ActivationBackward(UnaryOp.Sigmoid, x, dy, dx);
        Assert.Equal([0.0, 0.0], Download(dx));
    }

    [Fact]
    public void EmptyShapesAreNoOpsOrGiveTheEmptyReductionValues()
    {
        using var empty = Ops.Empty(new Shape(0, 5), DType.F32);
        using var emptyOut = Ops.Empty(new Shape(0, 5), DType.F32);
        Ops.Softmax(empty, emptyOut);
        Ops.LogSoftmaxBackward(empty, empty, emptyOut);
        using var w = Ops.Full(new Shape(5), 1, DType.F32);
        using var noRows = Ops.Empty(new Shape(0), DType.F32);
        Ops.LayerNorm(empty, w, null, 1e-5, emptyOut, noRows, noRows);
        using var dw = Ops.Full(new Shape(5), 7, DType.F32);
        Ops.RmsNormBackward(empty, empty, w, noRows, emptyOut, dw);
        // No rows: the weight gradient is an empty sum.
        Assert.Equal([0.0, 0, 0, 0, 0], Download(dw));

        // Attention with no keys: every row sees nothing, so output 0 and lse −Inf.
        using var q = Ops.Full(new Shape(1, 2, 3, 4), 1, DType.F32);
        using var kv = Ops.Empty(new Shape(1, 1, 0, 4), DType.F32);
        using var o = Ops.Full(new Shape(1, 2, 3, 4), 9, DType.F32);
        using var lse = Ops.Empty(new Shape(1, 2, 3), DType.F32);
        Ops.Attention(q, kv, kv, false, 1, o, lse);
        Assert.All(Download(o), v => Assert.Equal(0.0, v));
        Assert.All(Download(lse), v => Assert.Equal(double.NegativeInfinity, v));

        // Quantising rows of no columns: the scale of an (empty, so all-zero) row is 1.
        using var x = Ops.Empty(new Shape(2, 0), DType.F32);
        using var qz = Ops.Empty(new Shape(2, 0), DType.I8);
        using var scale = Ops.Empty(new Shape(2), DType.F32);
        Ops.QuantizeInt8(x, qz, scale);
        Assert.Equal([1.0, 1.0], Download(scale));

        // Embedding of no ids leaves a zero gradient table.
        using var table = Ops.Full(new Shape(3, 2), 1, DType.F32);
        using var ids = Ops.Empty(new Shape(0), DType.I64);
        using var rows = Ops.Empty(new Shape(0, 2), DType.F32);
        Ops.Embedding(table, ids, rows);
        Ops.EmbeddingBackward(rows, ids, table);
        Assert.Equal([0.0, 0, 0, 0, 0, 0], Download(table));
    }
}
