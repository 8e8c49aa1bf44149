using System.Runtime.Intrinsics.X86;
using Hal.Numerics;

namespace Hal.Backends.Cpu.Tests;

// Legend: a [batchA, M, K] ([batchA, K, M] when transA), b [batchB, K, N] ([batchB, N, K] when transB),
// c [batch, M, N], bias [N]. References are plain double loops over the values the device actually stores.
// Every case runs on two devices: the default one (AVX-512 kernels where the processor has AVX-512F) and one held to
// the 256-bit kernels, so both kernel families are checked on an AVX-512 machine.

public sealed class GemmTests : IDisposable
{
    private readonly IDevice _device = new CpuBackend().Open(0);
    private readonly IDevice _device256 = new CpuBackend(new CpuBackendOptions { GemmMaxVectorBits = 256 }).Open(0);
    private readonly Ops _ops;
    private readonly Ops _ops256;

    public GemmTests()
    {
        _ops = new Ops(_device);
        _ops256 = new Ops(_device256);
    }

    public void Dispose()
    {
        _device.Dispose();
        _device256.Dispose();
    }

    /// <summary>
    /// Sizes around the 256-bit tiles (F32 6×16, F64 6×8), their k blocks (F64 256, F32 384) and m blocks (72, 144),
    /// and around the AVX-512 tiles (12×32 F32, 12×16 F64), their k blocks (F32 256, F64 192) and m block (192).
    /// </summary>
    public static TheoryData<int, int, int> Shapes => new()
    {
        { 11, 31, 5 }, { 12, 32, 7 }, { 13, 33, 9 }, { 11, 16, 3 }, { 25, 65, 17 }, { 24, 64, 255 }, { 23, 15, 256 },
        { 12, 17, 191 }, { 13, 31, 192 }, { 11, 47, 193 }, { 191, 33, 20 }, { 192, 32, 21 }, { 193, 31, 22 }, { 12, 32, 513 },
        { 0, 5, 3 }, { 4, 0, 3 }, { 3, 4, 0 }, { 1, 1, 1 }, { 2, 2, 2 }, { 1, 17, 1 }, { 7, 1, 13 },
        { 5, 15, 7 }, { 6, 16, 8 }, { 7, 17, 9 }, { 13, 31, 17 }, { 12, 32, 16 }, { 65, 63, 33 },
        { 37, 41, 255 }, { 19, 23, 256 }, { 29, 33, 257 }, { 71, 9, 64 }, { 73, 47, 70 },
        { 11, 19, 383 }, { 9, 21, 384 }, { 5, 35, 385 }, { 143, 17, 40 }, { 144, 16, 36 }, { 145, 33, 31 }, { 150, 150, 150 }, { 96, 160, 513 },
    };

    public static TheoryData<DType> FloatTypes => new() { DType.F32, DType.F64, DType.F16, DType.BF16 };

