namespace Hal.Backends.Npu.Tests;

// Shapes: gemm a [K, M] (transposed) or [1, M, K], b [1, 1, N, K] (transposed) or [1, K, N], c [B, M, N];
// cross-entropy logits, dlogits [R, V], targets, losses, lse, dlosses [R]; activation and AdamW operands [n].

/// <summary>Edge cases of GEMM, cross-entropy, ReLU backward and AdamW on npu:0 against plain double loops.</summary>
[Collection("npu")]
public sealed class EdgeCaseTests(NpuFixture f)
{
    private const ulong Seed = 131;

    [Theory]
    [InlineData(1, 1, 1)]
    [InlineData(7, 9, 17)]
    [InlineData(16, 17, 33)]
    public void GemmBroadcastsBothOperandsOverTheOutputBatch(int m, int n, int k)
    {
        const int batch = 3;
        ulong seed = Seed + (ulong)(m * 1000 + n);
        double[] a = Kit.Random(k * m, seed);
        double[] b = Kit.Random(n * k, seed + 1);
        using var at = f.NpuOps.FromArray(a, new Shape(k, m));
        using var bt = f.NpuOps.FromArray(b, new Shape(1, 1, n, k));
        using var ct = f.NpuOps.Full(new Shape(batch, m, n), double.NaN);
        f.NpuOps.Gemm(at, bt, ct, transA: true, transB: true);
        var expected = new double[batch * m * n];
        for (int i = 0; i < batch; i++)
        {
            for (int r = 0; r < m; r++)
            {
                for (int col = 0; col < n; col++)
                {
                    double sum = 0;
                    for (int p = 0; p < k; p++)
                    {
                        sum += a[(p * m) + r] * b[(col * k) + p];
                    }
                    expected[(((i * m) + r) * n) + col] = sum;
                }
            }
        }
        // F32 dot products of ≤ 33 terms of magnitude ≤ 4: 1e-5 absolute bounds the accumulation rounding.
        Kit.Close(expected, f.NpuOps.ToDoubleArray(ct), 1e-5, 1e-5, $"gemm broadcast-both m={m} n={n} k={k} seed={seed}");
    }

    [Theory]
    [InlineData(0.0)]
    [InlineData(0.5)]
    public void GemmWithAnEmptyContractionGivesBetaTimesCPlusBias(double beta)
    {
        const int m = 7, n = 9;
        double[] c = Kit.Random(m * n, Seed);
        double[] bias = Kit.Random(n, Seed + 1);
        using var at = f.NpuOps.Empty(new Shape(m, 0));
        using var bt = f.NpuOps.Empty(new Shape(0, n));
        using var ct = f.NpuOps.FromArray(c, new Shape(m, n));
        using var biasT = f.NpuOps.FromArray(bias, new Shape(n));
        f.NpuOps.Gemm(at, bt, ct, alpha: 2, beta: beta, bias: biasT);
        var expected = new double[m * n];
        for (int i = 0; i < expected.Length; i++)
        {
            expected[i] = (beta == 0 ? 0 : beta * c[i]) + bias[i % n];
        }
        // One F32 multiply and one add: 2 F32 ulps of values ≤ 3.
        Kit.Close(expected, f.NpuOps.ToDoubleArray(ct), 2.4e-7, 1e-7, $"gemm K=0 beta={beta} seed={Seed}");
    }

    [Fact]
    public void GemmF64KeepsAnAlphaThatF32CannotHold()
    {
        const int m = 7, n = 8, k = 9;
        double alpha = 1 / Math.Sqrt(8);
        double[] a = Kit.Random(m * k, Seed);
        double[] b = Kit.Random(k * n, Seed + 1);
        using var at = f.NpuOps.FromArray(a, new Shape(1, m, k), DType.F64);
        using var bt = f.NpuOps.FromArray(b, new Shape(1, k, n), DType.F64);
        using var ct = f.NpuOps.Empty(new Shape(1, m, n), DType.F64);
        f.NpuOps.Gemm(at, bt, ct, alpha: alpha);
        var expected = new double[m * n];
        for (int r = 0; r < m; r++)
        {
            for (int col = 0; col < n; col++)
            {
                double sum = 0;
                for (int p = 0; p < k; p++)
                {
                    sum += a[(r * k) + p] * b[(p * n) + col];
                }
                expected[(r * n) + col] = alpha * sum;
            }
        }
        // F64 sums of 9 products ≤ 4 scaled once: 1e-14 absolute; an F32 alpha would be off by ~1e-8 relative.
        Kit.Close(expected, f.NpuOps.ToDoubleArray(ct), 1e-14, 1e-14, $"gemm f64 alpha=1/sqrt(8) seed={Seed}");
    }

