namespace Hal.Backends.Npu.Tests;

/// <summary>Index kernels and random numbers on npu:0 against plain loops and the CPU backend.</summary>
[Collection("npu")]
public sealed class Tier1IndexRandomTests(NpuFixture f)
{
    private const ulong Seed = 37;

    [Theory]
    [InlineData(DType.I32)]
    [InlineData(DType.I64)]
    public void IndexSelectAndIndexAddMatchPlainLoops(DType indexType)
    {
        // src [3, 4, 2]; index along axis 1 with a repeat, so index-add accumulates.
        var src = Kit.Random(24, Seed);
        long[] index = [3, 0, 3];
        using var s = f.NpuOps.FromArray(src, new Shape(3, 4, 2));
        using var i = f.NpuOps.FromArray(index, new Shape(3), indexType);
        using var y = f.NpuOps.Empty(new Shape(3, 3, 2));
        f.NpuOps.IndexSelect(s, 1, i, y);
        var expected = new double[18];
        for (int o = 0; o < 3; o++)
        {
            for (int j = 0; j < 3; j++)
            {
                for (int q = 0; q < 2; q++)
                {
                    expected[(((o * 3) + j) * 2) + q] = (float)src[(((o * 4) + index[j]) * 2) + q];
                }
            }
        }
        Assert.Equal(expected, f.NpuOps.ToDoubleArray(y));

        using var acc = f.NpuOps.FromArray(new double[24], new Shape(3, 4, 2));
        f.NpuOps.IndexAdd(y, 1, i, acc);
        var added = new double[24];
        for (int o = 0; o < 3; o++)
        {
            for (int j = 0; j < 3; j++)
            {
                for (int q = 0; q < 2; q++)
                {
                    added[(((o * 4) + index[j]) * 2) + q] += expected[(((o * 3) + j) * 2) + q];
                }
            }
        }
        // Two F32 additions per element at most: exact up to one F32 rounding.
        Kit.Close(added, f.NpuOps.ToDoubleArray(acc), 1e-7, 0, $"index-add seed={Seed}");
    }

    [Fact]
    public void GatherAndScatterAddMatchCpu()
    {
        var src = Kit.Random(20, Seed);
        long[] index = [0, 4, 4, 1, 2, 3, 0, 0, 1, 1, 4, 2];
        var (sn, sc) = Kit.Both(f, src, new Shape(4, 5), DType.F32);
        var (inn, inc) = Kit.Both(f, index.Select(v => (double)v).ToArray(), new Shape(4, 3), DType.I64);
        using var _1 = sn;
        using var _2 = sc;
        using var _3 = inn;
        using var _4 = inc;
        using var gn = f.NpuOps.Empty(new Shape(4, 3));
        using var gc = f.CpuOps.Empty(new Shape(4, 3));
        f.NpuOps.Gather(sn, 1, inn, gn);
        f.CpuOps.Gather(sc, 1, inc, gc);
        Assert.Equal(f.CpuOps.ToDoubleArray(gc), f.NpuOps.ToDoubleArray(gn));
        using var dn = f.NpuOps.FromArray(src, new Shape(4, 5));
        using var dc = f.CpuOps.FromArray(src, new Shape(4, 5));
        f.NpuOps.ScatterAdd(gn, 1, inn, dn);
        f.CpuOps.ScatterAdd(gc, 1, inc, dc);
        // Repeated indices add in a possibly different order: one F32 rounding per addition.
        Kit.Close(f.CpuOps.ToDoubleArray(dc), f.NpuOps.ToDoubleArray(dn), 1e-6, 0, $"scatter-add seed={Seed}");
    }

    [Fact]
    public void AnIndexOutOfRangeRaisesBeforeWritingAnything()
    {
        using var s = f.NpuOps.FromArray(new double[] { 1, 2, 3, 4 }, new Shape(4));
        using var i = f.NpuOps.FromArray(new long[] { 1, 4 }, new Shape(2));
        using var dst = f.NpuOps.FromArray(new double[] { 9, 9, 9, 9 }, new Shape(4));
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => f.NpuOps.IndexAdd(f.NpuOps.FromArray(new double[] { 5, 6 }, new Shape(2)), 0, i, dst));
        Assert.Contains("index 4 at position 1", e.Message, StringComparison.Ordinal);
        Assert.Equal(new double[] { 9, 9, 9, 9 }, f.NpuOps.ToDoubleArray(dst));
    }

    [Theory]
    [InlineData(DType.F32)]
    [InlineData(DType.BF16)]
    public void RandomIsTheSamePhiloxStreamAsTheCpuBackend(DType dtype)
    {
        using var yn = f.NpuOps.Empty(new Shape(65), dtype);
        using var yc = f.CpuOps.Empty(new Shape(65), dtype);
        f.NpuOps.RandomNormal(yn, Seed, 3, 1, 2);
        f.CpuOps.RandomNormal(yc, Seed, 3, 1, 2);
        Assert.Equal(f.CpuOps.ToDoubleArray(yc), f.NpuOps.ToDoubleArray(yn));
    }
}
