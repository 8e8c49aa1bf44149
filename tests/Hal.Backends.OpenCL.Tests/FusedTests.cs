using static Hal.Backends.OpenCL.Tests.OpenClTestKit;

namespace Hal.Backends.OpenCL.Tests;

// Fused tier-2 kernels on opencl:0 against the CPU backend's fused kernels on the same inputs. Row lengths go
// around the row work-group (1, 7, 129, 300 > 256). Tolerances: both compute in the dtype's accumulation type
// with different reduction orders and OpenCL C built-ins within 4 ULP, so 64 ULP of the accumulation type
// relative plus an absolute floor for values near zero; 16-bit outputs add one rounding of their dtype.
public class FusedTests
{
    private const int Seed = 77;
    private static readonly int[] Widths = [1, 7, 129, 300];

    private static (Tensor Cl, Tensor Cpu) In(int seed, Shape shape, DType dtype, double lo = -3, double hi = 3) =>
        Both(RandomValues(seed, shape.ElementCount, lo, hi), shape, dtype);

    private static void Same(Tensor cpu, Tensor cl, DType dtype, string what, double scale = 1) =>
        Close(CpuOps.ToDoubleArray(cpu), ClOps.ToDoubleArray(cl), Tol(dtype, 64), Tol(dtype, 64) * scale, what);

    [OpenClFact]
    public void SupportedOpsTakeTheFusedPath()
    {
        foreach (var op in new[] { FusedOp.Softmax, FusedOp.LayerNorm, FusedOp.RmsNormBackward, FusedOp.CrossEntropy, FusedOp.Rotary, FusedOp.AdamW, FusedOp.ActivationBackward })
        {
            Assert.Equal(KernelPath.Fused, ClOps.PathFor(op, DType.F32));
        }
        Assert.Equal(KernelPath.Composite, ClOps.PathFor(FusedOp.Attention, DType.F32));
        Assert.Equal(KernelPath.Composite, ClOps.PathFor(FusedOp.EmbeddingBackward, DType.BF16));
    }

    [OpenClFact]
    public void SoftmaxFamilyMatchesCpu()
    {
        foreach (var dtype in FloatDTypes())
        {
            foreach (int c in Widths)
            {
                var shape = new Shape(3, c);
                var (x1, x2) = In(Seed, shape, dtype);
                var (g1, g2) = In(Seed + 1, shape, dtype);
                foreach (bool log in new[] { false, true })
                {
                    var y1 = ClOps.Empty(shape, dtype);
                    var y2 = CpuOps.Empty(shape, dtype);
                    var d1 = ClOps.Empty(shape, dtype);
                    var d2 = CpuOps.Empty(shape, dtype);
                    if (log)
                    {
                        ClOps.LogSoftmax(x1, y1);
                        CpuOps.LogSoftmax(x2, y2);
                        ClOps.LogSoftmaxBackward(y2.Device == y1.Device ? y2 : ClOps.FromArray(CpuOps.ToDoubleArray(y2), shape, dtype), g1, d1);
                        CpuOps.LogSoftmaxBackward(y2, g2, d2);
                    }
                    else
                    {
                        ClOps.Softmax(x1, y1);
                        CpuOps.Softmax(x2, y2);
                        ClOps.SoftmaxBackward(ClOps.FromArray(CpuOps.ToDoubleArray(y2), shape, dtype), g1, d1);
                        CpuOps.SoftmaxBackward(y2, g2, d2);
                    }
                    // Log-softmax values reach −2·3 − ln c ≈ −12: the absolute floor scales with that.
                    Same(y2, y1, dtype, $"{(log ? "log-" : "")}softmax {dtype.Name()} c={c} seed={Seed}", 16);
                    Same(d2, d1, dtype, $"{(log ? "log-" : "")}softmax backward {dtype.Name()} c={c} seed={Seed}", 16 * c);
                }
            }
        }
    }