    [Theory]
    [InlineData(DType.F32)]
    [InlineData(DType.BF16)]
    public void CrossEntropyEdgeRowsFollowTheContract(DType dtype)
    {
        const int rows = 4, vocab = 5;
        double[] logits = Kit.Random(rows * vocab, Seed);
        logits[(1 * vocab) + 2] = double.NaN; // ignored row with a NaN: loss 0, lse NaN, gradient 0
        logits[(2 * vocab) + 3] = double.PositiveInfinity; // +Inf: lse and loss NaN
        for (int c = 0; c < vocab; c++)
        {
            logits[(3 * vocab) + c] = double.NegativeInfinity; // all −Inf, ignored: lse −Inf, loss 0
        }
        long[] targets = [1, -1, 0, -100];
        using var lt = f.NpuOps.FromArray(logits, new Shape(rows, vocab), dtype);
        using var tt = f.NpuOps.FromArray(targets, new Shape(rows));
        using var losses = f.NpuOps.Empty(new Shape(rows));
        using var lse = f.NpuOps.Empty(new Shape(rows));
        f.NpuOps.CrossEntropy(lt, tt, losses, lse);
        double[] l = f.NpuOps.ToDoubleArray(lse);
        double[] loss = f.NpuOps.ToDoubleArray(losses);
        string what = $"cross-entropy {dtype.Name()} seed={Seed}";
        Assert.True(double.IsNaN(l[1]) && double.IsNaN(l[2]) && double.IsNaN(loss[2]), $"{what}: lse {l[1]}, {l[2]}, loss {loss[2]}");
        Assert.True(double.IsNegativeInfinity(l[3]), $"{what}: all −Inf row lse {l[3]}");
        Assert.True(loss[1] == 0 && loss[3] == 0, $"{what}: ignored losses {loss[1]}, {loss[3]}");
        Assert.True(double.IsFinite(loss[0]) && double.IsFinite(l[0]), $"{what}: ordinary row {loss[0]}, {l[0]}");

        using var dl = f.NpuOps.FromArray(new double[] { 1, 1, 1, 1 }, new Shape(rows));
        using var dlogits = f.NpuOps.Empty(new Shape(rows, vocab), dtype);
        f.NpuOps.CrossEntropyBackward(lt, tt, lse, dl, dlogits);
        double[] d = f.NpuOps.ToDoubleArray(dlogits);
        for (int c = 0; c < vocab; c++)
        {
            Assert.True(d[(1 * vocab) + c] == 0 && d[(3 * vocab) + c] == 0, $"{what}: ignored rows' gradient at column {c}: {d[vocab + c]}, {d[(3 * vocab) + c]}");
        }
    }

    [Theory]
    [InlineData(DType.F32)]
    [InlineData(DType.F16)]
    public void ReluBackwardOfNaNIsNaN(DType dtype)
    {
        double[] x = Kit.WithSpecials(33, Seed);
        double[] dy = Kit.Random(33, Seed + 1);
        using var xt = f.NpuOps.FromArray(x, new Shape(33), dtype);
        using var dyt = f.NpuOps.FromArray(dy, new Shape(33), dtype);
        using var dxt = f.NpuOps.Empty(new Shape(33), dtype);
        f.NpuOps.ActivationBackward(UnaryOp.Relu, xt, dyt, dxt);
        double[] xq = f.NpuOps.ToDoubleArray(xt);
        double[] dyq = f.NpuOps.ToDoubleArray(dyt);
        var expected = new double[33];
        for (int i = 0; i < 33; i++)
        {
            expected[i] = double.IsNaN(xq[i]) ? double.NaN : xq[i] > 0 ? dyq[i] : 0;
        }
        // dy·1 or dy·0: exact.
        Kit.Close(expected, f.NpuOps.ToDoubleArray(dxt), 0, 0, $"relu backward {dtype.Name()} seed={Seed}");
    }

    [Fact]
    public void AdamWSecondMomentUsesOneMinusBetaInF64()
    {
        const int n = 65;
        double[] g = Kit.Random(n, Seed);
        using var pt = f.NpuOps.FromArray(Kit.Random(n, Seed + 1), new Shape(n));
        using var gt = f.NpuOps.FromArray(g, new Shape(n));
        using var mt = f.NpuOps.Zeros(new Shape(n));
        using var vt = f.NpuOps.Zeros(new Shape(n));
        var config = new AdamWConfig(1e-2);
        f.NpuOps.AdamW(pt, gt, mt, vt, config, 1);
        var expected = new double[n];
        for (int i = 0; i < n; i++)
        {
            expected[i] = (1 - config.Beta2) * g[i] * g[i];
        }
        // Three F32 roundings (1 − β2, g², the product): 2e-7 relative; an F32 1 − β2 would be 1.3e-5 off.
        Kit.Close(expected, f.NpuOps.ToDoubleArray(vt), 2e-7, 0, $"adamw v step 1 seed={Seed}");
    }
}
