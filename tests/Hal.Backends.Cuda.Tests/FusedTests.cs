namespace Hal.Backends.Cuda.Tests;

/// <summary>
/// Each fused kernel on the emulator against the CPU backend's fused kernel on the same inputs (the CPU backend is
/// itself checked against double loops in its own tests). Row lengths straddle the emulator's 32-thread groups.
/// </summary>
[Collection(EmulatorCollection.Name)]
public sealed class FusedTests(EmulatorFixture fx)
{
    private static readonly int[] Columns = [1, 31, 32, 33, 65];

    /// <summary>
    /// Runs <paramref name="body"/> on both devices and compares every output. Tolerance: both sides evaluate in F32 or
    /// wider and round once, so outputs may differ by a few roundings of the output dtype, measured against the
    /// output's largest magnitude (softmax-like rows and sums mix values of different sizes): 16 eps for F32/F64,
    /// 2 eps for 16-bit types (one rounding on each side). The inputs are of order 1, so a result that cancels to
    /// near zero keeps errors of that order: the bound has a floor of one unit.
    /// </summary>
    private void Agree(string what, DType dtype, Func<Ops, Tensor[]> body)
    {
        var mine = body(fx.Ops);
        var peer = body(fx.CpuOps);
        for (int t = 0; t < mine.Length; t++)
        {
            var got = fx.Ops.ToDoubleArray(mine[t]);
            var want = fx.CpuOps.ToDoubleArray(peer[t]);
            Assert.Equal(want.Length, got.Length);
            double scale = want.Where(double.IsFinite).Select(Math.Abs).DefaultIfEmpty(0).Max();
            DType outType = mine[t].DType.IsFloatingPoint() ? mine[t].DType : DType.F64;
            double eps = outType.Epsilon() * (outType.Is16Bit() ? 2 : 16);
            for (int i = 0; i < got.Length; i++)
            {
                bool ok = Kit.Same(got[i], want[i]) || Math.Abs(got[i] - want[i]) <= eps * (Math.Abs(want[i]) + scale + 1);
                Assert.True(ok, $"{what} {dtype.Name()} output {t} element {i}: cuda {got[i]:R} cpu {want[i]:R}");
            }
            mine[t].Dispose();
            peer[t].Dispose();
        }
    }

    private static Tensor Input(Ops ops, int seed, Shape shape, DType dtype, double lo = -3, double hi = 3) =>
        ops.FromArray(Kit.Representable(Kit.Random(seed, (int)shape.ElementCount, lo, hi), dtype), shape, dtype);

    [Fact]
    public void SoftmaxFamilyAgrees()
    {
        foreach (DType dtype in Kit.FloatTypes)
        {
            foreach (int c in Columns)
            {
                int seed = 100 + c;
                var shape = new Shape(3, c);
                Agree($"softmax C={c} seed {seed}", dtype, ops =>
                {
                    using var x = Input(ops, seed, shape, dtype, -8, 8);
                    using var dy = Input(ops, seed + 1, shape, dtype);
                    var y = ops.Empty(shape, dtype);
                    var ly = ops.Empty(shape, dtype);
                    var dx = ops.Empty(shape, dtype);
                    var ldx = ops.Empty(shape, dtype);
                    ops.Softmax(x, y);
                    ops.LogSoftmax(x, ly);
                    ops.SoftmaxBackward(y, dy, dx);
                    ops.LogSoftmaxBackward(ly, dy, ldx);
                    return [y, ly, dx, ldx];
                });
                Assert.Equal(KernelPath.Fused, fx.Ops.PathFor(FusedOp.Softmax, dtype));
            }
        }
    }

    [Fact]
    public void NormsAgree()
    {
        foreach (DType dtype in Kit.FloatTypes)
        {
            foreach (int c in Columns)
            {
                int seed = 200 + c;
                var shape = new Shape(2, 3, c);
                Agree($"norms C={c} seed {seed}", dtype, ops =>
                {
                    using var x = Input(ops, seed, shape, dtype);
                    using var w = Input(ops, seed + 1, new Shape(c), dtype, 0.5, 1.5);
                    using var b = Input(ops, seed + 2, new Shape(c), dtype);
                    using var dy = Input(ops, seed + 3, shape, dtype);
                    var y = ops.Empty(shape, dtype);
                    var mean = ops.Empty(new Shape(6), DType.F32);
                    var rstd = ops.Empty(new Shape(6), DType.F32);
                    ops.LayerNorm(x, w, b, 1e-5, y, mean, rstd);
                    var dx = ops.Empty(shape, dtype);
                    var dw = ops.Empty(new Shape(c), dtype);
                    var db = ops.Empty(new Shape(c), dtype);
                    ops.LayerNormBackward(dy, x, w, mean, rstd, dx, dw, db);
                    var ry = ops.Empty(shape, dtype);
                    var rr = ops.Empty(new Shape(6), DType.F32);
                    ops.RmsNorm(x, w, 1e-6, ry, rr);
                    var rdx = ops.Empty(shape, dtype);
                    var rdw = ops.Empty(new Shape(c), dtype);
                    ops.RmsNormBackward(dy, x, w, rr, rdx, rdw);
                    return [y, mean, rstd, dx, dw, db, ry, rr, rdx, rdw];
                });
            }
        }
    }

