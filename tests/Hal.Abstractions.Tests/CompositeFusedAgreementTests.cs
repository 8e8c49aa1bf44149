namespace Hal.Abstractions.Tests;

// Both paths of every tier-2 op on one backend: the composite (ForceComposite) and whatever PathFor picks (the CPU
// backend's fused kernel where it has one). Shapes: rows [5, 7]; attention [2, 4/2, Tq×Tk, 8]; rotary [2, 3, 2, 4].
public sealed class CompositeFusedAgreementTests : CompositeTestBase
{
    private const int N = 5, C = 7;

    private readonly Ops _preferred;

    public CompositeFusedAgreementTests()
    {
        _preferred = new Ops(Device);
    }

    /// <summary>
    /// F64: the saved statistics are F32 (the contract), and a kernel may use them or recompute them, so the paths may
    /// differ by their 2^-24 rounding (≈ 1e-7 relative, 1e-6 with margin); F32: a few hundred ulps of reassociation;
    /// BF16: one output rounding (2^-8 relative).
    /// </summary>
    private static double Tolerance(DType dtype) => dtype switch
    {
        DType.F64 => 1e-6,
        DType.F32 => 1e-5,
        _ => 2e-2,
    };

    private void AssertPathsAgree(string what, DType dtype, Func<Ops, double[][]> run, double? tolerance = null)
    {
        var composite = run(Ops);
        var preferred = run(_preferred);
        double tol = tolerance ?? Tolerance(dtype);
        for (int i = 0; i < composite.Length; i++)
        {
            AssertClose(composite[i], preferred[i], tol, tol, $"{what} {dtype} output {i} (seeds 1–12)");
        }
    }

    public static TheoryData<DType> DTypes() => new() { DType.F32, DType.F64, DType.BF16 };

    [Theory]
    [MemberData(nameof(DTypes))]
    public void SoftmaxFamilyAndNormsAgree(DType dt)
    {
        var xv = RandomValues(1, N * C, 3);
        var wv = RandomValues(2, C);
        var bv = RandomValues(3, C);
        var dyv = RandomValues(4, N * C);
        AssertPathsAgree("softmax", dt, o =>
        {
            using var x = Upload(xv, dt, N, C);
            using var dy = Upload(dyv, dt, N, C);
            using var y = o.Empty(x.Shape, dt);
            using var dx = o.Empty(x.Shape, dt);
            o.Softmax(x, y);
            o.SoftmaxBackward(y, dy, dx);
            double[] softmax = Download(y), softmaxGrad = Download(dx);
            o.LogSoftmax(x, y);
            o.LogSoftmaxBackward(y, dy, dx);
            return [softmax, softmaxGrad, Download(y), Download(dx)];
        });
        AssertPathsAgree("layer-norm", dt, o =>
        {
            using var x = Upload(xv, dt, N, C);
            using var w = Upload(wv, dt, C);
            using var b = Upload(bv, dt, C);
            using var y = o.Empty(x.Shape, dt);
            using var mean = o.Empty(new Shape(N));
            using var rstd = o.Empty(new Shape(N));
            o.LayerNorm(x, w, b, 1e-5, y, mean, rstd);
            using var dy = Upload(dyv, dt, N, C);
            using var dx = o.Empty(x.Shape, dt);
            using var dw = o.Empty(w.Shape, dt);
            using var db = o.Empty(w.Shape, dt);
            o.LayerNormBackward(dy, x, w, mean, rstd, dx, dw, db);
            return [Download(y), Download(mean), Download(rstd), Download(dx), Download(dw), Download(db)];
        });
        AssertPathsAgree("rms-norm", dt, o =>
        {
            using var x = Upload(xv, dt, N, C);
            using var w = Upload(wv, dt, C);
            using var y = o.Empty(x.Shape, dt);
            using var rstd = o.Empty(new Shape(N));
            o.RmsNorm(x, w, 1e-5, y, rstd);
            using var dy = Upload(dyv, dt, N, C);
            using var dx = o.Empty(x.Shape, dt);
            using var dw = o.Empty(w.Shape, dt);
            o.RmsNormBackward(dy, x, w, rstd, dx, dw);
            return [Download(y), Download(rstd), Download(dx), Download(dw)];
        });
    }

