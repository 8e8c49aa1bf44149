namespace Hal.Abstractions.Tests;

// Shapes: q, out [B, H, Tq, D]; k, v [B, Hkv, Tk, D]; lse [B, H, Tq] (F32).
// Rotary: x [B, T, H, D], cos/sin [Tmax, D/2] (F32).
public sealed class CompositeAttentionTests : CompositeTestBase
{
    // lse is saved in F32 (the contract), so F64 gradients carry its 2^-24 ≈ 6e-8 relative error through P;
    // the finite differences themselves (h = 1e-6) are good to ≈ 1e-9.
    private const double FdTolerance = 2e-6;

    private static (double[] Out, double[] Lse) AttentionReference(double[] q, double[] k, double[] v, int b, int h, int hkv, int tq, int tk, int d, bool causal, double scale)
    {
        var output = new double[b * h * tq * d];
        var lse = new double[b * h * tq];
        int group = h / hkv;
        for (int bi = 0; bi < b; bi++)
        {
            for (int hi = 0; hi < h; hi++)
            {
                int kh = hi / group;
                for (int i = 0; i < tq; i++)
                {
                    var scores = new double[tk];
                    double max = double.NegativeInfinity;
                    for (int j = 0; j < tk; j++)
                    {
                        bool visible = !causal || j <= i + (tk - tq);
                        double dot = 0;
                        for (int e = 0; e < d; e++)
                        {
                            dot += q[((((bi * h) + hi) * tq) + i) * d + e] * k[((((bi * hkv) + kh) * tk) + j) * d + e];
                        }
                        scores[j] = visible ? dot * scale : double.NegativeInfinity;
                        max = Math.Max(max, scores[j]);
                    }
                    int row = (((bi * h) + hi) * tq) + i;
                    if (double.IsNegativeInfinity(max))
                    {
                        lse[row] = double.NegativeInfinity;
                        continue;
                    }
                    double sum = 0;
                    for (int j = 0; j < tk; j++)
                    {
                        sum += Math.Exp(scores[j] - max);
                    }
                    lse[row] = max + Math.Log(sum);
                    for (int j = 0; j < tk; j++)
                    {
                        double p = Math.Exp(scores[j] - max) / sum;
                        for (int e = 0; e < d; e++)
                        {
                            output[(row * d) + e] += p * v[((((bi * hkv) + kh) * tk) + j) * d + e];
                        }
                    }
                }
            }
        }
        return (output, lse);
    }

    public static TheoryData<int, int, int, int, int, int, bool, DType> ForwardCases()
    {
        var data = new TheoryData<int, int, int, int, int, int, bool, DType>();
        foreach (var dtype in new[] { DType.F32, DType.F64 })
        {
            foreach (bool causal in new[] { false, true })
            {
                data.Add(1, 1, 1, 1, 1, 1, causal, dtype);
                data.Add(2, 4, 2, 5, 5, 3, causal, dtype);   // GQA, Tq = Tk
                data.Add(1, 4, 2, 7, 4, 8, causal, dtype);   // Tq > Tk: causal rows 0..2 see no key
                data.Add(1, 2, 2, 3, 9, 5, causal, dtype);   // Tq < Tk: causal alignment to the end
                data.Add(2, 3, 1, 4, 6, 7, causal, dtype);   // multi-query
            }
        }
        data.Add(1, 4, 2, 5, 7, 8, true, DType.BF16);
        return data;
    }

    [Theory]
    [MemberData(nameof(ForwardCases))]
    public void AttentionMatchesReference(int b, int h, int hkv, int tq, int tk, int d, bool causal, DType dtype)
    {
        int seed = (b * 100000) + (h * 10000) + (hkv * 1000) + (tq * 100) + (tk * 10) + d;
        double scale = 1 / Math.Sqrt(d);
        var q = Rounded(RandomValues(seed, b * h * tq * d, 2), dtype);
        var k = Rounded(RandomValues(seed + 1, b * hkv * tk * d, 2), dtype);
        var v = Rounded(RandomValues(seed + 2, b * hkv * tk * d), dtype);
        using var qT = Upload(q, dtype, b, h, tq, d);
        using var kT = Upload(k, dtype, b, hkv, tk, d);
        using var vT = Upload(v, dtype, b, hkv, tk, d);
        using var output = Ops.Empty(new Shape(b, h, tq, d), dtype);
        using var lse = Ops.Empty(new Shape(b, h, tq), DType.F32);
        Ops.Attention(qT, kT, vT, causal, scale, output, lse);

        var (refOut, refLse) = AttentionReference(q, k, v, b, h, hkv, tq, tk, d, causal, scale);
        var (abs, rel) = ForwardTolerance(dtype);
        string what = $"attention {dtype} causal={causal} [{b}, {h}/{hkv}, {tq}x{tk}, {d}] seed {seed}";
        AssertClose(refOut, Download(output), abs, rel, what + " output");
        // lse is F32: 2^-24 relative rounding on top of the compute error.
        AssertClose(refLse, Download(lse), Math.Max(abs, 1e-7), Math.Max(rel, 1e-7), what + " lse");
    }

