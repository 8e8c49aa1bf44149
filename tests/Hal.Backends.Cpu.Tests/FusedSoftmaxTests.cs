using static Hal.Backends.Cpu.Tests.FusedTestSupport;

namespace Hal.Backends.Cpu.Tests;

// Softmax, log-softmax and cross-entropy kernels against plain double loops. Legend: N rows, C (V) the last axis.
public sealed class FusedSoftmaxTests(FusedFixture fx) : IClassFixture<FusedFixture>
{
    public static TheoryData<int, DType> Sizes()
    {
        var data = new TheoryData<int, DType>();
        foreach (int c in new[] { 1, 7, 8, 9, 31, 33, 64, 65 })
        {
            data.Add(c, DType.F32);
            data.Add(c, DType.F64);
        }
        data.Add(33, DType.BF16);
        data.Add(65, DType.F16);
        return data;
    }

    private static double[] SoftmaxReference(double[] x, int c, bool log)
    {
        var y = new double[x.Length];
        for (int r = 0; r < x.Length / c; r++)
        {
            double max = double.NegativeInfinity;
            for (int i = 0; i < c; i++)
            {
                max = Math.Max(max, x[(r * c) + i]);
            }
            double sum = 0;
            for (int i = 0; i < c; i++)
            {
                sum += Math.Exp(x[(r * c) + i] - max);
            }
            for (int i = 0; i < c; i++)
            {
                double v = x[(r * c) + i] - max;
                y[(r * c) + i] = log ? v - Math.Log(sum) : Math.Exp(v) / sum;
            }
        }
        return y;
    }

    private double[] RunForward(double[] x, Shape shape, DType dtype, bool log)
    {
        using var tx = fx.Ops.FromArray(x, shape, dtype);
        using var ty = fx.Ops.Empty(shape, dtype);
        if (log)
        {
            fx.Kernels.LogSoftmax(tx, ty);
        }
        else
        {
            fx.Kernels.Softmax(tx, ty);
        }
        return fx.Ops.ToDoubleArray(ty);
    }

    [Theory]
    [MemberData(nameof(Sizes))]
    public void SoftmaxAndLogSoftmaxMatchReference(int c, DType dtype)
    {
        const int seed = 11;
        var shape = new Shape(2, 3, c);
        var x = Quantize(RandomArray(seed + c, shape.ElementCount, -8, 8), dtype);
        // Per element: exp within 2 ULP, the row sum within (C/16 + 2) ULP (16 lanes, then a tail), one divide,
        // plus the rounding of the stored result; (C + 8)·ε of the compute dtype covers all with margin.
        double eps = ComputeEpsilon(dtype) * (c + 8);
        // F16 stores results under 2^-14 as subnormals, spaced 2^-24: half of that is their absolute rounding.
        double subnormal = dtype == DType.F16 ? Math.Pow(2, -25) : 1e-300;
        AssertClose(SoftmaxReference(x, c, false), RunForward(x, shape, dtype, log: false), eps + (2 * StorageRounding(dtype)), subnormal, $"softmax C={c} {dtype} seed={seed + c}");
        // Log-softmax errors are absolute, relative to the magnitudes subtracted (|x| ≤ 8, log C ≤ 5).
        AssertClose(SoftmaxReference(x, c, true), RunForward(x, shape, dtype, log: true), 2 * StorageRounding(dtype), eps * 16, $"log-softmax C={c} {dtype} seed={seed + c}");
    }