    [Theory]
    [MemberData(nameof(DTypes))]
    public void CrossEntropyEmbeddingRotaryAndActivationsAgree(DType dt)
    {
        var xv = RandomValues(1, N * C, 3);
        var dyv = RandomValues(4, N * C);
        AssertPathsAgree("cross-entropy", dt, o =>
        {
            using var x = Upload(xv, dt, N, C);
            using var t = UploadIndices([1, -1, 6, 0, -100], DType.I64, N);
            using var losses = o.Empty(new Shape(N));
            using var lse = o.Empty(new Shape(N));
            o.CrossEntropy(x, t, losses, lse);
            using var dl = Upload(RandomValues(5, N), DType.F32, N);
            using var dx = o.Empty(x.Shape, dt);
            o.CrossEntropyBackward(x, t, lse, dl, dx);
            return [Download(losses), Download(lse), Download(dx)];
        });
        AssertPathsAgree("embedding", dt, o =>
        {
            using var w = Upload(xv, dt, N, C);
            using var ids = UploadIndices([4, 0, 4, 2], DType.I32, 4);
            using var y = o.Empty(new Shape(4, C), dt);
            o.Embedding(w, ids, y);
            using var dw = o.Empty(w.Shape, dt);
            o.EmbeddingBackward(y, ids, dw);
            return [Download(y), Download(dw)];
        });
        AssertPathsAgree("rotary", dt, o =>
        {
            using var x = Upload(RandomValues(8, 2 * 3 * 2 * 4), dt, 2, 3, 2, 4);
            using var cos = Upload(RandomValues(6, 10 * 2), DType.F32, 10, 2);
            using var sin = Upload(RandomValues(7, 10 * 2), DType.F32, 10, 2);
            using var y = o.Empty(x.Shape, dt);
            using var dx = o.Empty(x.Shape, dt);
            o.Rotary(x, cos, sin, 2, y);
            o.RotaryBackward(y, cos, sin, 2, dx);
            return [Download(y), Download(dx)];
        });
        foreach (var op in CompositeElementwiseTests.Activations)
        {
            AssertPathsAgree($"{op} backward", dt, o =>
            {
                var xs = (double[])xv.Clone();
                xs[0] = 0;
                using var x = Upload(xs, dt, N, C);
                using var dy = Upload(dyv, dt, N, C);
                using var dx = o.Empty(x.Shape, dt);
                o.ActivationBackward(op, x, dy, dx);
                return [Download(dx)];
            });
        }
    }

    [Theory]
    [InlineData(5, 7, true, DType.F32)]
    [InlineData(7, 4, true, DType.F64)]
    [InlineData(5, 5, false, DType.F64)]
    [InlineData(3, 9, false, DType.BF16)]
    public void AttentionAgrees(int tq, int tk, bool causal, DType dt) =>
        AssertPathsAgree($"attention {tq}x{tk} causal={causal}", dt, o =>
        {
            using var q = Upload(RandomValues(9, 2 * 4 * tq * 8), dt, 2, 4, tq, 8);
            using var k = Upload(RandomValues(10, 2 * 2 * tk * 8), dt, 2, 2, tk, 8);
            using var v = Upload(RandomValues(11, 2 * 2 * tk * 8), dt, 2, 2, tk, 8);
            using var output = o.Empty(q.Shape, dt);
            using var lse = o.Empty(new Shape(2, 4, tq));
            o.Attention(q, k, v, causal, 0.35, output, lse);
            using var dO = Upload(RandomValues(12, 2 * 4 * tq * 8), dt, 2, 4, tq, 8);
            using var dq = o.Empty(q.Shape, dt);
            using var dk = o.Empty(k.Shape, dt);
            using var dv = o.Empty(v.Shape, dt);
            o.AttentionBackward(q, k, v, output, lse, dO, causal, 0.35, dq, dk, dv);
            return [Download(output), Download(lse), Download(dq), Download(dk), Download(dv)];
        });

    [Theory]
    [MemberData(nameof(DTypes))]
    public void OptimizersAndQuantizationAgree(DType dt)
    {
        const int n = N * C;
        var pv = RandomValues(1, n, 3);
        var gv = RandomValues(4, n);
        var stateType = dt == DType.F64 ? DType.F64 : DType.F32;
        var adam = new AdamWConfig(0.01, WeightDecay: 0.1);
        foreach (bool lamb in new[] { false, true })
        {
            foreach (bool zeroParam in new[] { false, true })
            {
                AssertPathsAgree($"{(lamb ? "lamb" : "adamw")} zeroParam={zeroParam}", dt, o =>
                {
                    using var p = Upload(zeroParam ? new double[n] : pv, dt, n);
                    using var g = Upload(gv, dt, n);
                    using var m = o.Zeros(new Shape(n), stateType);
                    using var v = o.Zeros(new Shape(n), stateType);
                    for (int step = 1; step <= 2; step++)
                    {
                        if (lamb)
                        {
                            o.Lamb(p, g, m, v, adam, step);
                        }
                        else
                        {
                            o.AdamW(p, g, m, v, adam, step);
                        }
                    }
                    return [Download(p), Download(m), Download(v)];
                });
            }
        }
        foreach (bool zeroGrad in new[] { false, true })
        {
            AssertPathsAgree($"lars zeroGrad={zeroGrad}", dt, o =>
            {
                using var p = Upload(pv, dt, n);
                using var g = Upload(zeroGrad ? new double[n] : gv, dt, n);
                using var buf = o.Zeros(new Shape(n), stateType);
                var cfg = new LarsConfig(0.1, WeightDecay: 0.01);
                o.Lars(p, g, buf, cfg);
                o.Lars(p, g, buf, cfg);
                return [Download(p), Download(buf)];
            });
        }
        // Quantisation is specified to the bit (F32 scale, round-half-even), so both paths must match exactly.
        AssertPathsAgree("int8", dt, o =>
        {
            var xs = (double[])pv.Clone();
            Array.Clear(xs, 0, C);
            using var x = Upload(xs, dt, N, C);
            using var q = o.Empty(x.Shape, DType.I8);
            using var scale = o.Empty(new Shape(N));
            using var y = o.Empty(x.Shape, dt);
            o.QuantizeInt8(x, q, scale);
            o.DequantizeInt8(q, scale, y);
            return [Download(q), Download(scale), Download(y)];
        }, tolerance: 0);
    }
}
