using Hal.Models.Nn;
using static Hal.Models.Tests.GradientCheck;

namespace Hal.Models.Tests;

// TiledEmbedding and TiledLmHead against Embedding and LmHead over the same store, finite differences, and the
// acquire/release discipline of a row-tile source.
// Legend: B batch, T time, C channels, V vocabulary, N = B·T, Vt rows of a tile.
public sealed class VocabTileTests : IDisposable
{
    private const int Context = 16;
    // lossScale/N must be exact in F32 for the F64 comparison: LmHead passes it to the fused backward as F32.
    private const double LossScale = 2.0;
    private readonly Ops _ops = CpuOps();
    private readonly List<IDisposable> _owned = [];

    public void Dispose()
    {
        for (int i = _owned.Count - 1; i >= 0; i--)
        {
            _owned[i].Dispose();
        }
    }

    private sealed record Inputs(Tensor Ids, Tensor Dy, Tensor XHead, Tensor Targets);

    private sealed record Result(double[] X, double[] Losses, double[] Dx, double[][] Grads);

    private T Own<T>(T disposable)
        where T : IDisposable
    {
        _owned.Add(disposable);
        return disposable;
    }

    private ParameterStore NewStore(DType dtype, int v, int c, bool positions, int seed)
    {
        var store = Own(new ParameterStore());
        store.Declare("wte", new Shape(v, c), 0);
        if (positions)
        {
            store.Declare("wpe", new Shape(Context, c), 0);
        }
        store.Allocate(_ops, dtype);
        Randomize(_ops, store, seed);
        return store;
    }

    /// <summary>Seeded indices in [0, V), the first two at the table's edges (V − 1 and 0), every fifth from the fourth −1 when asked.</summary>
    private static double[] Indices(int n, int v, int seed, bool ignored)
    {
        var rng = new Random(seed);
        var values = new double[n];
        for (int i = 0; i < n; i++)
        {
            values[i] = rng.Next(v);
        }
        values[0] = v - 1;
        if (n > 1)
        {
            values[1] = 0;
        }
        if (ignored)
        {
            for (int i = 3; i < n; i += 5)
            {
                values[i] = -1;
            }
        }
        return values;
    }

    private Inputs NewInputs(DType dtype, DType indexDType, int v, int c, int batch, int time, int seed)
    {
        int n = batch * time;
        return new Inputs(
            Own(_ops.FromArray(Indices(n, v, seed, ignored: false), new Shape(batch, time), indexDType)),
            Own(_ops.FromArray(Normal(n * c, seed + 1), new Shape(batch, time, c), dtype)),
            Own(_ops.FromArray(Normal(n * c, seed + 2), new Shape(n, c), dtype)),
            Own(_ops.FromArray(Indices(n, v, seed + 3, ignored: true), new Shape(n), indexDType)));
    }

    private double[][] Grads(ParameterStore store) =>
        [.. store.Infos.Select((_, i) => _ops.ToDoubleArray(store.Grad(i)))];

    /// <summary>Embedding forward/backward with dy, then head forward/backward on its own input; gradients from zero.</summary>
    private Result RunUntiled(ParameterStore store, bool positions, Inputs input)
    {
        using var ws = new Workspace(_ops);
        store.ZeroGrads(_ops);
        var embedding = new Embedding(ws, store, "wte", positions ? "wpe" : null);
        using var x = _ops.Empty(input.Dy.Shape, store.DType);
        embedding.Forward(input.Ids, x);
        embedding.Backward(input.Dy);
        var head = new LmHead(ws, store, "wte");
        double[] losses = _ops.ToDoubleArray(head.Forward(input.XHead, input.Targets));
        using var dx = _ops.Empty(input.XHead.Shape, store.DType);
        head.Backward(LossScale, dx);
        return new Result(_ops.ToDoubleArray(x), losses, _ops.ToDoubleArray(dx), Grads(store));
    }

    /// <summary>The same with the tiled modules over one source (GPT-2 ties the head to the token table); backward runs <paramref name="backwards"/> times.</summary>
    private Result RunTiled(ParameterStore store, bool positions, Inputs input, IRowTileSource tiles, int backwards = 1)
    {
        using var ws = new Workspace(_ops);
        store.ZeroGrads(_ops);
        var embedding = new TiledEmbedding(ws, store, tiles, positions ? "wpe" : null);
        using var x = _ops.Empty(input.Dy.Shape, store.DType);
        embedding.Forward(input.Ids, x);
        var head = new TiledLmHead(ws, tiles);
        double[] losses = _ops.ToDoubleArray(head.Forward(input.XHead, input.Targets));
        using var dx = _ops.Empty(input.XHead.Shape, store.DType);
        for (int i = 0; i < backwards; i++)
        {
            embedding.Backward(input.Dy);
            head.Backward(LossScale, dx);
        }
        return new Result(_ops.ToDoubleArray(x), losses, _ops.ToDoubleArray(dx), Grads(store));
    }