    [Fact]
    public void KernelWidths_DefaultUsesAvx512WhereSupported_OptionHoldsTo256()
    {
        int expected = Avx512F.IsSupported ? 512 : 256;
        Assert.Equal(expected, ((CpuKernels)_device.Kernels).GemmVectorBits);
        Assert.Equal(256, ((CpuKernels)_device256.Kernels).GemmVectorBits);
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void F32_AllShapes_MatchReference(int m, int n, int k) =>
        Check(new Case(DType.F32, m, n, k, Seed: 1000 + m + n + k));

    [Theory]
    [MemberData(nameof(Shapes))]
    public void F64_AllShapes_MatchReference(int m, int n, int k) =>
        Check(new Case(DType.F64, m, n, k, Seed: 2000 + m + n + k));

    [Theory]
    [InlineData(DType.F16, 7, 17, 9)]
    [InlineData(DType.F16, 37, 41, 257)]
    [InlineData(DType.F16, 3, 4, 0)]
    [InlineData(DType.BF16, 7, 17, 9)]
    [InlineData(DType.BF16, 73, 47, 300)]
    [InlineData(DType.BF16, 1, 1, 1)]
    public void SixteenBit_Shapes_MatchReference(DType dtype, int m, int n, int k) =>
        Check(new Case(dtype, m, n, k, Seed: 3000 + m + n + k));

    [Theory]
    [MemberData(nameof(FloatTypes))]
    public void AllTransposeCombinations_MatchReference(DType dtype)
    {
        foreach (bool transA in new[] { false, true })
        {
            foreach (bool transB in new[] { false, true })
            {
                Check(new Case(dtype, 13, 29, 23, Seed: 11, TransA: transA, TransB: transB));
                Check(new Case(dtype, 70, 53, 90, Seed: 12, TransA: transA, TransB: transB));
            }
        }
    }

    [Theory]
    [MemberData(nameof(FloatTypes))]
    public void AlphaBetaBias_MatchReference(DType dtype)
    {
        Check(new Case(dtype, 9, 18, 11, Seed: 21, Alpha: 0.5, Beta: -1.5, Bias: true));
        Check(new Case(dtype, 67, 45, 290, Seed: 22, Alpha: -2, Beta: 0.25, Bias: true, TransA: true));
        Check(new Case(dtype, 7, 5, 0, Seed: 23, Alpha: 3, Beta: 2, Bias: true));
    }

    [Theory]
    [MemberData(nameof(FloatTypes))]
    public void BetaZero_IgnoresNaNInOutput(DType dtype)
    {
        Check(new Case(dtype, 5, 7, 3, Seed: 31, Beta: 0, NaNInC: true));
        Check(new Case(dtype, 61, 70, 80, Seed: 32, Beta: 0, NaNInC: true, Bias: true));
        Check(new Case(dtype, 4, 3, 0, Seed: 33, Beta: 0, NaNInC: true));
    }

    [Theory]
    [MemberData(nameof(FloatTypes))]
    public void Batched_AndBroadcast_MatchReference(DType dtype)
    {
        Check(new Case(dtype, 7, 9, 5, Seed: 41, Batch: 3, BatchA: 3, BatchB: 3));
        Check(new Case(dtype, 7, 9, 5, Seed: 42, Batch: 3, BatchA: 1, BatchB: 3, Beta: 1, Bias: true));
        Check(new Case(dtype, 50, 70, 90, Seed: 43, Batch: 2, BatchA: 2, BatchB: 1, TransB: true));
        Check(new Case(dtype, 66, 20, 40, Seed: 44, Batch: 4, BatchA: 1, BatchB: 1, TransA: true, Alpha: 0.5));
    }

    /// <summary>
    /// A deep K runs in spans that each accumulate into C when the K × nc panel passes the panel budget (the LM head's
    /// dx = dlogits·W has K = 50257). A 64 KiB budget makes every span one k block here: beta and the bias must apply
    /// in the first span only, across every transpose combination.
    /// </summary>
    [Theory]
    [InlineData(DType.F32)]
    [InlineData(DType.F64)]
    public void DeepK_RunsInSpans_MatchesReference(DType dtype)
    {
        Gemm.CpuGemm.PanelBytesOverride = 64 << 10;
        try
        {
            Check(new Case(dtype, 37, 70, 3001, Seed: 51, Beta: 0.5, Bias: true));
            Check(new Case(dtype, 26, 33, 1500, Seed: 52, TransA: true, TransB: true, Alpha: -1.5));
            Check(new Case(dtype, 13, 65, 1100, Seed: 53, TransB: true, Beta: 1));
        }
        finally
        {
            Gemm.CpuGemm.PanelBytesOverride = 0;
        }
    }

    /// <summary>One output row (a bias gradient onesᵀ·dY) skips packing; every layout, with beta and the bias, across vector widths.</summary>
    [Theory]
    [InlineData(DType.F32, 70, 300)]
    [InlineData(DType.F32, 17, 9)]
    [InlineData(DType.F32, 1, 64)]
    [InlineData(DType.F64, 33, 513)]
    public void SingleRow_AllLayouts_MatchReference(DType dtype, int n, int k)
    {
        foreach (bool transA in new[] { false, true })
        {
            foreach (bool transB in new[] { false, true })
            {
                Check(new Case(dtype, 1, n, k, Seed: 70 + n + k, TransA: transA, TransB: transB));
                Check(new Case(dtype, 1, n, k, Seed: 71 + n + k, TransA: transA, TransB: transB, Alpha: 0.5, Beta: -2, Bias: true));
            }
        }
    }

    /// <summary>The LM head's transposed layouts at a K just past the single-block limit of 1.5 kc (F32 AVX-512: 384).</summary>
    [Theory]
    [InlineData(383)]
    [InlineData(384)]
    [InlineData(385)]
    public void F32_TransposedOperands_AroundSingleBlockDepth_MatchReference(int k)
    {
        Check(new Case(DType.F32, 25, 65, k, Seed: 60 + k, TransB: true));
        Check(new Case(DType.F32, 25, 65, k, Seed: 61 + k, TransA: true));
    }

    [Theory]
    [InlineData(DType.F32, 4, 5, 3)]
    [InlineData(DType.F32, 70, 40, 300)]
    [InlineData(DType.F64, 70, 40, 300)]
    [InlineData(DType.BF16, 30, 20, 10)]
    public void NaNAndInfInA_PropagateToTheirRows(DType dtype, int m, int n, int k)
    {
        NaNAndInfInA(_ops, dtype, m, n, k);
        NaNAndInfInA(_ops256, dtype, m, n, k);
    }

    private static void NaNAndInfInA(Ops ops, DType dtype, int m, int n, int k)
    {
        int bits = ((CpuKernels)ops.Device.Kernels).GemmVectorBits;
        // Every B value has magnitude in [0.5, 1], so an Inf in A[i, p] makes row i of C ±Inf with the sign of B[p, j].
        const int seed = 51;
        var av = RandomValues(m * k, seed, -1, 1);
        var bv = RandomValues(k * n, seed + 1, 0.5, 1);
        for (int i = 0; i < bv.Length; i += 3)
        {
            bv[i] = -bv[i];
        }
        int nanRow = 1, infRow = m - 1, infCol = k / 2;
        av[(nanRow * k) + (k - 1)] = double.NaN;
        av[(infRow * k) + infCol] = double.PositiveInfinity;
        using var a = ops.FromArray(av, new Shape(m, k), dtype);
        using var b = ops.FromArray(bv, new Shape(k, n), dtype);
        using var c = ops.FromArray(new double[m * n], new Shape(m, n), dtype);
        ops.Gemm(a, b, c);
        var got = ops.ToDoubleArray(c);
        for (int i = 0; i < m; i++)
        {
            for (int j = 0; j < n; j++)
            {
                double v = got[(i * n) + j];
                if (i == nanRow)
                {
                    Assert.True(double.IsNaN(v), $"{bits}-bit kernels, seed {seed}: C[{i},{j}] = {v}, expected NaN");
                }
                else if (i == infRow)
                {
                    double expected = double.CopySign(double.PositiveInfinity, bv[(infCol * n) + j]);
                    Assert.True(v == expected, $"{bits}-bit kernels, seed {seed}: C[{i},{j}] = {v}, expected {expected}");
                }
                else
                {
                    Assert.True(double.IsFinite(v), $"{bits}-bit kernels, seed {seed}: C[{i},{j}] = {v}, expected finite");
                }
            }
        }
    }

    [Theory]
    [InlineData(5, 17, 9)]
    [InlineData(40, 70, 300)]
    public void F32_SubnormalInputs_MatchReference(int m, int n, int k)
    {
        SubnormalInputs(_ops, m, n, k);
        SubnormalInputs(_ops256, m, n, k);
    }

    private static void SubnormalInputs(Ops ops, int m, int n, int k)
    {
        int bits = ((CpuKernels)ops.Device.Kernels).GemmVectorBits;
        // A holds F32 subnormals (|a| < 2^-126 ≈ 1.18e-38), B values in [-1, 1): every product and partial sum is subnormal.
        const int seed = 71;
        var av = Array.ConvertAll(RandomValues(m * k, seed, -1, 1), v => v * 1e-39);
        var bv = RandomValues(k * n, seed + 1, -1, 1);
        using var a = ops.FromArray(av, new Shape(m, k), DType.F32);
        using var b = ops.FromArray(bv, new Shape(k, n), DType.F32);
        using var c = ops.FromArray(new double[m * n], new Shape(m, n), DType.F32);
        var stored = ops.ToDoubleArray(a);
        Assert.Contains(stored, v => v != 0 && Math.Abs(v) < Math.Pow(2, -126));
        ops.Gemm(a, b, c);
        var got = ops.ToDoubleArray(c);
        for (int i = 0; i < m; i++)
        {
            for (int j = 0; j < n; j++)
            {
                double expected = 0, sumAbs = 0;
                for (int p = 0; p < k; p++)
                {
                    expected += stored[(i * k) + p] * bv[(p * n) + j];
                    sumAbs += Math.Abs(stored[(i * k) + p] * bv[(p * n) + j]);
                }
                // Higham's model with gradual underflow: fl(x op y) = (x op y)(1 + δ) + η with |δ| ≤ u = 2^-24 and
                // |η| ≤ 2^-150 (half the smallest subnormal); over K products and K sums that is
                // γ_K · Σ|a||b| + 2K · 2^-150 (partial sums can grow past 2^-126 into the normal range).
                double u = Math.Pow(2, -24);
                double tol = (k * u / (1 - (k * u)) * sumAbs) + (2 * k * Math.Pow(2, -150));
                double err = Math.Abs(got[(i * n) + j] - expected);
                Assert.True(err <= tol, $"{bits}-bit kernels, seed {seed} M={m} N={n} K={k}: C[{i},{j}] = {got[(i * n) + j]:E6}, expected {expected:E6}, |err| {err:E3} > tol {tol:E3}");
            }
        }
    }

    private sealed record Case(
        DType DType, int M, int N, int K, int Seed,
        bool TransA = false, bool TransB = false, double Alpha = 1, double Beta = 0, bool Bias = false,
        int Batch = 1, int BatchA = 1, int BatchB = 1, bool NaNInC = false);

    private void Check(Case t)
    {
        Check(_ops, t);
        Check(_ops256, t);
    }

    private static void Check(Ops ops, Case t)
    {
        int bits = ((CpuKernels)ops.Device.Kernels).GemmVectorBits;
        int m = t.M, n = t.N, k = t.K;
        var aShape = t.TransA ? new Shape(t.BatchA, k, m) : new Shape(t.BatchA, m, k);
        var bShape = t.TransB ? new Shape(t.BatchB, n, k) : new Shape(t.BatchB, k, n);
        var cShape = new Shape(t.Batch, m, n);
        using var a = ops.FromArray(RandomValues((int)aShape.ElementCount, t.Seed, -1, 1), aShape, t.DType);
        using var b = ops.FromArray(RandomValues((int)bShape.ElementCount, t.Seed + 1, -1, 1), bShape, t.DType);
        var c0Values = t.NaNInC ? Enumerable.Repeat(double.NaN, (int)cShape.ElementCount).ToArray() : RandomValues((int)cShape.ElementCount, t.Seed + 2, -1, 1);
        using var c = ops.FromArray(c0Values, cShape, t.DType);
        using var bias = t.Bias ? ops.FromArray(RandomValues(n, t.Seed + 3, -1, 1), new Shape(n), t.DType) : null;

        // The reference reads back what the device stores, so input rounding to 16 bits is not counted as error.
        var av = ops.ToDoubleArray(a);
        var bv = ops.ToDoubleArray(b);
        var c0 = ops.ToDoubleArray(c);
        var biasV = bias is null ? null : ops.ToDoubleArray(bias);

        ops.Gemm(a, b, c, t.TransA, t.TransB, t.Alpha, t.Beta, bias);
        var got = ops.ToDoubleArray(c);

        // Accumulation unit roundoff: F64 computes in F64, every other dtype in F32.
        double u = t.DType == DType.F64 ? Math.Pow(2, -53) : Math.Pow(2, -24);
        // Output rounding for 16-bit storage: unit roundoff 2^-11 (F16) / 2^-8 (BF16), plus half the smallest
        // F16 subnormal (2^-25) for results that land in F16's subnormal range.
        double uOut = t.DType switch { DType.F16 => Math.Pow(2, -11), DType.BF16 => Math.Pow(2, -8), _ => 0 };
        double absOut = t.DType == DType.F16 ? Math.Pow(2, -25) : 0;
        for (int bi = 0; bi < t.Batch; bi++)
        {
            int ba = t.BatchA == 1 ? 0 : bi, bb = t.BatchB == 1 ? 0 : bi;
            for (int i = 0; i < m; i++)
            {
                for (int j = 0; j < n; j++)
                {
                    double sum = 0, sumAbs = 0;
                    for (int p = 0; p < k; p++)
                    {
                        double x = av[ba * m * k + (t.TransA ? (p * m) + i : (i * k) + p)];
                        double y = bv[bb * k * n + (t.TransB ? (j * k) + p : (p * n) + j)];
                        sum += x * y;
                        sumAbs += Math.Abs(x * y);
                    }
                    int ci = (bi * m * n) + (i * n) + j;
                    double prior = t.Beta == 0 ? 0 : t.Beta * c0[ci];
                    double biasJ = biasV?[j] ?? 0;
                    double expected = (t.Alpha * sum) + prior + biasJ;
                    // Higham's bound for a length-K dot product in any summation order, |fl(x·y) − x·y| ≤ γ_K Σ|x_k y_k|
                    // with γ_n = n·u / (1 − n·u); three more roundings (alpha, beta·C, bias) give γ_{K+3}, applied to
                    // every magnitude that enters the sum. For F64 the double reference carries the same bound, hence 2×.
                    int roundings = k + 3;
                    double gamma = roundings * u / (1 - (roundings * u));
                    double magnitude = (Math.Abs(t.Alpha) * sumAbs) + Math.Abs(prior) + Math.Abs(biasJ);
                    double tol = gamma * magnitude * (t.DType == DType.F64 ? 2 : 1);
                    tol += (uOut * (Math.Abs(expected) + tol)) + absOut;
                    double err = Math.Abs(got[ci] - expected);
                    Assert.True(err <= tol,
                        $"{bits}-bit kernels, {t.DType} seed {t.Seed} M={m} N={n} K={k} transA={t.TransA} transB={t.TransB} batch {bi}: C[{i},{j}] = {got[ci]}, expected {expected}, |err| {err:E3} > tol {tol:E3}");
                }
            }
        }
    }

    private static double[] RandomValues(int count, int seed, double low, double high)
    {
        var values = new float[count];
        Philox.FillUniform(values, (ulong)seed, 0, (float)low, (float)high);
        return Array.ConvertAll(values, v => (double)v);
    }
}