    [Fact]
    public void CrossEntropyAgreesAndIgnoresNegativeTargets()
    {
        foreach (DType dtype in Kit.FloatTypes)
        {
            foreach (int v in Columns)
            {
                int seed = 300 + v;
                Agree($"cross entropy V={v} seed {seed}", dtype, ops =>
                {
                    using var logits = Input(ops, seed, new Shape(4, v), dtype, -5, 5);
                    using var targets = ops.FromArray(new long[] { 0, v - 1, -1, v / 2 }, new Shape(4), DType.I64);
                    using var dl = Input(ops, seed + 1, new Shape(4), DType.F32, 0.5, 2);
                    var losses = ops.Empty(new Shape(4), DType.F32);
                    var lse = ops.Empty(new Shape(4), DType.F32);
                    ops.CrossEntropy(logits, targets, losses, lse);
                    var dlogits = ops.Empty(new Shape(4, v), dtype);
                    ops.CrossEntropyBackward(logits, targets, lse, dl, dlogits);
                    return [losses, lse, dlogits];
                });
            }
        }
    }

    [Fact]
    public void EmbeddingAndRotaryAgree()
    {
        foreach (DType dtype in Kit.FloatTypes)
        {
            const int seed = 400;
            Agree($"embedding seed {seed}", dtype, ops =>
            {
                using var w = Input(ops, seed, new Shape(9, 33), dtype);
                using var ids = ops.FromArray(new long[] { 3, 0, 8, 3, 3, 5, 0 }, new Shape(7), DType.I32);
                using var dy = Input(ops, seed + 1, new Shape(7, 33), dtype);
                var y = ops.Empty(new Shape(7, 33), dtype);
                ops.Embedding(w, ids, y);
                var dw = ops.Empty(new Shape(9, 33), dtype);
                ops.EmbeddingBackward(dy, ids, dw);
                return [y, dw];
            });
            Agree($"rotary seed {seed}", dtype, ops =>
            {
                var shape = new Shape(2, 5, 3, 8);
                using var x = Input(ops, seed + 2, shape, dtype);
                using var cos = Input(ops, seed + 3, new Shape(9, 4), DType.F32, -1, 1);
                using var sin = Input(ops, seed + 4, new Shape(9, 4), DType.F32, -1, 1);
                var y = ops.Empty(shape, dtype);
                ops.Rotary(x, cos, sin, 3, y);
                var dx = ops.Empty(shape, dtype);
                ops.RotaryBackward(x, cos, sin, 3, dx);
                return [y, dx];
            });
        }
    }

    [Theory]
    [InlineData(UnaryOp.Relu)]
    [InlineData(UnaryOp.Tanh)]
    [InlineData(UnaryOp.Sigmoid)]
    [InlineData(UnaryOp.GeluErf)]
    [InlineData(UnaryOp.GeluTanh)]
    [InlineData(UnaryOp.Silu)]
    public void ActivationBackwardAgrees(UnaryOp op)
    {
        foreach (DType dtype in Kit.FloatTypes)
        {
            const int seed = 500;
            Agree($"{op} backward seed {seed}", dtype, ops =>
            {
                using var x = Input(ops, seed, new Shape(65), dtype, -6, 6);
                using var dy = Input(ops, seed + 1, new Shape(65), dtype);
                var dx = ops.Empty(new Shape(65), dtype);
                ops.ActivationBackward(op, x, dy, dx);
                return [dx];
            });
        }
    }

    [Fact]
    public void AdamWAgreesOverThreeSteps()
    {
        foreach (DType dtype in Kit.FloatTypes)
        {
            const int seed = 600;
            var config = new AdamWConfig(1e-2, WeightDecay: 0.1);
            Agree($"adamw seed {seed}", dtype, ops =>
            {
                var p = Input(ops, seed, new Shape(33), dtype);
                var m = ops.Zeros(new Shape(33), DType.F32);
                var v = ops.Zeros(new Shape(33), DType.F32);
                for (int step = 1; step <= 3; step++)
                {
                    using var g = Input(ops, seed + step, new Shape(33), dtype);
                    ops.AdamW(p, g, m, v, config, step);
                }
                return [p, m, v];
            });
        }
    }

    public static TheoryData<int, int, int, int, int, bool> AttentionCases => new()
    {
        { 1, 1, 1, 1, 1, false },
        { 2, 2, 5, 7, 8, true },
        { 1, 4, 33, 33, 16, true },
        { 1, 4, 17, 9, 8, false },
        { 1, 2, 3, 0, 4, false },
    };

    [Theory]
    [MemberData(nameof(AttentionCases))]
    public void AttentionForwardAndBackwardAgree(int batch, int heads, int queryLen, int keyLen, int headDim, bool causal)
    {
        // Two key/value heads when the head count allows (grouped-query attention), else one.
        int kvHeads = heads % 2 == 0 ? heads / 2 : heads;
        double scale = 1 / Math.Sqrt(headDim);
        foreach (DType dtype in new[] { DType.F32, DType.F64, DType.BF16 })
        {
            const int seed = 700;
            Agree($"attention B={batch} H={heads} Tq={queryLen} Tk={keyLen} D={headDim} causal={causal} seed {seed}", dtype, ops =>
            {
                using var q = Input(ops, seed, new Shape(batch, heads, queryLen, headDim), dtype);
                using var k = Input(ops, seed + 1, new Shape(batch, kvHeads, keyLen, headDim), dtype);
                using var v = Input(ops, seed + 2, new Shape(batch, kvHeads, keyLen, headDim), dtype);
                using var dOut = Input(ops, seed + 3, new Shape(batch, heads, queryLen, headDim), dtype);
                var output = ops.Empty(q.Shape, dtype);
                var lse = ops.Empty(new Shape(batch, heads, queryLen), DType.F32);
                ops.Attention(q, k, v, causal, scale, output, lse);
                var dq = ops.Empty(q.Shape, dtype);
                var dk = ops.Empty(k.Shape, dtype);
                var dv = ops.Empty(v.Shape, dtype);
                ops.AttentionBackward(q, k, v, output, lse, dOut, causal, scale, dq, dk, dv);
                return [output, lse, dq, dk, dv];
            });
        }
    }
}