    [OpenClFact]
    public void NormsMatchCpuForwardAndBackward()
    {
        foreach (var dtype in FloatDTypes())
        {
            foreach (int c in Widths)
            {
                var shape = new Shape(5, c);
                var rows = new Shape(5);
                var (x1, x2) = In(Seed, shape, dtype);
                var (w1, w2) = In(Seed + 1, new Shape(c), dtype);
                var (b1, b2) = In(Seed + 2, new Shape(c), dtype);
                var (g1, g2) = In(Seed + 3, shape, dtype);
                foreach (bool rms in new[] { false, true })
                {
                    var y1 = ClOps.Empty(shape, dtype);
                    var y2 = CpuOps.Empty(shape, dtype);
                    var m1 = ClOps.Empty(rows);
                    var m2 = CpuOps.Empty(rows);
                    var r1 = ClOps.Empty(rows);
                    var r2 = CpuOps.Empty(rows);
                    var dx1 = ClOps.Empty(shape, dtype);
                    var dx2 = CpuOps.Empty(shape, dtype);
                    var dw1 = ClOps.Empty(new Shape(c), dtype);
                    var dw2 = CpuOps.Empty(new Shape(c), dtype);
                    var db1 = ClOps.Empty(new Shape(c), dtype);
                    var db2 = CpuOps.Empty(new Shape(c), dtype);
                    string what = $"{(rms ? "rms" : "layer")}-norm {dtype.Name()} c={c} seed={Seed}";
                    if (rms)
                    {
                        ClOps.RmsNorm(x1, w1, 1e-5, y1, r1);
                        CpuOps.RmsNorm(x2, w2, 1e-5, y2, r2);
                        ClOps.RmsNormBackward(g1, x1, w1, r1, dx1, dw1);
                        CpuOps.RmsNormBackward(g2, x2, w2, r2, dx2, dw2);
                    }
                    else
                    {
                        ClOps.LayerNorm(x1, w1, b1, 1e-5, y1, m1, r1);
                        CpuOps.LayerNorm(x2, w2, b2, 1e-5, y2, m2, r2);
                        ClOps.LayerNormBackward(g1, x1, w1, m1, r1, dx1, dw1, db1);
                        CpuOps.LayerNormBackward(g2, x2, w2, m2, r2, dx2, dw2, db2);
                        Same(m2, m1, DType.F32, what + " mean");
                        Same(db2, db1, dtype, what + " dbias", 16);
                    }
                    // Outputs scale with |w|·|xhat| ≤ 3·√c and gradients with c·9: absolute floors to match.
                    Same(r2, r1, DType.F32, what + " rstd", 16);
                    Same(y2, y1, dtype, what + " y", 16 * Math.Sqrt(c));
                    Same(dx2, dx1, dtype, what + " dx", 64 * c);
                    Same(dw2, dw1, dtype, what + " dweight", 64 * c);
                }
            }
        }
    }

    [OpenClFact]
    public void CrossEntropyMatchesCpuAndIgnoresNegativeTargets()
    {
        foreach (var dtype in FloatDTypes())
        {
            foreach (int v in Widths)
            {
                var shape = new Shape(4, v);
                var (x1, x2) = In(Seed, shape, dtype);
                double[] targets = [0, v - 1, -1, v / 2];
                var (t1, t2) = Both(targets, new Shape(4), DType.I64);
                var (dl1, dl2) = In(Seed + 1, new Shape(4), DType.F32);
                var (l1, s1) = ClOps.CrossEntropy(x1, t1);
                var (l2, s2) = CpuOps.CrossEntropy(x2, t2);
                string what = $"cross-entropy {dtype.Name()} v={v} seed={Seed}";
                Same(l2, l1, DType.F32, what + " losses", 16);
                Same(s2, s1, DType.F32, what + " lse", 16);
                Assert.Equal(0.0, ClOps.ToDoubleArray(l1)[2]);
                var d1 = ClOps.Empty(shape, dtype);
                var d2 = CpuOps.Empty(shape, dtype);
                ClOps.CrossEntropyBackward(x1, t1, s1, dl1, d1);
                CpuOps.CrossEntropyBackward(x2, t2, s2, dl2, d2);
                Same(d2, d1, dtype, what + " dlogits", 4);
            }
        }
    }

