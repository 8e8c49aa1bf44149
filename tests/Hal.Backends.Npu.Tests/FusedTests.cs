namespace Hal.Backends.Npu.Tests;

/// <summary>The npu backend's fused (tier-2) kernels against the CPU backend's on the same inputs.</summary>
[Collection("npu")]
public sealed class FusedTests(NpuFixture f)
{
    private const ulong Seed = 53;

    /// <summary>Row widths around vector widths; 3 rows each.</summary>
    public static TheoryData<int, DType> Widths()
    {
        var data = new TheoryData<int, DType>();
        foreach (int c in new[] { 1, 7, 16, 33, 65 })
        {
            data.Add(c, DType.F32);
        }
        data.Add(17, DType.BF16);
        data.Add(17, DType.F16);
        return data;
    }

    /// <summary>Tolerance: both backends compute in F32 in different orders (1e-5), and 16-bit outputs round once more.</summary>
    private static double Tol(DType dtype) => dtype == DType.F32 ? 1e-5 : 2 * dtype.Epsilon();

    private (Tensor Npu, Tensor Cpu) Rand(Shape shape, DType dtype, ulong seed) => Kit.Both(f, Kit.Random((int)shape.ElementCount, seed), shape, dtype);

    private void Same(Tensor cpu, Tensor npu, DType dtype, string what) =>
        Kit.Close(f.CpuOps.ToDoubleArray(cpu), f.NpuOps.ToDoubleArray(npu), Tol(dtype), Tol(dtype), $"{what} seed={Seed}");

    [Theory]
    [MemberData(nameof(Widths))]
    public void SoftmaxLogSoftmaxAndTheirBackwardsMatchCpu(int c, DType dtype)
    {
        var shape = new Shape(3, c);
        var (xn, xc) = Rand(shape, dtype, Seed);
        var (dyn, dyc) = Rand(shape, dtype, Seed + 1);
        using var yn = f.NpuOps.Empty(shape, dtype);
        using var yc = f.CpuOps.Empty(shape, dtype);
        using var dxn = f.NpuOps.Empty(shape, dtype);
        using var dxc = f.CpuOps.Empty(shape, dtype);
        f.NpuOps.Softmax(xn, yn);
        f.CpuOps.Softmax(xc, yc);
        Same(yc, yn, dtype, $"softmax c={c}");
        f.NpuOps.SoftmaxBackward(yn, dyn, dxn);
        f.CpuOps.SoftmaxBackward(yc, dyc, dxc);
        Same(dxc, dxn, dtype, $"softmax backward c={c}");
        f.NpuOps.LogSoftmax(xn, yn);
        f.CpuOps.LogSoftmax(xc, yc);
        Same(yc, yn, dtype, $"log-softmax c={c}");
        f.NpuOps.LogSoftmaxBackward(yn, dyn, dxn);
        f.CpuOps.LogSoftmaxBackward(yc, dyc, dxc);
        Same(dxc, dxn, dtype, $"log-softmax backward c={c}");
        Assert.Equal(KernelPath.Fused, f.NpuOps.PathFor(FusedOp.Softmax, dtype));
        foreach (var t in new[] { xn, xc, dyn, dyc })
        {
            t.Dispose();
        }
    }

    [Theory]
    [MemberData(nameof(Widths))]
    public void LayerNormAndRmsNormForwardAndBackwardMatchCpu(int c, DType dtype)
    {
        var shape = new Shape(2, 3, c);
        var (xn, xc) = Rand(shape, dtype, Seed);
        var (dyn, dyc) = Rand(shape, dtype, Seed + 1);
        var (wn, wc) = Rand(new Shape(c), dtype, Seed + 2);
        var (bn, bc) = Rand(new Shape(c), dtype, Seed + 3);
        using var yn = f.NpuOps.Empty(shape, dtype);
        using var yc = f.CpuOps.Empty(shape, dtype);
        using var mn = f.NpuOps.Empty(new Shape(6), DType.F32);
        using var mc = f.CpuOps.Empty(new Shape(6), DType.F32);
        using var rn = f.NpuOps.Empty(new Shape(6), DType.F32);
        using var rc = f.CpuOps.Empty(new Shape(6), DType.F32);
        f.NpuOps.LayerNorm(xn, wn, bn, 1e-5, yn, mn, rn);
        f.CpuOps.LayerNorm(xc, wc, bc, 1e-5, yc, mc, rc);
        Same(yc, yn, dtype, $"layer-norm y c={c}");
        Same(mc, mn, DType.F32, $"layer-norm mean c={c}");
        // rstd of a one-element row is 1/√eps ≈ 316: relative tolerance only.
        Kit.Close(f.CpuOps.ToDoubleArray(rc), f.NpuOps.ToDoubleArray(rn), 1e-4, 0, $"layer-norm rstd c={c}");
        using var dxn = f.NpuOps.Empty(shape, dtype);
        using var dxc = f.CpuOps.Empty(shape, dtype);
        using var dwn = f.NpuOps.Empty(new Shape(c), dtype);
        using var dwc = f.CpuOps.Empty(new Shape(c), dtype);
        using var dbn = f.NpuOps.Empty(new Shape(c), dtype);
        using var dbc = f.CpuOps.Empty(new Shape(c), dtype);
        f.NpuOps.LayerNormBackward(dyn, xn, wn, mn, rn, dxn, dwn, dbn);
        f.CpuOps.LayerNormBackward(dyc, xc, wc, mc, rc, dxc, dwc, dbc);
        // dx subtracts row means of products that carry rstd ≈ 316 for c = 1: scale the absolute floor with it.
        double abs = c == 1 ? 1e-2 : Tol(dtype) * 10;
        Kit.Close(f.CpuOps.ToDoubleArray(dxc), f.NpuOps.ToDoubleArray(dxn), Tol(dtype) * 10, abs, $"layer-norm dx c={c} seed={Seed}");
        Kit.Close(f.CpuOps.ToDoubleArray(dwc), f.NpuOps.ToDoubleArray(dwn), Tol(dtype) * 10, Tol(dtype) * 10, $"layer-norm dw c={c} seed={Seed}");
        Same(dbc, dbn, dtype, $"layer-norm db c={c}");

        f.NpuOps.RmsNorm(xn, wn, 1e-6, yn, rn);
        f.CpuOps.RmsNorm(xc, wc, 1e-6, yc, rc);
        Same(yc, yn, dtype, $"rms-norm y c={c}");
        Kit.Close(f.CpuOps.ToDoubleArray(rc), f.NpuOps.ToDoubleArray(rn), 1e-5, 0, $"rms-norm rstd c={c} seed={Seed}");
        f.NpuOps.RmsNormBackward(dyn, xn, wn, rn, dxn, dwn);
        f.CpuOps.RmsNormBackward(dyc, xc, wc, rc, dxc, dwc);
        Kit.Close(f.CpuOps.ToDoubleArray(dxc), f.NpuOps.ToDoubleArray(dxn), Tol(dtype) * 10, Tol(dtype) * 10, $"rms-norm dx c={c} seed={Seed}");
        Kit.Close(f.CpuOps.ToDoubleArray(dwc), f.NpuOps.ToDoubleArray(dwn), Tol(dtype) * 10, Tol(dtype) * 10, $"rms-norm dw c={c} seed={Seed}");
        foreach (var t in new[] { xn, xc, dyn, dyc, wn, wc, bn, bc })
        {
            t.Dispose();
        }
    }