    [Theory]
    [InlineData(1, 4, 2, 3, 4, 2, false)]
    [InlineData(1, 4, 2, 3, 4, 2, true)]
    [InlineData(1, 2, 1, 4, 2, 3, true)]   // Tq > Tk causal: rows that see no key get zero gradient
    [InlineData(2, 2, 2, 2, 3, 2, true)]
    public void AttentionBackwardMatchesFiniteDifferences(int b, int h, int hkv, int tq, int tk, int d, bool causal)
    {
        int seed = 900 + (h * 100) + (tq * 10) + tk;
        double scale = 0.7;
        var q0 = RandomValues(seed, b * h * tq * d);
        var k0 = RandomValues(seed + 1, b * hkv * tk * d);
        var v0 = RandomValues(seed + 2, b * hkv * tk * d);
        var w = RandomValues(seed + 3, b * h * tq * d);

        double[] Forward(double[] qv, double[] kv, double[] vv)
        {
            using var q = Upload(qv, DType.F64, b, h, tq, d);
            using var k = Upload(kv, DType.F64, b, hkv, tk, d);
            using var v = Upload(vv, DType.F64, b, hkv, tk, d);
            using var o = Ops.Empty(new Shape(b, h, tq, d), DType.F64);
            using var l = Ops.Empty(new Shape(b, h, tq), DType.F32);
            Ops.Attention(q, k, v, causal, scale, o, l);
            return Download(o);
        }

        using var qT = Upload(q0, DType.F64, b, h, tq, d);
        using var kT = Upload(k0, DType.F64, b, hkv, tk, d);
        using var vT = Upload(v0, DType.F64, b, hkv, tk, d);
        using var oT = Ops.Empty(new Shape(b, h, tq, d), DType.F64);
        using var lse = Ops.Empty(new Shape(b, h, tq), DType.F32);
        Ops.Attention(qT, kT, vT, causal, scale, oT, lse);
        using var dO = Upload(w, DType.F64, b, h, tq, d);
        using var dq = Ops.Empty(qT.Shape, DType.F64);
        using var dk = Ops.Empty(kT.Shape, DType.F64);
        using var dv = Ops.Empty(vT.Shape, DType.F64);
        Ops.AttentionBackward(qT, kT, vT, oT, lse, dO, causal, scale, dq, dk, dv);

        string what = $"attention backward causal={causal} [{b}, {h}/{hkv}, {tq}x{tk}, {d}] seed {seed}";
        AssertClose(NumericGradient(q0, qv => Forward(qv, k0, v0), w), Download(dq), FdTolerance, FdTolerance, what + " dq");
        AssertClose(NumericGradient(k0, kv => Forward(q0, kv, v0), w), Download(dk), FdTolerance, FdTolerance, what + " dk");
        AssertClose(NumericGradient(v0, vv => Forward(q0, k0, vv), w), Download(dv), FdTolerance, FdTolerance, what + " dv");
    }

    [Fact]
    public void AttentionRowWithNoVisibleKeyGivesZeroOutputAndNegativeInfinityLse()
    {
        const int tq = 3, tk = 1, d = 2;
        using var q = Upload(RandomValues(1, tq * d), DType.F32, 1, 1, tq, d);
        using var k = Upload(RandomValues(2, tk * d), DType.F32, 1, 1, tk, d);
        using var v = Upload([5, 6], DType.F32, 1, 1, tk, d);
        using var o = Ops.Empty(new Shape(1, 1, tq, d), DType.F32);
        using var lse = Ops.Empty(new Shape(1, 1, tq), DType.F32);
        Ops.Attention(q, k, v, causal: true, 1.0, o, lse);
        // Query i sees keys j ≤ i − 2: rows 0 and 1 see none; row 2 sees key 0 only, so its output is v[0] exactly.
        Assert.Equal([0.0, 0.0, 0.0, 0.0, 5.0, 6.0], Download(o));
        var l = Download(lse);
        Assert.Equal(double.NegativeInfinity, l[0]);
        Assert.Equal(double.NegativeInfinity, l[1]);
        Assert.True(double.IsFinite(l[2]), $"lse of the visible row is {l[2]}");
    }

