using static Hal.Backends.Cpu.Tests.FusedTestSupport;

namespace Hal.Backends.Cpu.Tests;

// Attention kernels against a naive double-loop reference and finite differences.
// Legend: B batch, H query heads, Hkv key/value heads, Tq/Tk query/key lengths, D head size;
// q, out [B, H, Tq, D]; k, v [B, Hkv, Tk, D]; lse [B, H, Tq].
public sealed class FusedAttentionTests(FusedFixture fx) : IClassFixture<FusedFixture>
{
    private sealed record Problem(int B, int H, int Hkv, int Tq, int Tk, int D, bool Causal)
    {
        public double Scale => 1 / Math.Sqrt(D);

        public Shape QShape => new(B, H, Tq, D);

        public Shape KShape => new(B, Hkv, Tk, D);

        public long Q(int b, int h, int i) => ((((long)b * H) + h) * Tq + i) * D;

        public long K(int b, int h, int j) => ((((long)b * Hkv) + (h / (H / Hkv))) * Tk + j) * D;

        public bool Visible(int i, int j) => !Causal || j <= i + (Tk - Tq);

        public override string ToString() => $"B={B} H={H} Hkv={Hkv} Tq={Tq} Tk={Tk} D={D} causal={Causal}";
    }

    /// <summary>Scores, probabilities, out and lse of one (b, h, i) row, straight from the definition.</summary>
    private static (double[] Out, double[] Lse, double[][] P) Reference(Problem p, double[] q, double[] k, double[] v)
    {
        var output = new double[p.QShape.ElementCount];
        var lse = new double[(long)p.B * p.H * p.Tq];
        var probs = new double[lse.Length][];
        for (int b = 0; b < p.B; b++)
        {
            for (int h = 0; h < p.H; h++)
            {
                for (int i = 0; i < p.Tq; i++)
                {
                    long row = (((long)b * p.H) + h) * p.Tq + i;
                    var s = new double[p.Tk];
                    double max = double.NegativeInfinity;
                    for (int j = 0; j < p.Tk; j++)
                    {
                        s[j] = double.NegativeInfinity;
                        if (p.Visible(i, j))
                        {
                            double dot = 0;
                            for (int d = 0; d < p.D; d++)
                            {
                                dot += q[p.Q(b, h, i) + d] * k[p.K(b, h, j) + d];
                            }
                            s[j] = dot * p.Scale;
                            max = Math.Max(max, s[j]);
                        }
                    }
                    probs[row] = new double[p.Tk];
                    if (double.IsNegativeInfinity(max))
                    {
                        lse[row] = double.NegativeInfinity;
                        continue;
                    }
                    double sum = 0;
                    for (int j = 0; j < p.Tk; j++)
                    {
                        sum += Math.Exp(s[j] - max);
                    }
                    lse[row] = max + Math.Log(sum);
                    for (int j = 0; j < p.Tk; j++)
                    {
                        probs[row][j] = Math.Exp(s[j] - lse[row]);
                        for (int d = 0; d < p.D; d++)
                        {
                            output[p.Q(b, h, i) + d] += probs[row][j] * v[p.K(b, h, j) + d];
                        }
                    }
                }
            }
        }
        return (output, lse, probs);
    }

    private (double[] Out, double[] Lse) Run(Problem p, double[] q, double[] k, double[] v, DType dtype)
    {
        using var tq = fx.Ops.FromArray(q, p.QShape, dtype);
        using var tk = fx.Ops.FromArray(k, p.KShape, dtype);
        using var tv = fx.Ops.FromArray(v, p.KShape, dtype);
        using var to = fx.Ops.Empty(p.QShape, dtype);
        using var tl = fx.Ops.Empty(new Shape(p.B, p.H, p.Tq), DType.F32);
        fx.Kernels.Attention(tq, tk, tv, p.Causal, p.Scale, to, tl);
        return (fx.Ops.ToDoubleArray(to), fx.Ops.ToDoubleArray(tl));
    }

    private (double[] Dq, double[] Dk, double[] Dv) RunBackward(Problem p, double[] q, double[] k, double[] v, double[] dOut, DType dtype)
    {
        using var tq = fx.Ops.FromArray(q, p.QShape, dtype);
        using var tk = fx.Ops.FromArray(k, p.KShape, dtype);
        using var tv = fx.Ops.FromArray(v, p.KShape, dtype);
        using var to = fx.Ops.Empty(p.QShape, dtype);
        using var tl = fx.Ops.Empty(new Shape(p.B, p.H, p.Tq), DType.F32);
        fx.Kernels.Attention(tq, tk, tv, p.Causal, p.Scale, to, tl);
        using var tdo = fx.Ops.FromArray(dOut, p.QShape, dtype);
        // Stale contents in the gradient outputs: they must be overwritten.
        using var tdq = fx.Ops.FromArray(RandomArray(1, p.QShape.ElementCount), p.QShape, dtype);
        using var tdk = fx.Ops.FromArray(RandomArray(2, p.KShape.ElementCount), p.KShape, dtype);
        using var tdv = fx.Ops.FromArray(RandomArray(3, p.KShape.ElementCount), p.KShape, dtype);
        fx.Kernels.AttentionBackward(tq, tk, tv, to, tl, tdo, p.Causal, p.Scale, tdq, tdk, tdv);
        return (fx.Ops.ToDoubleArray(tdq), fx.Ops.ToDoubleArray(tdk), fx.Ops.ToDoubleArray(tdv));
    }