    [Theory]
    [InlineData(7)]
    [InlineData(33)]
    public void BackwardsMatchFiniteDifferencesInF64(int c)
    {
        const int seed = 21;
        var shape = new Shape(3, c);
        var x = RandomArray(seed, shape.ElementCount, -3, 3);
        var w = RandomArray(seed + 1, shape.ElementCount);
        foreach (bool log in new[] { false, true })
        {
            var y = RunForward(x, shape, DType.F64, log);
            using var ty = fx.Ops.FromArray(y, shape, DType.F64);
            using var tw = fx.Ops.FromArray(w, shape, DType.F64);
            using var tdx = fx.Ops.Empty(shape, DType.F64);
            if (log)
            {
                fx.Kernels.LogSoftmaxBackward(ty, tw, tdx);
            }
            else
            {
                fx.Kernels.SoftmaxBackward(ty, tw, tdx);
            }
            // Central differences with h = 1e-5: truncation h²·|f'''|/6 ≈ 1e-10, rounding ε·|L|/h ≈ 1e-10.
            var numeric = NumericGradient(v => Weighted(w, RunForward(v, shape, DType.F64, log)), x, 1e-5);
            AssertClose(numeric, fx.Ops.ToDoubleArray(tdx), 0, 1e-8, $"{(log ? "log-" : "")}softmax backward C={c} seed={seed}");
        }
    }

    [Theory]
    [InlineData(9, DType.F32)]
    [InlineData(65, DType.F32)]
    [InlineData(64, DType.BF16)]
    [InlineData(31, DType.F16)]
    public void BackwardsMatchAnalyticReference(int c, DType dtype)
    {
        const int seed = 31;
        var shape = new Shape(4, c);
        var y = Quantize(SoftmaxReference(RandomArray(seed, shape.ElementCount), c, false), dtype);
        var dy = Quantize(RandomArray(seed + 1, shape.ElementCount), dtype);
        using var ty = fx.Ops.FromArray(y, shape, dtype);
        using var tdy = fx.Ops.FromArray(dy, shape, dtype);
        using var tdx = fx.Ops.Empty(shape, dtype);
        fx.Kernels.SoftmaxBackward(ty, tdy, tdx);
        var expected = new double[y.Length];
        for (int r = 0; r < 4; r++)
        {
            double s = 0;
            for (int i = 0; i < c; i++)
            {
                s += dy[(r * c) + i] * y[(r * c) + i];
            }
            for (int i = 0; i < c; i++)
            {
                expected[(r * c) + i] = y[(r * c) + i] * (dy[(r * c) + i] - s);
            }
        }
        // |y| ≤ 1, |dy| ≤ 2: the dot product errs by (C + 8)·ε·2 absolute, the result by that plus its storage rounding.
        AssertClose(expected, fx.Ops.ToDoubleArray(tdx), 2 * StorageRounding(dtype), ComputeEpsilon(dtype) * (c + 8) * 4, $"softmax backward C={c} {dtype} seed={seed}");
    }

    [Fact]
    public void NaNPropagatesToItsRowOnly()
    {
        var shape = new Shape(3, 17);
        var x = RandomArray(41, shape.ElementCount);
        x[17 + 5] = double.NaN;
        foreach (var dtype in new[] { DType.F32, DType.F64 })
        {
            foreach (bool log in new[] { false, true })
            {
                var y = RunForward(x, shape, dtype, log);
                for (int i = 0; i < y.Length; i++)
                {
                    Assert.True(double.IsNaN(y[i]) == (i / 17 == 1), $"{dtype} log={log}: element {i} = {y[i]}");
                }
            }
        }
    }

    [Fact]
    public void LargeInputUsesEveryWorkerAndMatchesReference()
    {
        const int seed = 51;
        var shape = new Shape(96, 1000);
        var x = RandomArray(seed, shape.ElementCount, -20, 20);
        // Same bound as the small cases with C = 1000.
        AssertClose(SoftmaxReference(Quantize(x, DType.F32), 1000, false), RunForward(x, shape, DType.F32, log: false), (1008 * ComputeEpsilon(DType.F32)) + 6e-8, 1e-300, $"softmax 96x1000 seed={seed}");
        // BF16 over several 2^17-element slabs of F32 scratch: the same bound plus the BF16 output rounding.
        var big = new Shape(300, 1000);
        var xb = Quantize(RandomArray(seed + 1, big.ElementCount, -20, 20), DType.BF16);
        AssertClose(SoftmaxReference(xb, 1000, false), RunForward(xb, big, DType.BF16, log: false), (1008 * ComputeEpsilon(DType.F32)) + (2 * StorageRounding(DType.BF16)), 1e-300, $"softmax 300x1000 bf16 seed={seed + 1}");
        AssertClose(SoftmaxReference(xb, 1000, true), RunForward(xb, big, DType.BF16, log: true), 2 * StorageRounding(DType.BF16), 1008 * ComputeEpsilon(DType.F32) * 40, $"log-softmax 300x1000 bf16 seed={seed + 1}");
    }