    private static double[] RotaryReference(double[] x, double[] cos, double[] sin, int b, int t, int h, int d, int offset, double sign)
    {
        var y = new double[x.Length];
        int half = d / 2;
        for (int bi = 0; bi < b; bi++)
        {
            for (int ti = 0; ti < t; ti++)
            {
                for (int hi = 0; hi < h; hi++)
                {
                    int o = (((bi * t) + ti) * h + hi) * d;
                    for (int i = 0; i < half; i++)
                    {
                        double c = cos[((offset + ti) * half) + i], s = sign * sin[((offset + ti) * half) + i];
                        y[o + i] = (x[o + i] * c) - (x[o + i + half] * s);
                        y[o + i + half] = (x[o + i + half] * c) + (x[o + i] * s);
                    }
                }
            }
        }
        return y;
    }

    private static (double[] Cos, double[] Sin) RotaryTables(int tmax, int half)
    {
        var cos = new double[tmax * half];
        var sin = new double[tmax * half];
        for (int p = 0; p < tmax; p++)
        {
            for (int i = 0; i < half; i++)
            {
                double angle = p * Math.Pow(10000, -2.0 * i / (2 * half));
                cos[(p * half) + i] = Math.Cos(angle);
                sin[(p * half) + i] = Math.Sin(angle);
            }
        }
        return (cos, sin);
    }

    [Theory]
    [InlineData(1, 1, 1, 2, 0, DType.F32)]
    [InlineData(2, 3, 2, 8, 1, DType.F32)]
    [InlineData(2, 3, 2, 8, 4, DType.F64)]
    [InlineData(1, 5, 3, 6, 0, DType.F64)]
    [InlineData(1, 4, 2, 16, 2, DType.BF16)]
    public void RotaryAndBackwardMatchReference(int b, int t, int h, int d, int offset, DType dtype)
    {
        int seed = (b * 1000) + (t * 100) + (h * 10) + d;
        int tmax = offset + t + 1;
        var (cos, sin) = RotaryTables(tmax, d / 2);
        var cosStored = Rounded(cos, DType.F32);
        var sinStored = Rounded(sin, DType.F32);
        var x = Rounded(RandomValues(seed, b * t * h * d, 2), dtype);
        using var xT = Upload(x, dtype, b, t, h, d);
        using var cT = Upload(cos, DType.F32, tmax, d / 2);
        using var sT = Upload(sin, DType.F32, tmax, d / 2);
        using var y = Ops.Empty(xT.Shape, dtype);
        var (abs, rel) = ForwardTolerance(dtype);
        // F64 results use F32 tables exactly, so the reference reads the same stored tables.
        Ops.Rotary(xT, cT, sT, offset, y);
        AssertClose(RotaryReference(x, cosStored, sinStored, b, t, h, d, offset, 1), Download(y), abs, rel, $"rotary {dtype} [{b}, {t}, {h}, {d}] offset {offset} seed {seed}");
        Ops.RotaryBackward(xT, cT, sT, offset, y);
        AssertClose(RotaryReference(x, cosStored, sinStored, b, t, h, d, offset, -1), Download(y), abs, rel, $"rotary backward {dtype} [{b}, {t}, {h}, {d}] offset {offset} seed {seed}");
    }

    [Fact]
    public void RotaryBackwardMatchesFiniteDifferences()
    {
        const int b = 1, t = 3, h = 2, d = 4, offset = 2;
        var (cos, sin) = RotaryTables(offset + t, d / 2);
        var x0 = RandomValues(61, b * t * h * d);
        var w = RandomValues(62, b * t * h * d);
        using var cT = Upload(cos, DType.F32, offset + t, d / 2);
        using var sT = Upload(sin, DType.F32, offset + t, d / 2);
        double[] Forward(double[] xv)
        {
            using var x = Upload(xv, DType.F64, b, t, h, d);
            using var y = Ops.Empty(x.Shape, DType.F64);
            Ops.Rotary(x, cT, sT, offset, y);
            return Download(y);
        }
        using var dy = Upload(w, DType.F64, b, t, h, d);
        using var dx = Ops.Empty(dy.Shape, DType.F64);
        Ops.RotaryBackward(dy, cT, sT, offset, dx);
        // Rotary is linear, so central differences are exact up to rounding (≈ 1e-10 at h = 1e-6).
        AssertClose(NumericGradient(x0, Forward, w), Download(dx), 1e-8, 1e-8, "rotary backward seeds 61/62");
    }
}
