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
    public void CrossEntropyIgnoredRowsLoseNothingEvenWithNonFiniteLogitsAndAllNegativeInfinityRowsHaveLseNegativeInfinity()
    {
        // Row 0 is ignored and holds a NaN logit: its loss is still exactly 0 (its lse NaN). Row 1 is ignored and holds
        // +Inf: loss 0. Row 2 has only −Inf logits: lse = log 0 = −Inf. Row 3 is ordinary: log 2 − 0 with logits {0, 0}.
        double ninf = double.NegativeInfinity;
        foreach (var dtype in new[] { DType.F32, DType.F64 })
        {
            using var logits = Upload([double.NaN, 1, double.PositiveInfinity, 1, ninf, ninf, 0, 0], dtype, 4, 2);
            using var targets = UploadIndices([-1, -100, 0, 1], DType.I32, 4);
            using var losses = Ops.Empty(new Shape(4), DType.F32);
            using var lse = Ops.Empty(new Shape(4), DType.F32);
            Ops.CrossEntropy(logits, targets, losses, lse);
            var l = Download(losses);
            var e = Download(lse);
            Assert.Equal(0.0, l[0]);
            Assert.Equal(0.0, l[1]);
            Assert.Equal(ninf, e[2]);
            Assert.True(double.IsNaN(e[0]), $"{dtype}: lse of a row with NaN gave {e[0]}");
            Assert.Equal(Math.Log(2), e[3], 6);
            Assert.Equal(Math.Log(2), l[3], 6);

            // Backward: the ignored rows' gradients are exactly 0 (NaN and +Inf logits included); row 3 is
            // softmax − onehot = (½, −½).
            using var dl = Upload([1, 1, 1, 1], DType.F32, 4);
            using var dx = Ops.Empty(new Shape(4, 2), dtype);
            Ops.CrossEntropyBackward(logits, targets, lse, dl, dx);
            var d = Download(dx);
            Assert.Equal([0.0, 0, 0, 0], d[..4]);
            // lse is stored in F32, so p = exp(x − lse) is off by ~2⁻²⁴·log 2 even for F64 logits: 1e-6 covers it.
            Assert.Equal(0.5, d[6], 1e-6);
            Assert.Equal(-0.5, d[7], 1e-6);
        }
    }

    [Fact]
    public void ActivationBackwardHandlesInfinitiesAndNaN()
    {
        // Derivatives at +Inf and −Inf: Relu, Silu and the GELUs 1 and 0; Tanh and Sigmoid 0 and 0; NaN stays NaN.
        foreach (var dtype in new[] { DType.F32, DType.F64 })
        {
            using var x = Upload([double.PositiveInfinity, double.NegativeInfinity, double.NaN], dtype, 3);
            using var dy = Upload([1, 1, 1], dtype, 3);
            using var dx = Ops.Empty(new Shape(3), dtype);
            foreach (var op in CompositeElementwiseTests.Activations)
            {
                Ops.ActivationBackward(op, x, dy, dx);
                var r = Download(dx);
                double[] expected = op is UnaryOp.Tanh or UnaryOp.Sigmoid ? [0, 0] : [1, 0];
                Assert.Equal(expected, r[..2]);
                Assert.True(double.IsNaN(r[2]), $"{op} {dtype} at NaN gave {r[2]}");
            }
        }
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

    [Fact]
    public void AllocatingFormsMatchTheOutputForms()
    {
        var values = RandomValues(81, 12, 2);
        using var x = Upload(values, DType.F64, 3, 4);
        using var w = Ops.Full(new Shape(4), 1.5, DType.F64);
        using var y = Ops.Empty(new Shape(3, 4), DType.F64);
        Ops.Softmax(x, y);
        using (var s = Ops.Softmax(x))
        {
            Assert.Equal(Download(y), Download(s));
        }
        var (ln, mean, rstd) = Ops.LayerNorm(x, w, null, 1e-5);
        using (ln)
        using (mean)
        using (rstd)
        {
            Assert.Equal(new Shape(3), mean.Shape);
            using var m2 = Ops.Empty(new Shape(3), DType.F32);
            using var r2 = Ops.Empty(new Shape(3), DType.F32);
            Ops.LayerNorm(x, w, null, 1e-5, y, m2, r2);
            Assert.Equal(Download(y), Download(ln));
            Assert.Equal(Download(r2), Download(rstd));
        }
        using var ids = UploadIndices([2, 0], DType.I64, 2);
        using var rows = Ops.Embedding(x, ids);
        Assert.Equal(new Shape(2, 4), rows.Shape);
        Assert.Equal(values[8..12].Concat(values[..4]).ToArray(), Download(rows));
        // A bad call frees what it allocated and raises the entry point's exception.
        using var badWeight = Ops.Empty(new Shape(5), DType.F64);
        Assert.Equal("layer-norm", Assert.Throws<ShapeMismatchException>(() => Ops.LayerNorm(x, badWeight, null, 1e-5)).Op);
    }

    [Fact]
    public void CompositesFreeEveryTemporary()
    {
        using var q = Upload(RandomValues(91, 2 * 4 * 3 * 2, 1), DType.BF16, 2, 4, 3, 2);
        using var kv = Upload(RandomValues(92, 2 * 2 * 5 * 2, 1), DType.BF16, 2, 2, 5, 2);
        using var o = Ops.Empty(q.Shape, DType.BF16);
        using var lse = Ops.Empty(new Shape(2, 4, 3), DType.F32);
        using var dq = Ops.Empty(q.Shape, DType.BF16);
        using var dk = Ops.Empty(kv.Shape, DType.BF16);
        using var dv = Ops.Empty(kv.Shape, DType.BF16);
        using var p = Upload(RandomValues(93, 6), DType.BF16, 6);
        using var m = Ops.Zeros(new Shape(6), DType.F32);
        using var v = Ops.Zeros(new Shape(6), DType.F32);
        long before = Device.Allocator.Stats.BytesInUse;
        Ops.Attention(q, kv, kv, true, 0.5, o, lse);
        Ops.AttentionBackward(q, kv, kv, o, lse, o, true, 0.5, dq, dk, dv);
        Ops.Lamb(p, p, m, v, new AdamWConfig(0.1), 1);
        Ops.ActivationBackward(UnaryOp.GeluErf, p, p, p);
        // Every temporary (16-bit casts, scores, masks, index constants, scalars) is released before the call returns.
        Assert.Equal(before, Device.Allocator.Stats.BytesInUse);
    }
}