    private (double[] Loss, double[] Lse) RunCrossEntropy(double[] logits, long[] targets, int v, DType dtype)
    {
        int n = targets.Length;
        using var tl = fx.Ops.FromArray(logits, new Shape(n, v), dtype);
        using var tt = fx.Ops.FromArray(targets, new Shape(n), DType.I64);
        using var loss = fx.Ops.Empty(new Shape(n), DType.F32);
        using var lse = fx.Ops.Empty(new Shape(n), DType.F32);
        fx.Kernels.CrossEntropy(tl, tt, loss, lse);
        return (fx.Ops.ToDoubleArray(loss), fx.Ops.ToDoubleArray(lse));
    }

    [Theory]
    [MemberData(nameof(Sizes))]
    public void CrossEntropyMatchesReferenceAndIgnoresNegativeTargets(int v, DType dtype)
    {
        int seed = 61 + v;
        const int n = 5;
        var logits = Quantize(RandomArray(seed, (long)n * v, -6, 6), dtype);
        long[] targets = [0, v - 1, -1, v / 2, -100];
        var (loss, lse) = RunCrossEntropy(logits, targets, v, dtype);
        var logSoftmax = SoftmaxReference(logits, v, log: true);
        var expectedLoss = new double[n];
        var expectedLse = new double[n];
        for (int r = 0; r < n; r++)
        {
            expectedLse[r] = logits[r * v] - logSoftmax[r * v];
            expectedLoss[r] = targets[r] < 0 ? 0 : -logSoftmax[(r * v) + (int)targets[r]];
        }
        // Outputs are F32 (half-ULP rounding); the F32 computation adds (V + 8)·ε times the magnitudes (|x| ≤ 6, log V ≤ 5).
        double atol = ComputeEpsilon(dtype) * (v + 8) * 16;
        AssertClose(expectedLse, lse, 6e-8, atol, $"cross-entropy lse V={v} {dtype} seed={seed}");
        AssertClose(expectedLoss, loss, 6e-8, atol, $"cross-entropy loss V={v} {dtype} seed={seed}");
    }

    [Fact]
    public void CrossEntropyOverSeveralBf16SlabsMatchesReference()
    {
        const int seed = 66, n = 300, v = 1000;
        var logits = Quantize(RandomArray(seed, (long)n * v, -6, 6), DType.BF16);
        var targets = new long[n];
        for (int r = 0; r < n; r++)
        {
            targets[r] = r % 7 == 3 ? -1 : (r * 37) % v;
        }
        var (loss, lse) = RunCrossEntropy(logits, targets, v, DType.BF16);
        var logSoftmax = SoftmaxReference(logits, v, log: true);
        var expectedLoss = new double[n];
        var expectedLse = new double[n];
        for (int r = 0; r < n; r++)
        {
            expectedLse[r] = logits[(long)r * v] - logSoftmax[(long)r * v];
            expectedLoss[r] = targets[r] < 0 ? 0 : -logSoftmax[((long)r * v) + targets[r]];
        }
        // As the small cases: F32 outputs, (V + 8)·ε_F32 times the magnitudes (|x| ≤ 6, log V ≤ 7).
        double atol = ComputeEpsilon(DType.F32) * (v + 8) * 16;
        AssertClose(expectedLse, lse, 6e-8, atol, $"cross-entropy lse 300x1000 bf16 seed={seed}");
        AssertClose(expectedLoss, loss, 6e-8, atol, $"cross-entropy loss 300x1000 bf16 seed={seed}");
    }