    /// <summary>‖actual − expected‖ ≤ bound·‖expected‖ (Frobenius); NaN fails.</summary>
    private static void AssertRelative(double[] actual, double[] expected, double bound, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        double diff = 0, norm = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            diff += (actual[i] - expected[i]) * (actual[i] - expected[i]);
            norm += expected[i] * expected[i];
        }
        Assert.True(norm > 0, $"{what}: the reference is all zeros, the comparison proves nothing");
        Assert.True(Math.Sqrt(diff) <= bound * Math.Sqrt(norm), $"{what}: ‖Δ‖ = {Math.Sqrt(diff):E3} > {bound:E0}·‖ref‖ = {bound * Math.Sqrt(norm):E3}");
    }

    /// <summary>
    /// |actual − expected| ≤ bound·max(|expected|, 1) element by element (ignored rows are 0 in both): a loss is
    /// lse − logit[target], whose error is ulps of those O(1) terms, not of their difference, so a loss below 1 is
    /// measured against 1.
    /// </summary>
    private static void AssertElementwise(double[] actual, double[] expected, double bound, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
        {
            double error = Math.Abs(actual[i] - expected[i]);
            Assert.True(error <= bound * Math.Max(Math.Abs(expected[i]), 1), $"{what}[{i}]: {actual[i]:R} vs {expected[i]:R} (error {error:E2})");
        }
    }

    // F32 bounds. Losses: the tiled lse sums V exponentials in another order, with the Exp kernel instead of the fused
    // kernel's, and merges tiles with exp(m − m') rescaling: each step within a few ulps (2⁻²⁴ ≈ 6e-8), so 1e-6 is
    // ~16 ulps (measured: ≤ 2e-7 over these cases). dx and dW: the same products summed tile by tile (GEMM with
    // beta = 1) instead of in one GEMM, and softmax rebuilt from an lse that differs by ulps: ~√(terms)·ε ≈ 1e-6, so
    // 1e-5 Frobenius leaves 10× (measured: ≤ 2e-7). F64: the same analysis with ε = 2⁻⁵³ gives ~1e-15 (measured
    // 2e-16 on losses); 1e-12 is far above it and far below any real bug.
    [Theory]
    [InlineData(DType.F32, 11, 11, true, 2, 4, false)]
    [InlineData(DType.F32, 11, 6, false, 2, 4, true)]
    [InlineData(DType.F32, 11, 4, true, 3, 5, false)]
    [InlineData(DType.F32, 11, 1, false, 3, 5, false)]
    [InlineData(DType.F32, 67, 64, true, 2, 8, true)]
    [InlineData(DType.F32, 67, 25, false, 3, 5, false)]
    [InlineData(DType.F32, 67, 100, true, 1, 7, false)]
    [InlineData(DType.F32, 33, 1, true, 2, 9, true)]
    [InlineData(DType.F64, 11, 11, false, 2, 4, false)]
    [InlineData(DType.F64, 11, 6, true, 2, 4, false)]
    [InlineData(DType.F64, 11, 4, true, 2, 8, true)]
    [InlineData(DType.F64, 11, 4, false, 4, 4, false)]
    [InlineData(DType.F64, 11, 1, true, 2, 4, true)]
    [InlineData(DType.F64, 67, 25, true, 2, 8, false)]
    [InlineData(DType.F64, 67, 64, false, 1, 8, true)]
    public void TiledModulesMatchUntiled(DType dtype, int v, int tileRows, bool positions, int batch, int time, bool longIds)
    {
        int c = v > 32 ? 16 : 8;
        int seed = (v * 1000) + (tileRows * 10) + batch;
        string context = $"{dtype} V={v} tileRows={tileRows} positions={positions} B={batch} T={time} seed {seed}";
        var store = NewStore(dtype, v, c, positions, seed);
        var input = NewInputs(dtype, longIds ? DType.I64 : DType.I32, v, c, batch, time, seed + 7);
        var expected = RunUntiled(store, positions, input);
        var tiles = new StoreRowTiles(store, "wte", tileRows);
        Assert.Equal((v + Math.Min(tileRows, v) - 1) / Math.Min(tileRows, v), tiles.TileCount);
        var actual = RunTiled(store, positions, input, tiles);
        bool f64 = dtype == DType.F64;
        // Exactly one tile contributes a non-zero row per id and the others add exact zeros: bit for bit.
        Assert.Equal(expected.X, actual.X);
        AssertElementwise(actual.Losses, expected.Losses, f64 ? 1e-12 : 1e-6, "losses " + context);
        AssertRelative(actual.Dx, expected.Dx, f64 ? 1e-12 : 1e-5, "dx " + context);
        for (int i = 0; i < expected.Grads.Length; i++)
        {
            AssertRelative(actual.Grads[i], expected.Grads[i], f64 ? 1e-12 : 1e-5, $"d{store.Infos[i].Name} {context}");
        }
    }

    [Fact]
    public void LargeLogitsStayFiniteAcrossTiles()
    {
        // x·100 gives logits of a few hundred: exp overflows F32 beyond 88, so only a correct running-max shift
        // (rescaling earlier tiles' sums when a later tile raises the max) keeps lse finite. Bounds as above.
        const int v = 67, c = 16, seed = 451;
        var store = NewStore(DType.F32, v, c, positions: false, seed);
        var input = NewInputs(DType.F32, DType.I32, v, c, 2, 8, seed + 1);
        double[] big = [.. _ops.ToDoubleArray(input.XHead).Select(value => value * 100)];
        _ops.Upload(big, input.XHead);
        var expected = RunUntiled(store, false, input);
        var actual = RunTiled(store, false, input, new StoreRowTiles(store, "wte", 25));
        Assert.Contains(expected.Losses, loss => loss > 88);
        Assert.All(actual.Losses, loss => Assert.True(double.IsFinite(loss), $"loss {loss} (seed {seed})"));
        AssertElementwise(actual.Losses, expected.Losses, 1e-6, $"large-logit losses (seed {seed})");
        AssertRelative(actual.Dx, expected.Dx, 1e-5, $"large-logit dx (seed {seed})");
        AssertRelative(actual.Grads[0], expected.Grads[0], 1e-5, $"large-logit dwte (seed {seed})");
    }

    [Fact]
    public void BackwardAccumulatesIntoTheGradientTiles()
    {
        const int v = 11, c = 8, seed = 501;
        var store = NewStore(DType.F64, v, c, positions: true, seed);
        var input = NewInputs(DType.F64, DType.I32, v, c, 2, 4, seed + 1);
        var tiles = new StoreRowTiles(store, "wte", 4);
        var once = RunTiled(store, true, input, tiles, backwards: 1);
        var twice = RunTiled(store, true, input, tiles, backwards: 2);
        // dx is written, not accumulated: the second backward writes the same values.
        Assert.Equal(once.Dx, twice.Dx);
        for (int i = 0; i < once.Grads.Length; i++)
        {
            // g + g in F64 after the same sums: within a few ulps of 2g.
            AssertRelative(twice.Grads[i], [.. once.Grads[i].Select(g => 2 * g)], 1e-14, $"accumulated d{store.Infos[i].Name} (seed {seed})");
        }
    }

    [Theory]
    [InlineData(4, 601)]
    [InlineData(1, 602)]
    [InlineData(11, 603)]
    public void TiledHeadMatchesFiniteDifferences(int tileRows, int seed)
    {
        const int rows = 9, c = 8, v = 11;
        var store = NewStore(DType.F64, v, c, positions: false, seed);
        using var ws = new Workspace(_ops);
        var head = new TiledLmHead(ws, new StoreRowTiles(store, "wte", tileRows));
        var x = Own(_ops.FromArray(Normal(rows * c, seed + 1), new Shape(rows, c), DType.F64));
        // A negative target contributes nothing but still counts in the mean.
        var targets = Own(_ops.FromArray([0, 10, 5, -1, 3, 3, 7, 1, 9], new Shape(rows), DType.I32));
        double Loss() => _ops.ToDoubleArray(head.Forward(x, targets)).Sum() / rows;
        Loss();
        var dx = Own(_ops.Empty(x.Shape, DType.F64));
        store.ZeroGrads(_ops);
        head.Backward(1.0, dx);
        var toCheck = ParameterTargets(_ops, store);
        toCheck.Add(new GradientTarget("x", x, _ops.ToDoubleArray(dx)));
        Assert.True(Check(_ops, toCheck, Loss, seed + 2) > 0);
        // The ignored row gets no gradient.
        Assert.All(_ops.ToDoubleArray(dx).Skip(3 * c).Take(c), value => Assert.Equal(0.0, value));
    }

    [Theory]
    [InlineData(true, 4, 611)]
    [InlineData(false, 1, 612)]
    public void TiledEmbeddingMatchesFiniteDifferences(bool positions, int tileRows, int seed)
    {
        const int v = 11, c = 8, b = 2, t = 5;
        var store = NewStore(DType.F64, v, c, positions, seed);
        using var ws = new Workspace(_ops);
        var embedding = new TiledEmbedding(ws, store, new StoreRowTiles(store, "wte", tileRows), positions ? "wpe" : null);
        // Repeated ids (3 and 10) make the backward sum rows.
        var ids = Own(_ops.FromArray([3, 10, 3, 0, 7, 10, 10, 1, 3, 5], new Shape(b, t), DType.I32));
        var y = Own(_ops.Empty(new Shape(b, t, c), DType.F64));
        var w = Normal(b * t * c, seed + 1);
        var dy = Own(_ops.FromArray(w, y.Shape, DType.F64));
        embedding.Forward(ids, y);
        store.ZeroGrads(_ops);
        embedding.Backward(dy);
        Assert.True(Check(_ops, ParameterTargets(_ops, store), () => { embedding.Forward(ids, y); return Dot(_ops, y, w); }, seed + 2) > 0);
    }

    [Theory]
    [InlineData(DType.F32, 4)]
    [InlineData(DType.F64, 1)]
    [InlineData(DType.F32, 11)]
    public void OneTileIsResidentAtATimeAndEveryAcquireIsReleased(DType dtype, int tileRows)
    {
        const int v = 11, c = 8, seed = 701;
        var store = NewStore(dtype, v, c, positions: true, seed);
        var input = NewInputs(dtype, DType.I32, v, c, 2, 4, seed + 1);
        var direct = RunTiled(store, true, input, new StoreRowTiles(store, "wte", tileRows));
        var counting = new CountingTiles(_ops, new StoreRowTiles(store, "wte", tileRows));
        _owned.Add(counting);
        var viaCopies = RunTiled(store, true, input, counting);
        Assert.Equal(1, counting.MaxParamsHeld);
        Assert.Equal(1, counting.MaxGradsHeld);
        // Backward releases a parameter tile before it acquires the gradient tile.
        Assert.Equal(1, counting.MaxHeld);
        Assert.Equal(0, counting.Held);
        // Per tile: embedding forward, head forward and head backward read it; the two backwards add into it.
        Assert.All(counting.ParamAcquires, n => Assert.Equal(3, n));
        Assert.All(counting.GradAcquires, n => Assert.Equal(2, n));
        // Released tiles are poisoned with NaN, so a read after release would show; copies change no bit.
        Assert.Equal(direct.X, viaCopies.X);
        Assert.Equal(direct.Losses, viaCopies.Losses);
        Assert.Equal(direct.Dx, viaCopies.Dx);
        for (int i = 0; i < direct.Grads.Length; i++)
        {
            Assert.Equal(direct.Grads[i], viaCopies.Grads[i]);
        }
    }

    // BF16 keeps 8 significant bits: each rounding is within 2⁻⁹ ≈ 2e-3 relative. The logits (|z| ~ 1) are rounded
    // once, so losses move by ~2e-3·|z| against losses ≈ log V; dlogits and each tile's dx/dW GEMM output are
    // rounded once (dx partial sums add in F32, so 67 one-row tiles do not round 67 times): ~3 roundings add to
    // ~4e-3 in norm (measured: ≤ 3e-3). 1e-2 bounds that with room and still catches a wrong term (≥ 1e-1).
    [Theory]
    [InlineData(11, 4, true)]
    [InlineData(67, 25, false)]
    [InlineData(67, 1, true)]
    public void Bf16TiledModulesStayWithinOnePercentOfF32(int v, int tileRows, bool positions)
    {
        int c = 16, seed = 800 + v;
        var bf16 = NewStore(DType.BF16, v, c, positions, seed);
        var f32 = NewStore(DType.F32, v, c, positions, seed);
        for (int i = 0; i < bf16.Infos.Count; i++)
        {
            _ops.Upload(_ops.ToDoubleArray(bf16.Param(i)), f32.Param(i));
        }
        var inBf16 = NewInputs(DType.BF16, DType.I32, v, c, 2, 8, seed + 1);
        var inF32 = new Inputs(inBf16.Ids, Widen(inBf16.Dy), Widen(inBf16.XHead), inBf16.Targets);
        var low = RunTiled(bf16, positions, inBf16, new StoreRowTiles(bf16, "wte", tileRows));
        var high = RunTiled(f32, positions, inF32, new StoreRowTiles(f32, "wte", tileRows));
        string context = $"V={v} tileRows={tileRows} seed {seed}";
        AssertRelative(low.X, high.X, 1e-2, "x " + context);
        AssertRelative(low.Losses, high.Losses, 1e-2, "losses " + context);
        AssertRelative(low.Dx, high.Dx, 1e-2, "dx " + context);
        for (int i = 0; i < high.Grads.Length; i++)
        {
            AssertRelative(low.Grads[i], high.Grads[i], 1e-2, $"d{f32.Infos[i].Name} {context}");
        }
        // Against the untiled modules at BF16: the same BF16 logits, so the F32 statistics agree to F32 rounding
        // (1e-6, measured ≤ 5e-8) and the embedding bit for bit. dx and dW round each tile's product once (2⁻⁹),
        // as the untiled GEMM rounds the whole product once, and a dlogit may land on the neighbouring BF16 value:
        // 5e-3 (measured ≤ 3e-3 on dx; dW equal).
        var untiled = RunUntiled(bf16, positions, inBf16);
        Assert.Equal(untiled.X, low.X);
        AssertElementwise(low.Losses, untiled.Losses, 1e-6, "losses vs untiled BF16 " + context);
        AssertRelative(low.Dx, untiled.Dx, 5e-3, "dx vs untiled BF16 " + context);
        for (int i = 0; i < untiled.Grads.Length; i++)
        {
            AssertRelative(low.Grads[i], untiled.Grads[i], 5e-3, $"d{bf16.Infos[i].Name} vs untiled BF16 {context}");
        }
    }

    private Tensor Widen(Tensor t) => Own(_ops.FromArray(_ops.ToDoubleArray(t), t.Shape, DType.F32));

    [Theory]
    [InlineData(1, 1)]
    [InlineData(7, 8)]
    [InlineData(8, 8)]
    [InlineData(9, 8)]
    [InlineData(17, 16)]
    [InlineData(33, 7)]
    [InlineData(65, 64)]
    [InlineData(64, 1)]
    public void StoreTilesCoverTheRowsInOrder(int v, int tileRows)
    {
        using var store = new ParameterStore();
        store.Declare("w", new Shape(v, 3), 0);
        store.Allocate(_ops);
        var tiles = new StoreRowTiles(store, "w", tileRows);
        Assert.Equal(v, tiles.Rows);
        Assert.Equal(3, tiles.Columns);
        Assert.Equal((v + tileRows - 1) / tileRows, tiles.TileCount);
        int next = 0;
        for (int tile = 0; tile < tiles.TileCount; tile++)
        {
            var (start, count) = tiles.TileRows(tile);
            Assert.Equal(next, start);
            Assert.Equal(Math.Min(tileRows, v - start), count);
            var param = tiles.AcquireParam(tile);
            Assert.Equal(new Shape(count, 3), param.Shape);
            Assert.Equal(store.Param("w").OffsetElements + (start * 3L), param.OffsetElements);
            tiles.ReleaseParam(tile);
            next += count;
        }
        Assert.Equal(v, next);
        Assert.Throws<ArgumentOutOfRangeException>(() => tiles.TileRows(tiles.TileCount));
        Assert.Throws<ArgumentOutOfRangeException>(() => tiles.TileRows(-1));
    }

    [Fact]
    public void MisuseThrows()
    {
        var store = NewStore(DType.F32, 11, 8, positions: true, 901);
        Assert.Throws<ArgumentOutOfRangeException>(() => new StoreRowTiles(store, "wte", 0));
        Assert.Throws<KeyNotFoundException>(() => new StoreRowTiles(store, "missing", 4));
        var tiles = new StoreRowTiles(store, "wte", 4);
        tiles.AcquireGrad(1);
        Assert.Throws<InvalidOperationException>(() => tiles.AcquireGrad(1));
        tiles.ReleaseGrad(1);
        Assert.Throws<InvalidOperationException>(() => tiles.ReleaseGrad(1));
        Assert.Throws<InvalidOperationException>(() => tiles.ReleaseParam(0));
        using var ws = new Workspace(_ops);
        var dx = Own(_ops.Zeros(new Shape(4, 8)));
        Assert.Throws<InvalidOperationException>(() => new TiledLmHead(ws, tiles).Backward(1.0, dx));
        Assert.Throws<InvalidOperationException>(() => new TiledEmbedding(ws, store, tiles, "wpe").Backward(dx.Reshape(1, 4, 8)));
        Assert.Throws<ArgumentException>(() => new TiledLmHead(ws, new GappedTiles(tiles)));
        var wrongWidth = Own(_ops.Zeros(new Shape(4, 7)));
        var targets = Own(_ops.Zeros(new Shape(4), DType.I32));
        Assert.Throws<ArgumentException>(() => new TiledLmHead(ws, tiles).Forward(wrongWidth, targets));
    }

    /// <summary>A source whose second tile skips a row: modules must refuse it.</summary>
    private sealed class GappedTiles(IRowTileSource inner) : IRowTileSource
    {
        public int Rows => inner.Rows;

        public int Columns => inner.Columns;

        public int TileCount => inner.TileCount;

        public (int Start, int Count) TileRows(int tile)
        {
            var (start, count) = inner.TileRows(tile);
            return tile == 1 ? (start + 1, count - 1) : (start, count);
        }

        public Tensor AcquireParam(int tile) => inner.AcquireParam(tile);

        public void ReleaseParam(int tile) => inner.ReleaseParam(tile);

        public Tensor AcquireGrad(int tile) => inner.AcquireGrad(tile);

        public void ReleaseGrad(int tile) => inner.ReleaseGrad(tile);
    }

    /// <summary>
    /// A source that behaves like an offloading owner: an acquired tile is a fresh device copy, a released one is
    /// filled with NaN (a gradient tile is first copied back), and it counts what is held.
    /// </summary>
    private sealed class CountingTiles(Ops ops, IRowTileSource inner) : IRowTileSource, IDisposable
    {
        private readonly Dictionary<int, Tensor> _params = [];
        private readonly Dictionary<int, Tensor> _grads = [];
        private readonly List<Tensor> _released = [];

        public int[] ParamAcquires { get; } = new int[inner.TileCount];

        public int[] GradAcquires { get; } = new int[inner.TileCount];

        public int MaxParamsHeld { get; private set; }

        public int MaxGradsHeld { get; private set; }

        public int MaxHeld { get; private set; }

        public int Held => _params.Count + _grads.Count;

        public int Rows => inner.Rows;

        public int Columns => inner.Columns;

        public int TileCount => inner.TileCount;

        public (int Start, int Count) TileRows(int tile) => inner.TileRows(tile);

        public Tensor AcquireParam(int tile)
        {
            var copy = CopyOf(inner.AcquireParam(tile));
            inner.ReleaseParam(tile);
            _params.Add(tile, copy);
            ParamAcquires[tile]++;
            Count();
            return copy;
        }

        public void ReleaseParam(int tile)
        {
            Assert.True(_params.Remove(tile, out var copy), $"parameter tile {tile} released but not held");
            Retire(copy);
        }

        public Tensor AcquireGrad(int tile)
        {
            var copy = CopyOf(inner.AcquireGrad(tile));
            inner.ReleaseGrad(tile);
            _grads.Add(tile, copy);
            GradAcquires[tile]++;
            Count();
            return copy;
        }

        public void ReleaseGrad(int tile)
        {
            Assert.True(_grads.Remove(tile, out var copy), $"gradient tile {tile} released but not held");
            ops.Copy(copy, inner.AcquireGrad(tile));
            inner.ReleaseGrad(tile);
            Retire(copy);
        }

        public void Dispose()
        {
            foreach (var t in _released.Concat(_params.Values).Concat(_grads.Values))
            {
                t.Dispose();
            }
        }

        private Tensor CopyOf(Tensor tile)
        {
            var copy = ops.Empty(tile.Shape, tile.DType);
            ops.Copy(tile, copy);
            return copy;
        }

        private void Retire(Tensor copy)
        {
            ops.Fill(copy, double.NaN);
            _released.Add(copy);
        }

        private void Count()
        {
            MaxParamsHeld = Math.Max(MaxParamsHeld, _params.Count);
            MaxGradsHeld = Math.Max(MaxGradsHeld, _grads.Count);
            MaxHeld = Math.Max(MaxHeld, Held);
        }
    }
}