    [OpenClFact]
    public void CrossEntropyRejectsTargetsPastTheVocabulary()
    {
        var x = ClOps.Zeros(new Shape(2, 5));
        var t = ClOps.FromArray(new double[] { 1, 5 }, new Shape(2), DType.I32);
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => ClOps.CrossEntropy(x, t));
        Assert.Contains("index 5 at position 1", e.Message);
    }

    [OpenClFact]
    public void EmbeddingAndRotaryMatchCpu()
    {
        foreach (var dtype in FloatDTypes())
        {
            var (w1, w2) = In(Seed, new Shape(11, 9), dtype);
            double[] ids = [3, 0, 10, 3, 3, 7];
            foreach (var idType in new[] { DType.I32, DType.I64 })
            {
                var (i1, i2) = Both(ids, new Shape(2, 3), idType);
                var y1 = ClOps.Embedding(w1, i1);
                var y2 = CpuOps.Embedding(w2, i2);
                // Gathering rows is exact.
                Assert.Equal(CpuOps.ToDoubleArray(y2), ClOps.ToDoubleArray(y1));
                var (g1, g2) = In(Seed + 1, new Shape(2, 3, 9), dtype);
                var d1 = ClOps.Empty(new Shape(11, 9), dtype);
                var d2 = CpuOps.Empty(new Shape(11, 9), dtype);
                ClOps.EmbeddingBackward(g1, i1, d1);
                CpuOps.EmbeddingBackward(g2, i2, d2);
                Same(d2, d1, dtype, $"embedding backward {dtype.Name()} {idType.Name()} seed={Seed}", 8);
            }
            var x = new Shape(2, 5, 3, 8);
            var (x1, x2) = In(Seed + 2, x, dtype);
            var (c1, c2) = In(Seed + 3, new Shape(9, 4), DType.F32, -1, 1);
            var (s1, s2) = In(Seed + 4, new Shape(9, 4), DType.F32, -1, 1);
            foreach (bool backward in new[] { false, true })
            {
                var r1 = ClOps.Empty(x, dtype);
                var r2 = CpuOps.Empty(x, dtype);
                if (backward)
                {
                    ClOps.RotaryBackward(x1, c1, s1, 3, r1);
                    CpuOps.RotaryBackward(x2, c2, s2, 3, r2);
                }
                else
                {
                    ClOps.Rotary(x1, c1, s1, 4, r1);
                    CpuOps.Rotary(x2, c2, s2, 4, r2);
                }
                Same(r2, r1, dtype, $"rotary backward={backward} {dtype.Name()} seed={Seed}", 8);
            }
        }
    }

    [OpenClFact]
    public void ActivationBackwardMatchesCpu()
    {
        foreach (var dtype in FloatDTypes())
        {
            var (x1, x2) = In(Seed, new Shape(131), dtype, -6, 6);
            var (g1, g2) = In(Seed + 1, new Shape(131), dtype);
            foreach (var op in new[] { UnaryOp.Relu, UnaryOp.Tanh, UnaryOp.Sigmoid, UnaryOp.GeluErf, UnaryOp.GeluTanh, UnaryOp.Silu })
            {
                var d1 = ClOps.Empty(x1.Shape, dtype);
                var d2 = CpuOps.Empty(x2.Shape, dtype);
                ClOps.ActivationBackward(op, x1, g1, d1);
                CpuOps.ActivationBackward(op, x2, g2, d2);
                Same(d2, d1, dtype, $"{op} backward {dtype.Name()} seed={Seed}", 4);
            }
        }
    }

    [OpenClFact]
    public void AdamWMatchesCpuOverSteps()
    {
        foreach (var dtype in new[] { DType.F32, DType.BF16, DType.F16 })
        {
            var (p1, p2) = In(Seed, new Shape(67), dtype);
            var (m1, m2) = Both(new double[67], new Shape(67), DType.F32);
            var (v1, v2) = Both(new double[67], new Shape(67), DType.F32);
            var config = new AdamWConfig(1e-2, WeightDecay: 0.1);
            for (int step = 1; step <= 3; step++)
            {
                var (g1, g2) = In(Seed + step, new Shape(67), dtype);
                ClOps.AdamW(p1, g1, m1, v1, config, step);
                CpuOps.AdamW(p2, g2, m2, v2, config, step);
            }
            // The CPU updates in double, this kernel in F32: the parameters drift by a few F32 ULPs per step.
            Same(p2, p1, dtype, $"adamw param {dtype.Name()} seed={Seed}", 4);
            Same(m2, m1, DType.F32, $"adamw m {dtype.Name()} seed={Seed}", 4);
            Same(v2, v1, DType.F32, $"adamw v {dtype.Name()} seed={Seed}", 16);
        }
    }
}
