using static Hal.Backends.Cpu.Tests.FusedTestSupport;

namespace Hal.Backends.Cpu.Tests;

// Through Ops: the CPU backend claims every tier-2 op, and its fused kernels agree with the composite fallback
// (ForceComposite) on shapes that cross vector widths and attention tiles.
// Shapes: rows [3, 65]; attention q [1, 4, 17, D 16], k/v [1, 2, 70, 16].
public sealed class FusedOpsAgreementTests(FusedFixture fx) : IClassFixture<FusedFixture>
{
    [Fact]
    public void SupportsEveryFusedOpAtEveryFloatDType()
    {
        foreach (var op in Enum.GetValues<FusedOp>())
        {
            foreach (var dtype in DTypeInfo.All)
            {
                Assert.True(fx.Ops.PathFor(op, dtype) == (dtype.IsFloatingPoint() ? KernelPath.Fused : KernelPath.Composite), $"{op} {dtype}");
            }
        }
    }

    /// <summary>
    /// F64: the saved statistics are F32 by contract, and either path may use them or recompute them, so the paths may
    /// differ by their 2^-24 rounding (1e-7 relative, 1e-6 with margin); F32: reassociated sums over ≤ 70 terms,
    /// a few hundred ULP (1e-5).
    /// </summary>
    private static double Tolerance(DType dtype) => dtype == DType.F64 ? 1e-6 : 1e-5;

    private void AssertPathsAgree(string what, DType dtype, Func<Ops, double[][]> run)
    {
        var composite = run(new Ops(fx.Device) { ForceComposite = true });
        var fusedOps = new Ops(fx.Device);
        var fused = run(fusedOps);
        Assert.All(fusedOps.PathsTaken.Values, path => Assert.Equal(KernelPath.Fused, path));
        for (int i = 0; i < composite.Length; i++)
        {
            AssertClose(composite[i], fused[i], Tolerance(dtype), Tolerance(dtype), $"{what} {dtype} output {i}");
        }
    }

    [Theory]
    [InlineData(DType.F32)]
    [InlineData(DType.F64)]
    public void RowOpsAgree(DType dtype)
    {
        const int n = 3, c = 65, seed = 1300;
        var x = RandomArray(seed, n * c, -4, 4);
        var w = RandomArray(seed + 1, c, 0.5, 1.5);
        var b = RandomArray(seed + 2, c);
        var dy = RandomArray(seed + 3, n * c);
        long[] targets = [64, -1, 7];
        AssertPathsAgree($"row ops seed={seed}", dtype, o =>
        {
            using var tx = o.FromArray(x, new Shape(n, c), dtype);
            using var tw = o.FromArray(w, new Shape(c), dtype);
            using var tb = o.FromArray(b, new Shape(c), dtype);
            using var tdy = o.FromArray(dy, new Shape(n, c), dtype);
            using var y = o.Empty(new Shape(n, c), dtype);
            using var dx = o.Empty(new Shape(n, c), dtype);
            using var dw = o.Empty(new Shape(c), dtype);
            using var db = o.Empty(new Shape(c), dtype);
            using var mean = o.Empty(new Shape(n), DType.F32);
            using var rstd = o.Empty(new Shape(n), DType.F32);
            var results = new List<double[]>();
            o.Softmax(tx, y);
            o.SoftmaxBackward(y, tdy, dx);
            results.Add(o.ToDoubleArray(y));
            results.Add(o.ToDoubleArray(dx));
            o.LogSoftmax(tx, y);
            o.LogSoftmaxBackward(y, tdy, dx);
            results.Add(o.ToDoubleArray(y));
            results.Add(o.ToDoubleArray(dx));
            o.LayerNorm(tx, tw, tb, 1e-5, y, mean, rstd);
            o.LayerNormBackward(tdy, tx, tw, mean, rstd, dx, dw, db);
            results.AddRange([o.ToDoubleArray(y), o.ToDoubleArray(mean), o.ToDoubleArray(rstd), o.ToDoubleArray(dx), o.ToDoubleArray(dw), o.ToDoubleArray(db)]);
            o.RmsNorm(tx, tw, 1e-5, y, rstd);
            o.RmsNormBackward(tdy, tx, tw, rstd, dx, dw);
            results.AddRange([o.ToDoubleArray(y), o.ToDoubleArray(rstd), o.ToDoubleArray(dx), o.ToDoubleArray(dw)]);
            using var tt = o.FromArray(targets, new Shape(n), DType.I64);
            using var losses = o.Empty(new Shape(n), DType.F32);
            using var lse = o.Empty(new Shape(n), DType.F32);
            using var dl = o.FromArray(new double[] { 1, 2, -0.5 }, new Shape(n), DType.F32);
            o.CrossEntropy(tx, tt, losses, lse);
            o.CrossEntropyBackward(tx, tt, lse, dl, dx);
            results.AddRange([o.ToDoubleArray(losses), o.ToDoubleArray(lse), o.ToDoubleArray(dx)]);
            foreach (var op in new[] { UnaryOp.Relu, UnaryOp.Tanh, UnaryOp.Sigmoid, UnaryOp.GeluErf, UnaryOp.GeluTanh, UnaryOp.Silu })
            {
                o.ActivationBackward(op, tx, tdy, dx);
                results.Add(o.ToDoubleArray(dx));
            }
            return [.. results];
        });
    }

    [Theory]
    [InlineData(false, DType.F32)]
    [InlineData(true, DType.F32)]
    [InlineData(true, DType.F64)]
    public void AttentionAgrees(bool causal, DType dtype)
    {
        const int seed = 1400, tq = 17, tk = 70, d = 16;
        var qShape = new Shape(1, 4, tq, d);
        var kShape = new Shape(1, 2, tk, d);
        var q = RandomArray(seed, qShape.ElementCount, -1, 1);
        var k = RandomArray(seed + 1, kShape.ElementCount, -1, 1);
        var v = RandomArray(seed + 2, kShape.ElementCount, -1, 1);
        var dOut = RandomArray(seed + 3, qShape.ElementCount);
        AssertPathsAgree($"attention causal={causal} seed={seed}", dtype, o =>
        {
            using var qTensor = o.FromArray(q, qShape, dtype);
            using var kTensor = o.FromArray(k, kShape, dtype);
            using var tv = o.FromArray(v, kShape, dtype);
            using var tdo = o.FromArray(dOut, qShape, dtype);
            using var output = o.Empty(qShape, dtype);
            using var lse = o.Empty(new Shape(1, 4, tq), DType.F32);
            using var dq = o.Empty(qShape, dtype);
            using var dk = o.Empty(kShape, dtype);
            using var dv = o.Empty(kShape, dtype);
            o.Attention(qTensor, kTensor, tv, causal, 0.25, output, lse);
            o.AttentionBackward(qTensor, kTensor, tv, output, lse, tdo, causal, 0.25, dq, dk, dv);
            return [o.ToDoubleArray(output), o.ToDoubleArray(lse), o.ToDoubleArray(dq), o.ToDoubleArray(dk), o.ToDoubleArray(dv)];
        });
    }
}