    public static TheoryData<int, int, bool, DType> Lengths()
    {
        var data = new TheoryData<int, int, bool, DType>();
        int[] lengths = [1, 5, 16, 17];
        foreach (int tq in lengths)
        {
            foreach (int tk in lengths)
            {
                foreach (bool causal in new[] { false, true })
                {
                    data.Add(tq, tk, causal, DType.F32);
                    data.Add(tq, tk, causal, DType.F64);
                }
            }
        }
        // Several key tiles (64) and query blocks (8), with whole tiles masked for the first rows.
        data.Add(70, 130, true, DType.F32);
        data.Add(130, 70, true, DType.F32);
        data.Add(70, 130, false, DType.F64);
        data.Add(17, 16, true, DType.BF16);
        data.Add(16, 17, true, DType.F16);
        return data;
    }

    [Theory]
    [MemberData(nameof(Lengths))]
    public void ForwardMatchesReference(int tq, int tk, bool causal, DType dtype)
    {
        // Alternate grouped-query (H = 4, Hkv = 2) and plain multi-head (H = Hkv = 4), and D = 8 / 16, over the sweep.
        bool grouped = ((tq + tk) % 2) == 0;
        var p = new Problem(2, 4, grouped ? 2 : 4, tq, tk, tq % 2 == 0 ? 16 : 8, causal);
        int seed = 1000 + (tq * 131) + tk;
        var q = Quantize(RandomArray(seed, p.QShape.ElementCount, -1, 1), dtype);
        var k = Quantize(RandomArray(seed + 1, p.KShape.ElementCount, -1, 1), dtype);
        var v = Quantize(RandomArray(seed + 2, p.KShape.ElementCount, -1, 1), dtype);
        var expected = Reference(p, q, k, v);
        var (output, lse) = Run(p, q, k, v, dtype);
        // |q|, |k|, |v| ≤ 1 so |s| ≤ √D: dot products err by D·ε·√D, exps by 2 ULP, the running sums by Tk·ε;
        // out is a convex combination of v (≤ 1): (D·√D + Tk + 16)·ε absolute, plus its storage rounding; lse is F32.
        double eps = ComputeEpsilon(dtype);
        double atol = eps * ((p.D * Math.Sqrt(p.D)) + p.Tk + 16) * 2;
        AssertClose(expected.Out, output, 2 * StorageRounding(dtype), atol, $"attention out {p} {dtype} seed={seed}");
        AssertClose(expected.Lse, lse, 6e-8, atol, $"attention lse {p} {dtype} seed={seed}");
        for (int r = 0; r < lse.Length; r++)
        {
            if (double.IsNegativeInfinity(lse[r]))
            {
                Assert.All(output.AsSpan(r * p.D, p.D).ToArray(), o => Assert.Equal(0.0, o));
            }
        }
    }

    public static TheoryData<int, int, int, bool> BackwardCases() => new()
    {
        { 5, 7, 2, false },
        { 5, 7, 2, true },
        { 7, 5, 2, true },
        { 6, 6, 4, true },
        { 1, 9, 2, false },
    };

    [Theory]
    [MemberData(nameof(BackwardCases))]
    public void BackwardMatchesFiniteDifferencesInF64(int tq, int tk, int hkv, bool causal)
    {
        var p = new Problem(1, 4, hkv, tq, tk, 8, causal);
        int seed = 2000 + (tq * 31) + tk + hkv;
        var q = RandomArray(seed, p.QShape.ElementCount, -1, 1);
        var k = RandomArray(seed + 1, p.KShape.ElementCount, -1, 1);
        var v = RandomArray(seed + 2, p.KShape.ElementCount, -1, 1);
        var dOut = RandomArray(seed + 3, p.QShape.ElementCount);
        var (dq, dk, dv) = RunBackward(p, q, k, v, dOut, DType.F64);
        // Central differences with h = 1e-5 on a smooth function of size ≤ 10: truncation and rounding both ≈ 1e-10.
        const double h = 1e-5, atol = 1e-8;
        AssertClose(NumericGradient(x => Weighted(dOut, Run(p, x, k, v, DType.F64).Out), q, h), dq, 0, atol, $"dq {p} seed={seed}");
        AssertClose(NumericGradient(x => Weighted(dOut, Run(p, q, x, v, DType.F64).Out), k, h), dk, 0, atol, $"dk {p} seed={seed}");
        AssertClose(NumericGradient(x => Weighted(dOut, Run(p, q, k, x, DType.F64).Out), v, h), dv, 0, atol, $"dv {p} seed={seed}");
    }

