namespace Hal.Backends.Npu.Tests;

/// <summary>Fused attention forward and backward on npu:0 against the CPU backend's.</summary>
[Collection("npu")]
public sealed class AttentionTests(NpuFixture f)
{
    private const ulong Seed = 71;

    [Theory]
    [InlineData(false, 5, 5)]
    [InlineData(true, 5, 7)]
    [InlineData(true, 6, 4)]
    public void AttentionWithGroupedHeadsMatchesCpu(bool causal, int tq, int tk)
    {
        // B 2, H 4, Hkv 2, D 8; Tq > Tk with causal leaves early query rows with no key (out 0, lse −∞).
        var qs = new Shape(2, 4, tq, 8);
        var ks = new Shape(2, 2, tk, 8);
        var (qn, qc) = Kit.Both(f, Kit.Random((int)qs.ElementCount, Seed), qs, DType.F32);
        var (kn, kc) = Kit.Both(f, Kit.Random((int)ks.ElementCount, Seed + 1), ks, DType.F32);
        var (vn, vc) = Kit.Both(f, Kit.Random((int)ks.ElementCount, Seed + 2), ks, DType.F32);
        var (don, doc) = Kit.Both(f, Kit.Random((int)qs.ElementCount, Seed + 3), qs, DType.F32);
        double scale = 1 / Math.Sqrt(8);
        using var on = f.NpuOps.Empty(qs);
        using var oc = f.CpuOps.Empty(qs);
        using var ln = f.NpuOps.Empty(new Shape(2, 4, tq));
        using var lc = f.CpuOps.Empty(new Shape(2, 4, tq));
        f.NpuOps.Attention(qn, kn, vn, causal, scale, on, ln);
        f.CpuOps.Attention(qc, kc, vc, causal, scale, oc, lc);
        // F32 softmax and products over ≤ 8 terms in different orders: 1e-5.
        Kit.Close(f.CpuOps.ToDoubleArray(oc), f.NpuOps.ToDoubleArray(on), 1e-5, 1e-5, $"attention out causal={causal} seed={Seed}");
        Kit.Close(f.CpuOps.ToDoubleArray(lc), f.NpuOps.ToDoubleArray(ln), 1e-5, 1e-5, $"attention lse causal={causal} seed={Seed}");
        using var dqn = f.NpuOps.Empty(qs);
        using var dqc = f.CpuOps.Empty(qs);
        using var dkn = f.NpuOps.Empty(ks);
        using var dkc = f.CpuOps.Empty(ks);
        using var dvn = f.NpuOps.Empty(ks);
        using var dvc = f.CpuOps.Empty(ks);
        f.NpuOps.AttentionBackward(qn, kn, vn, on, ln, don, causal, scale, dqn, dkn, dvn);
        f.CpuOps.AttentionBackward(qc, kc, vc, oc, lc, doc, causal, scale, dqc, dkc, dvc);
        // Gradients sum ≤ 2·7 products of the above: 1e-4.
        Kit.Close(f.CpuOps.ToDoubleArray(dqc), f.NpuOps.ToDoubleArray(dqn), 1e-4, 1e-5, $"attention dq causal={causal} seed={Seed}");
        Kit.Close(f.CpuOps.ToDoubleArray(dkc), f.NpuOps.ToDoubleArray(dkn), 1e-4, 1e-5, $"attention dk causal={causal} seed={Seed}");
        Kit.Close(f.CpuOps.ToDoubleArray(dvc), f.NpuOps.ToDoubleArray(dvn), 1e-4, 1e-5, $"attention dv causal={causal} seed={Seed}");
        foreach (var t in new[] { qn, qc, kn, kc, vn, vc, don, doc })
        {
            t.Dispose();
        }
    }
}

/// <summary>Fused rotary embedding on npu:0 against the CPU backend's.</summary>
[Collection("npu")]
public sealed class RotaryTests(NpuFixture f)
{
    private const ulong Seed = 97;

    [Theory]
    [InlineData(DType.F32, 0)]
    [InlineData(DType.F32, 3)]
    [InlineData(DType.BF16, 2)]
    public void RotaryAndItsInverseMatchCpu(DType dtype, int offset)
    {
        // x [2, 5, 3, 8]; cos/sin tables [9, 4] of which rows offset .. offset + 5 are used.
        var xs = new Shape(2, 5, 3, 8);
        var (xn, xc) = Kit.Both(f, Kit.Random((int)xs.ElementCount, Seed), xs, dtype);
        var angles = Enumerable.Range(0, 36).Select(i => 0.1 * i).ToArray();
        var (cn, cc) = Kit.Both(f, angles.Select(Math.Cos).ToArray(), new Shape(9, 4), DType.F32);
        var (sn, sc) = Kit.Both(f, angles.Select(Math.Sin).ToArray(), new Shape(9, 4), DType.F32);
        using var yn = f.NpuOps.Empty(xs, dtype);
        using var yc = f.CpuOps.Empty(xs, dtype);
        f.NpuOps.Rotary(xn, cn, sn, offset, yn);
        f.CpuOps.Rotary(xc, cc, sc, offset, yc);
        // Two F32 products and a sum per element; 16-bit outputs round once more.
        double tol = dtype == DType.F32 ? 1e-6 : dtype.Epsilon();
        Kit.Close(f.CpuOps.ToDoubleArray(yc), f.NpuOps.ToDoubleArray(yn), tol, tol, $"rotary {dtype.Name()} offset {offset} seed={Seed}");
        f.NpuOps.RotaryBackward(yn, cn, sn, offset, xn);
        f.CpuOps.RotaryBackward(yc, cc, sc, offset, xc);
        Kit.Close(f.CpuOps.ToDoubleArray(xc), f.NpuOps.ToDoubleArray(xn), tol, tol, $"rotary backward {dtype.Name()} offset {offset} seed={Seed}");
        foreach (var t in new[] { xn, xc, cn, cc, sn, sc })
        {
            t.Dispose();
        }
    }
}