    [Theory]
    [InlineData(DType.F32, DType.I64)]
    [InlineData(DType.BF16, DType.I32)]
    public void CrossEntropyAndItsBackwardMatchCpuWithIgnoredTargets(DType dtype, DType targetType)
    {
        var shape = new Shape(5, 33);
        var (zn, zc) = Rand(shape, dtype, Seed);
        double[] targets = [3, -1, 32, 0, -100];
        var (tn, tc) = Kit.Both(f, targets, new Shape(5), targetType);
        var (dln, dlc) = Rand(new Shape(5), DType.F32, Seed + 1);
        using var ln = f.NpuOps.Empty(new Shape(5));
        using var lc = f.CpuOps.Empty(new Shape(5));
        using var sn = f.NpuOps.Empty(new Shape(5));
        using var sc = f.CpuOps.Empty(new Shape(5));
        f.NpuOps.CrossEntropy(zn, tn, ln, sn);
        f.CpuOps.CrossEntropy(zc, tc, lc, sc);
        Same(lc, ln, DType.F32, "cross-entropy losses");
        Same(sc, sn, DType.F32, "cross-entropy lse");
        using var dn = f.NpuOps.Empty(shape, dtype);
        using var dc = f.CpuOps.Empty(shape, dtype);
        f.NpuOps.CrossEntropyBackward(zn, tn, sn, dln, dn);
        f.CpuOps.CrossEntropyBackward(zc, tc, sc, dlc, dc);
        Same(dc, dn, dtype, "cross-entropy dlogits");
        foreach (var t in new[] { zn, zc, tn, tc, dln, dlc })
        {
            t.Dispose();
        }
    }

    [Fact]
    public void EmbeddingAndItsBackwardMatchCpu()
    {
        var (wn, wc) = Rand(new Shape(7, 5), DType.F32, Seed);
        var (idn, idc) = Kit.Both(f, [6, 0, 6, 2], new Shape(2, 2), DType.I64);
        using var yn = f.NpuOps.Empty(new Shape(2, 2, 5));
        using var yc = f.CpuOps.Empty(new Shape(2, 2, 5));
        f.NpuOps.Embedding(wn, idn, yn);
        f.CpuOps.Embedding(wc, idc, yc);
        Assert.Equal(f.CpuOps.ToDoubleArray(yc), f.NpuOps.ToDoubleArray(yn));
        f.NpuOps.EmbeddingBackward(yn, idn, wn);
        f.CpuOps.EmbeddingBackward(yc, idc, wc);
        Same(wc, wn, DType.F32, "embedding backward");
        foreach (var t in new[] { wn, wc, idn, idc })
        {
            t.Dispose();
        }
    }

    [Theory]
    [InlineData(UnaryOp.Relu)]
    [InlineData(UnaryOp.Tanh)]
    [InlineData(UnaryOp.Sigmoid)]
    [InlineData(UnaryOp.GeluErf)]
    [InlineData(UnaryOp.GeluTanh)]
    [InlineData(UnaryOp.Silu)]
    public void ActivationBackwardMatchesCpuIncludingInfinities(UnaryOp op)
    {
        var x = Kit.WithSpecials(40, Seed);
        var (xn, xc) = Kit.Both(f, x, new Shape(40), DType.F32);
        var (dyn, dyc) = Rand(new Shape(40), DType.F32, Seed + 1);
        using var dxn = f.NpuOps.Empty(new Shape(40));
        using var dxc = f.CpuOps.Empty(new Shape(40));
        f.NpuOps.ActivationBackward(op, xn, dyn, dxn);
        f.CpuOps.ActivationBackward(op, xc, dyc, dxc);
        // The composite GELU-erf derivative on the CPU builds Φ from gelu(x)/x: a few F32 ulps of cancellation.
        Kit.Close(f.CpuOps.ToDoubleArray(dxc), f.NpuOps.ToDoubleArray(dxn), 1e-5, 1e-6, $"{op} backward seed={Seed}");
        foreach (var t in new[] { xn, xc, dyn, dyc })
        {
            t.Dispose();
        }
    }
}
