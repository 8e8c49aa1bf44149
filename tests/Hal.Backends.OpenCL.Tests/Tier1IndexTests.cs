using static Hal.Backends.OpenCL.Tests.OpenClTestKit;

namespace Hal.Backends.OpenCL.Tests;

// IndexSelect, IndexAdd, Gather and ScatterAdd on opencl:0 against the CPU backend, on every axis, with repeated
// indices, and the range check before anything is written.
public class Tier1IndexTests
{
    private const int Seed = 31;

    [OpenClFact]
    public void IndexSelectAndIndexAddMatchCpu()
    {
        var shape = new Shape(4, 5, 3);
        foreach (var dtype in new[] { DType.F32, DType.BF16, DType.I32, DType.I64, DType.U8 })
        {
            var values = RandomValues(Seed, shape.ElementCount, 0, 9).Select(v => Math.Floor(v)).ToArray();
            var (s1, s2) = Both(values, shape, dtype);
            foreach (var idType in new[] { DType.I32, DType.I64 })
            {
                for (int axis = 0; axis < 3; axis++)
                {
                    double[] index = [1, 0, 2, 1, 1, 2];
                    var (i1, i2) = Both(index, new Shape(6), idType);
                    var selected = shape.With(axis, 6);
                    var d1 = ClOps.Empty(selected, dtype);
                    var d2 = CpuOps.Empty(selected, dtype);
                    ClOps.IndexSelect(s1, axis, i1, d1);
                    CpuOps.IndexSelect(s2, axis, i2, d2);
                    // Selection copies elements: exact.
                    Assert.Equal(CpuOps.ToDoubleArray(d2), ClOps.ToDoubleArray(d1));
                    var (a1, a2) = Both(values, shape, dtype);
                    ClOps.IndexAdd(d1, axis, i1, a1);
                    CpuOps.IndexAdd(d2, axis, i2, a2);
                    // Small integers (sums ≤ 36): exact in every dtype but BF16, where each add rounds to 8 bits.
                    Close(CpuOps.ToDoubleArray(a2), ClOps.ToDoubleArray(a1), Tol(dtype, 0), 0, $"index-add {dtype.Name()} {idType.Name()} axis {axis} seed={Seed}");
                }
            }
        }
    }

    [OpenClFact]
    public void GatherAndScatterAddMatchCpu()
    {
        var shape = new Shape(3, 4, 5);
        foreach (var dtype in FloatDTypes().Concat([DType.I64, DType.I8]))
        {
            var values = RandomValues(Seed, shape.ElementCount, -4, 4).Select(v => Math.Round(v)).ToArray();
            var (s1, s2) = Both(values, shape, dtype);
            for (int axis = 0; axis < 3; axis++)
            {
                var ishape = shape.With(axis, 7);
                var index = RandomValues(Seed + axis, ishape.ElementCount, 0, shape[axis]).Select(v => Math.Floor(v)).ToArray();
                var (i1, i2) = Both(index, ishape, DType.I64);
                var g1 = ClOps.Empty(ishape, dtype);
                var g2 = CpuOps.Empty(ishape, dtype);
                ClOps.Gather(s1, axis, i1, g1);
                CpuOps.Gather(s2, axis, i2, g2);
                Assert.Equal(CpuOps.ToDoubleArray(g2), ClOps.ToDoubleArray(g1));
                var (d1, d2) = Both(values, shape, dtype);
                ClOps.ScatterAdd(g1, axis, i1, d1);
                CpuOps.ScatterAdd(g2, axis, i2, d2);
                // Integer-valued sums of at most 7 + 1 terms of magnitude ≤ 4: exact except BF16's 8-bit rounding per add.
                Close(CpuOps.ToDoubleArray(d2), ClOps.ToDoubleArray(d1), Tol(dtype, 0), 0, $"scatter-add {dtype.Name()} axis {axis} seed={Seed}");
            }
        }
    }

    [OpenClFact]
    public void OutOfRangeIndexThrowsBeforeWriting()
    {
        var src = ClOps.FromArray(new double[] { 1, 2, 3, 4 }, new Shape(4));
        var dst = ClOps.FromArray(new double[] { 9, 9 }, new Shape(2));
        var bad = ClOps.FromArray(new double[] { 0, 4 }, new Shape(2), DType.I32);
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => ClOps.IndexSelect(src, 0, bad, dst));
        Assert.Contains("index 4 at position 1", e.Message);
        Assert.Equal([9.0, 9.0], ClOps.ToDoubleArray(dst));
        var negative = ClOps.FromArray(new double[] { -1, 0 }, new Shape(2), DType.I64);
        Assert.Throws<ArgumentOutOfRangeException>(() => ClOps.ScatterAdd(dst, 0, negative, src));
        Assert.Equal([1.0, 2, 3, 4], ClOps.ToDoubleArray(src));
    }
}