    [Theory]
    [InlineData(17, 16, true, 2, DType.F32)]
    [InlineData(70, 130, true, 2, DType.F32)]
    // Several 64-row query blocks of the F32 GEMM path: rows that see no key (Tq > Tk, causal), a block that sees a
    // few keys, one kv head for four query heads, and a non-causal ragged last block.
    [InlineData(130, 70, true, 1, DType.F32)]
    [InlineData(129, 65, false, 2, DType.F32)]
    [InlineData(16, 5, false, 4, DType.F32)]
    [InlineData(5, 17, true, 2, DType.BF16)]
    public void BackwardMatchesAnalyticReference(int tq, int tk, bool causal, int hkv, DType dtype)
    {
        var p = new Problem(2, 4, hkv, tq, tk, 16, causal);
        int seed = 3000 + (tq * 7) + tk;
        var q = Quantize(RandomArray(seed, p.QShape.ElementCount, -1, 1), dtype);
        var k = Quantize(RandomArray(seed + 1, p.KShape.ElementCount, -1, 1), dtype);
        var v = Quantize(RandomArray(seed + 2, p.KShape.ElementCount, -1, 1), dtype);
        var dOut = Quantize(RandomArray(seed + 3, p.QShape.ElementCount), dtype);
        var (output, _, probs) = Reference(p, q, k, v);
        var dq = new double[q.Length];
        var dk = new double[k.Length];
        var dv = new double[v.Length];
        // dV = Pᵀ dO; dP = dO Vᵀ; dS = P ⊙ (dP − rowsum(dO ⊙ O)); dQ = scale·dS K; dK = scale·dSᵀ Q (summed over the group).
        for (int b = 0; b < p.B; b++)
        {
            for (int h = 0; h < p.H; h++)
            {
                for (int i = 0; i < p.Tq; i++)
                {
                    double[] pr = probs[(((long)b * p.H) + h) * p.Tq + i];
                    double rowD = 0;
                    for (int d = 0; d < p.D; d++)
                    {
                        rowD += dOut[p.Q(b, h, i) + d] * output[p.Q(b, h, i) + d];
                    }
                    for (int j = 0; j < p.Tk; j++)
                    {
                        double dp = 0;
                        for (int d = 0; d < p.D; d++)
                        {
                            dp += dOut[p.Q(b, h, i) + d] * v[p.K(b, h, j) + d];
                            dv[p.K(b, h, j) + d] += pr[j] * dOut[p.Q(b, h, i) + d];
                        }
                        double ds = pr[j] * (dp - rowD) * p.Scale;
                        for (int d = 0; d < p.D; d++)
                        {
                            dq[p.Q(b, h, i) + d] += ds * k[p.K(b, h, j) + d];
                            dk[p.K(b, h, j) + d] += ds * q[p.Q(b, h, i) + d];
                        }
                    }
                }
            }
        }
        var got = RunBackward(p, q, k, v, dOut, dtype);
        // Each gradient element sums ≤ (H/Hkv)·max(Tq, Tk) products of size ≤ 4 (|dO| ≤ 2, |v| ≤ 1, p ≤ 1) whose factors
        // carry the forward's (D·√D + Tk)·ε error: (group·(Tq + Tk) + D·√D + 16)·ε·8 absolute, plus storage rounding.
        double atol = ComputeEpsilon(dtype) * (((p.H / p.Hkv) * (p.Tq + p.Tk)) + (p.D * Math.Sqrt(p.D)) + 16) * 8;
        string what = $"{p} {dtype} seed={seed}";
        AssertClose(dq, got.Dq, 2 * StorageRounding(dtype), atol, "dq " + what);
        AssertClose(dk, got.Dk, 2 * StorageRounding(dtype), atol, "dk " + what);
        AssertClose(dv, got.Dv, 2 * StorageRounding(dtype), atol, "dv " + what);
    }

    [Fact]
    public void NaNInAQueryRowStaysInThatRow()
    {
        var p = new Problem(1, 2, 2, 5, 9, 8, false);
        var q = RandomArray(4000, p.QShape.ElementCount, -1, 1);
        var k = RandomArray(4001, p.KShape.ElementCount, -1, 1);
        var v = RandomArray(4002, p.KShape.ElementCount, -1, 1);
        q[p.Q(0, 1, 3) + 2] = double.NaN;
        foreach (var dtype in new[] { DType.F32, DType.F64 })
        {
            var (output, lse) = Run(p, q, k, v, dtype);
            for (int r = 0; r < lse.Length; r++)
            {
                bool poisoned = r == 5 + 3;
                Assert.True(double.IsNaN(lse[r]) == poisoned, $"{dtype}: lse[{r}] = {lse[r]}");
                Assert.True(double.IsNaN(output[r * p.D]) == poisoned, $"{dtype}: out row {r}");
            }
        }
    }
}