    [Theory]
    [InlineData(7, DType.F64)]
    [InlineData(33, DType.F64)]
    [InlineData(65, DType.F32)]
    [InlineData(31, DType.BF16)]
    public void CrossEntropyBackwardMatchesAnalyticReference(int v, DType dtype)
    {
        int seed = 71 + v;
        const int n = 4;
        var logits = Quantize(RandomArray(seed, (long)n * v, -4, 4), dtype);
        long[] targets = [v - 1, -1, 0, v / 3];
        double[] dlosses = [0.5, 2.0, -1.25, 1.0];
        using var tl = fx.Ops.FromArray(logits, new Shape(n, v), dtype);
        using var tt = fx.Ops.FromArray(targets, new Shape(n), DType.I64);
        using var loss = fx.Ops.Empty(new Shape(n), DType.F32);
        using var lse = fx.Ops.Empty(new Shape(n), DType.F32);
        using var tdl = fx.Ops.FromArray(dlosses, new Shape(n), DType.F32);
        using var tdx = fx.Ops.Empty(new Shape(n, v), dtype);
        fx.Kernels.CrossEntropy(tl, tt, loss, lse);
        fx.Kernels.CrossEntropyBackward(tl, tt, lse, tdl, tdx);
        var softmax = SoftmaxReference(logits, v, log: false);
        var expected = new double[logits.Length];
        for (int r = 0; r < n; r++)
        {
            for (int i = 0; i < v && targets[r] >= 0; i++)
            {
                expected[(r * v) + i] = (softmax[(r * v) + i] - (i == targets[r] ? 1 : 0)) * dlosses[r];
            }
        }
        // F64 recomputes lse in F64: a few ULP of V-term sums. F32 uses the stored F32 lse (|lse| ≤ 9: 9·2^-24 absolute
        // in the exponent) and its own exp and sums: (V + 8)·ε·|dloss| with |dloss| ≤ 2, plus the output rounding.
        double atol = dtype == DType.F64 ? 1e-14 : (ComputeEpsilon(dtype) * (v + 8) * 2 * 16);
        AssertClose(expected, fx.Ops.ToDoubleArray(tdx), 2 * StorageRounding(dtype), atol, $"cross-entropy backward V={v} {dtype} seed={seed}");
    }

    [Fact]
    public void CrossEntropyBackwardMatchesFiniteDifferencesInF64()
    {
        const int seed = 81, n = 3, v = 9;
        var logits = RandomArray(seed, n * v);
        long[] targets = [2, -1, 8];
        double[] dlosses = [1.5, 1.0, -0.5];
        using var tl = fx.Ops.FromArray(logits, new Shape(n, v), DType.F64);
        using var tt = fx.Ops.FromArray(targets, new Shape(n), DType.I64);
        using var lse = fx.Ops.Empty(new Shape(n), DType.F32);
        using var loss = fx.Ops.Empty(new Shape(n), DType.F32);
        using var tdl = fx.Ops.FromArray(dlosses, new Shape(n), DType.F32);
        using var tdx = fx.Ops.Empty(new Shape(n, v), DType.F64);
        fx.Kernels.CrossEntropy(tl, tt, loss, lse);
        fx.Kernels.CrossEntropyBackward(tl, tt, lse, tdl, tdx);
        var numeric = NumericGradient(x => Weighted(dlosses, RunCrossEntropy(x, targets, v, DType.F64).Loss), logits, 1e-2);
        // The losses are stored in F32 (|L| ≤ 5: rounding 3e-7), so with h = 1e-2 the difference quotient carries
        // 3e-7·2/(2h) ≈ 3e-5 of rounding and h²·|f'''|/6 ≈ 2e-5 of truncation.
        AssertClose(numeric, fx.Ops.ToDoubleArray(tdx), 0, 2e-4, $"cross-entropy backward vs finite differences seed={seed}");
    }
}
