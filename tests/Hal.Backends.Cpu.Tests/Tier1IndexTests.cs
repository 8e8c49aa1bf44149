namespace Hal.Backends.Cpu.Tests;

// Shape legend: data [A, B, C]; index vectors of length L; gather/scatter indices of data's shape with J along the axis.
public sealed class Tier1IndexTests(CpuFixture fx) : IClassFixture<CpuFixture>
{
    private static readonly Shape Data = new(4, 5, 3);

    private static long At(Shape s, int a, int b, int c) => (((long)a * s[1]) + b) * s[2] + c;

    public static TheoryData<int, DType, DType> Cases()
    {
        var data = new TheoryData<int, DType, DType>();
        foreach (int axis in new[] { 0, 1, 2 })
        {
            foreach (var idx in new[] { DType.I32, DType.I64 })
            {
                foreach (var dt in new[] { DType.F32, DType.F64, DType.BF16, DType.I32, DType.I8 })
                {
                    data.Add(axis, idx, dt);
                }
            }
        }
        return data;
    }

    private static long[] IndexValues(int size, int count, int seed)
    {
        var rng = new Random(seed);
        var v = new long[count];
        for (int i = 0; i < count; i++)
        {
            v[i] = rng.Next(size);
        }
        return v;
    }

    private Tensor Index(long[] values, Shape shape, DType dtype) =>
        dtype == DType.I64 ? fx.Ops.FromArray(values, shape) : fx.Ops.FromArray(Array.ConvertAll(values, v => (double)v), shape, dtype);

    private static int[] Coord(Shape s, long flat)
    {
        var c = new int[3];
        for (int d = 2; d >= 0; d--)
        {
            c[d] = (int)(flat % s[d]);
            flat /= s[d];
        }
        return c;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void IndexSelectAndIndexAdd(int axis, DType indexType, DType dtype)
    {
        int seed = 10 + axis;
        var x = Array.ConvertAll(Kit.Random(seed, 60, -4, 4), Math.Round);
        var idx = IndexValues(Data[axis], 7, seed); // repeats are likely with 7 draws from ≤ 5 values
        using var tx = fx.Ops.FromArray(x, Data, dtype);
        using var ti = Index(idx, new Shape(7), indexType);
        var selShape = Data.With(axis, 7);
        using var sel = fx.Ops.Empty(selShape, dtype);
        fx.Ops.IndexSelect(tx, axis, ti, sel);
        var got = fx.Ops.ToDoubleArray(sel);
        for (long f = 0; f < got.Length; f++)
        {
            var c = Coord(selShape, f);
            c[axis] = (int)idx[c[axis]];
            Assert.True(got[f] == x[At(Data, c[0], c[1], c[2])], $"index-select axis {axis} seed={seed} at {f}");
        }

        // index_add: dst (= x) gets the selected slices added back at their indices; repeated indices accumulate.
        using var dst = fx.Ops.FromArray(x, Data, dtype);
        fx.Ops.IndexAdd(sel, axis, ti, dst);
        var want = (double[])x.Clone();
        for (long f = 0; f < got.Length; f++)
        {
            var c = Coord(selShape, f);
            c[axis] = (int)idx[c[axis]];
            want[At(Data, c[0], c[1], c[2])] += got[f];
        }
        Assert.Equal(Array.ConvertAll(want, w => Kit.Round(w, dtype)), fx.Ops.ToDoubleArray(dst));
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void GatherAndScatterAdd(int axis, DType indexType, DType dtype)
    {
        int seed = 20 + axis;
        var x = Array.ConvertAll(Kit.Random(seed, 60, -4, 4), Math.Round);
        var idxShape = Data.With(axis, 6);
        var idx = IndexValues(Data[axis], (int)idxShape.ElementCount, seed);
        using var tx = fx.Ops.FromArray(x, Data, dtype);
        using var ti = Index(idx, idxShape, indexType);
        using var g = fx.Ops.Empty(idxShape, dtype);
        fx.Ops.Gather(tx, axis, ti, g);
        var got = fx.Ops.ToDoubleArray(g);
        var want = (double[])x.Clone();
        for (long f = 0; f < got.Length; f++)
        {
            var c = Coord(idxShape, f);
            c[axis] = (int)idx[f];
            Assert.True(got[f] == x[At(Data, c[0], c[1], c[2])], $"gather axis {axis} seed={seed} at {f}");
            want[At(Data, c[0], c[1], c[2])] += got[f];
        }
        using var dst = fx.Ops.FromArray(x, Data, dtype);
        fx.Ops.ScatterAdd(g, axis, ti, dst);
        Assert.Equal(Array.ConvertAll(want, w => Kit.Round(w, dtype)), fx.Ops.ToDoubleArray(dst));
    }

    [Theory]
    [InlineData(DType.I32, 5)]
    [InlineData(DType.I64, -1)]
    [InlineData(DType.I64, 1L << 40)]
    public void OutOfRangeIndexNamesValuePositionAndRange(DType indexType, long bad)
    {
        using var tx = fx.Ops.Zeros(Data);
        using var ti = Index([0, 1, bad], new Shape(3), indexType);
        using var sel = fx.Ops.Empty(Data.With(1, 3));
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => fx.Ops.IndexSelect(tx, 1, ti, sel));
        Assert.Contains($"index {bad} at position 2", e.Message);
        Assert.Contains("[0, 5)", e.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => fx.Ops.IndexAdd(sel, 1, ti, tx));

        var gi = Data.With(1, 1);
        using var tg = Index([0, 1, 2, 3, 4, 0, 1, 2, 3, 4, bad, 0], gi, indexType);
        using var g = fx.Ops.Empty(gi);
        Assert.Throws<ArgumentOutOfRangeException>(() => fx.Ops.Gather(tx, 1, tg, g));
        Assert.Throws<ArgumentOutOfRangeException>(() => fx.Ops.ScatterAdd(g, 1, tg, tx));
        // Nothing was written before the check failed.
        Assert.All(fx.Ops.ToDoubleArray(tx), v => Assert.Equal(0.0, v));
    }

    [Fact]
    public void IndexSelectOfManyRowsMatchesAcrossThreads()
    {
        // Embedding-style lookup: 50 000 rows of 8 from a table of 100, past the parallel threshold.
        var table = Kit.Random(5, 800, -1, 1);
        var idx = IndexValues(100, 50_000, 5);
        using var tt = fx.Ops.FromArray(table, new Shape(100, 8));
        using var ti = Index(idx, new Shape(50_000), DType.I64);
        using var y = fx.Ops.Empty(new Shape(50_000, 8));
        fx.Ops.IndexSelect(tt, 0, ti, y);
        var got = fx.Ops.ToDoubleArray(y);
        for (int r = 0; r < 50_000; r += 7)
        {
            for (int c = 0; c < 8; c++)
            {
                Assert.Equal((double)(float)table[(idx[r] * 8) + c], got[(r * 8) + c]);
            }
        }
    }
}
