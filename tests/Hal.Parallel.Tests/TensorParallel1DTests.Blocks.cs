using Hal.Backends.Cpu;
using Hal.Parallel.TensorParallel;
using static Hal.Parallel.Tests.DataParallelTestKit;
using static Hal.Parallel.Tests.HostMath;

namespace Hal.Parallel.Tests;

// Legend: p tp ranks, N = T rows (B = 1), C channels, F hidden features, H heads, Hl = H/p heads per rank, D head
// size. Megatron pairs: column-parallel (output features split) then row-parallel (input features split).

public sealed partial class TensorParallel1DTests
{
    private const double GeluTanhK = 0.7978845608028654; // √(2/π)

    [Theory]
    [MemberData(nameof(LinearCases))]
    public void Megatron_mlp_equals_single_device_with_one_collective_pair_each_way(int tp, WeightLayout layout, string dtypeName, bool sp)
    {
        var dtype = Enum.Parse<DType>(dtypeName);
        double tolerance = Tolerance(dtype);
        const int n = 8, c = 8, f = 32;
        int seed = 9100 + (tp * 10) + ((int)layout * 2) + (sp ? 1 : 0) + (dtype == DType.F64 ? 100 : 0);
        var random = new Random(seed);
        double[] x = Normal(random, n * c), dy = Normal(random, n * c);
        double[] w1 = Normal(random, c * f, 1 / Math.Sqrt(c)), b1 = Normal(random, f);
        double[] w2 = Normal(random, f * c, 1 / Math.Sqrt(f)), b2 = Normal(random, c);

        // The single-device reference, in double loops: h = x·W1 + b1, a = gelu(h), y = a·W2 + b2, and its gradients.
        double[] h = AddRow(MatMul(x, w1, n, c, f), b1, n, f);
        double[] a = h.Select(GeluTanh).ToArray();
        double[] y = AddRow(MatMul(a, w2, n, f, c), b2, n, c);
        double[] da = MatMul(dy, Transpose(w2, f, c), n, c, f);
        double[] dh = da.Select((g, i) => g * GeluTanhDerivative(h[i])).ToArray();
        double[] dx = MatMul(dh, Transpose(w1, c, f), n, f, c);
        double[] dw1 = MatMul(Transpose(x, n, c), dh, c, n, f), db1 = ColumnSums(dh, n, f);
        double[] dw2 = MatMul(Transpose(a, n, f), dy, f, n, c), db2 = ColumnSums(dy, n, c);

        int fl = f / tp, nl = n / tp, rows = sp ? nl : n;
        var bytes = new long[tp];
        var failures = RunRanks(tp, (comm, ops, failed) =>
        {
            int r = comm.Rank;
            var counted = new CountingCommunicator(comm);
            using var column = new ColumnParallelLinear(ops, counted, layout, sp);
            using var row = new RowParallelLinear(ops, counted, layout, sp);
            using var w1s = Shard(ops, Stored(w1, c, f, layout), StoredShape(c, f, layout), dtype, layout, ShardedFeatures.Output, r, tp);
            using var b1s = Shard(ops, b1, new Shape(f), dtype, layout, ShardedFeatures.Output, r, tp);
            using var w2s = Shard(ops, Stored(w2, f, c, layout), StoredShape(f, c, layout), dtype, layout, ShardedFeatures.Input, r, tp);
            using var b2d = ops.FromArray(b2, new Shape(c), dtype);
            using var g1 = ops.Zeros(w1s.Shape, dtype);
            using var gb1 = ops.Zeros(b1s.Shape, dtype);
            using var g2 = ops.Zeros(w2s.Shape, dtype);
            using var gb2 = ops.Zeros(new Shape(c), dtype);
            using var xd = ops.FromArray(sp ? Rows(x, c, r * nl, nl) : x, new Shape(rows, c), dtype);
            using var hd = ops.Empty(new Shape(n, fl), dtype);
            using var ad = ops.Empty(new Shape(n, fl), dtype);
            using var yd = ops.Empty(new Shape(rows, c), dtype);
            using var dyd = ops.FromArray(sp ? Rows(dy, c, r * nl, nl) : dy, new Shape(rows, c), dtype);
            using var dad = ops.Empty(new Shape(n, fl), dtype);
            using var dhd = ops.Empty(new Shape(n, fl), dtype);
            using var dxd = ops.Empty(new Shape(rows, c), dtype);

            column.Forward(xd, w1s, b1s, hd);
            ops.Unary(UnaryOp.GeluTanh, hd, ad);
            row.Forward(ad, w2s, b2d, yd);
            var forward = counted.TakeCounts();
            row.Backward(ad, dyd, w2s, g2, gb2, dad);
            ops.ActivationBackward(UnaryOp.GeluTanh, hd, dad, dhd);
            column.Backward(xd, dhd, w1s, g1, gb1, dxd);
            var backward = counted.TakeCounts();

            string what = $"mlp tp {tp} rank {r} {layout} {dtype.Name()} sp {sp} (seed {seed})";
            Compare(failed, what + " y", ops.ToDoubleArray(yd), sp ? Rows(y, c, r * nl, nl) : y, tolerance);
            Compare(failed, what + " dx", ops.ToDoubleArray(dxd), sp ? Rows(dx, c, r * nl, nl) : dx, tolerance);
            CompareGathered(ops, comm, failed, what + " dW1", g1, Stored(dw1, c, f, layout), StoredShape(c, f, layout), layout, ShardedFeatures.Output, tolerance);
            CompareGathered(ops, comm, failed, what + " db1", gb1, db1, new Shape(f), layout, ShardedFeatures.Output, tolerance);
            CompareGathered(ops, comm, failed, what + " dW2", g2, Stored(dw2, f, c, layout), StoredShape(f, c, layout), layout, ShardedFeatures.Input, tolerance);
            Compare(failed, what + " db2", ops.ToDoubleArray(gb2), db2, tolerance, UnitNorm(c));
            var expected = ExpectedCollectives(tp, sp);
            if (forward != expected || backward != expected)
            {
                failed.Enqueue($"{what}: collectives forward {forward}, backward {backward}; expected {expected} each way");
            }
            bytes[r] = column.BytesCommunicated + row.BytesCommunicated;
        });

        Assert.True(failures.Count == 0, string.Join("\n", failures));
        // Plain: one all-reduce of [N, C] each way, 2·(p−1)/p·N·C elements each. Sequence-parallel: an all-gather and a
        // reduce-scatter of [N, C] each way, (p−1)/p·N·C each: the same total, which is the point of the split.
        long expectedBytes = 4L * (tp - 1) * n * c * dtype.SizeInBytes() / tp;
        Assert.All(bytes, b => Assert.Equal(expectedBytes, b));
    }

    [Theory]
    [MemberData(nameof(LinearCases))]
    public void Attention_qkv_split_by_heads_equals_single_device(int tp, WeightLayout layout, string dtypeName, bool sp)
    {
        var dtype = Enum.Parse<DType>(dtypeName);
        double tolerance = Tolerance(dtype);
        const int t = 8, heads = 4, d = 4, c = heads * d;
        int seed = 9400 + (tp * 10) + ((int)layout * 2) + (sp ? 1 : 0) + (dtype == DType.F64 ? 100 : 0);
        var random = new Random(seed);
        double[] x = Normal(random, t * c), dy = Normal(random, t * c);
        double[] wqkv = Normal(random, c * 3 * c, 1 / Math.Sqrt(c)), bqkv = Normal(random, 3 * c);
        double[] wo = Normal(random, c * c, 1 / Math.Sqrt(c)), bo = Normal(random, c);
        var reference = AttentionBlockReference(x, dy, wqkv, bqkv, wo, bo, t, heads, d);

        int hl = heads / tp, tl = t / tp, rows = sp ? tl : t;
        var failures = RunRanks(tp, (comm, ops, failed) =>
        {
            int r = comm.Rank;
            var counted = new CountingCommunicator(comm);
            using var column = new ColumnParallelLinear(ops, counted, layout, sp);
            using var row = new RowParallelLinear(ops, counted, layout, sp);
            // q | k | v are three segments of c_attn's output features: each rank takes its heads of each.
            using var wqkvs = Shard(ops, Stored(wqkv, c, 3 * c, layout), StoredShape(c, 3 * c, layout), dtype, layout, ShardedFeatures.Output, r, tp, segments: 3);
            using var bqkvs = Shard(ops, bqkv, new Shape(3 * c), dtype, layout, ShardedFeatures.Output, r, tp, segments: 3);
            using var wos = Shard(ops, Stored(wo, c, c, layout), StoredShape(c, c, layout), dtype, layout, ShardedFeatures.Input, r, tp);
            using var bod = ops.FromArray(bo, new Shape(c), dtype);
            using var gqkv = ops.Zeros(wqkvs.Shape, dtype);
            using var gbqkv = ops.Zeros(bqkvs.Shape, dtype);
            using var go = ops.Zeros(wos.Shape, dtype);
            using var gbo = ops.Zeros(new Shape(c), dtype);
            using var xd = ops.FromArray(sp ? Rows(x, c, r * tl, tl) : x, new Shape(rows, c), dtype);
            using var qkv = ops.Empty(new Shape(t, 3 * hl * d), dtype);
            using var attention = new HeadAttention(ops, t, hl, d, dtype);
            using var yd = ops.Empty(new Shape(rows, c), dtype);
            using var dyd = ops.FromArray(sp ? Rows(dy, c, r * tl, tl) : dy, new Shape(rows, c), dtype);
            using var dqkv = ops.Empty(qkv.Shape, dtype);
            using var dxd = ops.Empty(new Shape(rows, c), dtype);

            column.Forward(xd, wqkvs, bqkvs, qkv);
            var outputRows = attention.Forward(qkv);
            row.Forward(outputRows, wos, bod, yd);
            var forward = counted.TakeCounts();
            using var dOutputRows = ops.Empty(outputRows.Shape, dtype);
            row.Backward(outputRows, dyd, wos, go, gbo, dOutputRows);
            attention.Backward(dOutputRows, dqkv);
            column.Backward(xd, dqkv, wqkvs, gqkv, gbqkv, dxd);
            var backward = counted.TakeCounts();

            string what = $"attention tp {tp} rank {r} {layout} {dtype.Name()} sp {sp} (seed {seed})";
            Compare(failed, what + " y", ops.ToDoubleArray(yd), sp ? Rows(reference.Y, c, r * tl, tl) : reference.Y, tolerance);
            Compare(failed, what + " dx", ops.ToDoubleArray(dxd), sp ? Rows(reference.Dx, c, r * tl, tl) : reference.Dx, tolerance);
            CompareGathered(ops, comm, failed, what + " dWqkv", gqkv, Stored(reference.DWqkv, c, 3 * c, layout), StoredShape(c, 3 * c, layout), layout, ShardedFeatures.Output, tolerance, 3);
            CompareGathered(ops, comm, failed, what + " dbqkv", gbqkv, reference.DBqkv, new Shape(3 * c), layout, ShardedFeatures.Output, tolerance, 3);
            CompareGathered(ops, comm, failed, what + " dWo", go, Stored(reference.DWo, c, c, layout), StoredShape(c, c, layout), layout, ShardedFeatures.Input, tolerance);
            Compare(failed, what + " dbo", ops.ToDoubleArray(gbo), reference.DBo, tolerance, UnitNorm(c));
            var expected = ExpectedCollectives(tp, sp);
            if (forward != expected || backward != expected)
            {
                failed.Enqueue($"{what}: collectives forward {forward}, backward {backward}; expected {expected} each way");
            }
        });

        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    /// <summary>One all-reduce per direction, or in sequence-parallel mode one all-gather and one reduce-scatter; none alone.</summary>
    private static (int, int, int, int) ExpectedCollectives(int tp, bool sp) => tp == 1 ? (0, 0, 0, 0) : sp ? (0, 1, 1, 0) : (1, 0, 0, 0);

    private static double GeluTanh(double v) => 0.5 * v * (1 + Math.Tanh(GeluTanhK * (v + (0.044715 * v * v * v))));

    private static double GeluTanhDerivative(double v)
    {
        double th = Math.Tanh(GeluTanhK * (v + (0.044715 * v * v * v)));
        return (0.5 * (1 + th)) + (0.5 * v * (1 - (th * th)) * GeluTanhK * (1 + (3 * 0.044715 * v * v)));
    }

    /// <summary>A logical [In, Out] host weight in the stored layout.</summary>
    private static double[] Stored(double[] logical, int inFeatures, int outFeatures, WeightLayout layout) =>
        layout == WeightLayout.InOut ? logical : Transpose(logical, inFeatures, outFeatures);

    private static Shape StoredShape(int inFeatures, int outFeatures, WeightLayout layout) =>
        layout == WeightLayout.InOut ? new Shape(inFeatures, outFeatures) : new Shape(outFeatures, inFeatures);

    /// <summary>Gathers the shards over the group and compares the full tensor with expected.</summary>
    private static void CompareGathered(Ops ops, ICommunicator comm, System.Collections.Concurrent.ConcurrentQueue<string> failed, string what, Tensor shard,
        double[] expected, Shape fullShape, WeightLayout layout, ShardedFeatures features, double tolerance, int segments = 1)
    {
        using var full = ops.Empty(fullShape, shard.DType);
        TensorParallelShards.Gather(ops, comm, shard, full, layout, features, segments);
        // A 1-D gradient is a bias: a sum of unit-scale terms that may cancel (see UnitNorm).
        Compare(failed, what, ops.ToDoubleArray(full), expected, tolerance, fullShape.Rank == 1 ? UnitNorm(fullShape[0]) : 0);
    }

    private sealed record AttentionReference(double[] Y, double[] Dx, double[] DWqkv, double[] DBqkv, double[] DWo, double[] DBo);

    /// <summary>The block on one device in F64 with whole weights: plain GEMMs and the fused attention over all heads.</summary>
    private static AttentionReference AttentionBlockReference(double[] x, double[] dy, double[] wqkv, double[] bqkv, double[] wo, double[] bo, int t, int heads, int d)
    {
        int c = heads * d;
        using var device = new CpuBackend().Open(0);
        var ops = new Ops(device);
        var f64 = DType.F64;
        using var xd = ops.FromArray(x, new Shape(t, c), f64);
        using var w1 = ops.FromArray(wqkv, new Shape(c, 3 * c), f64);
        using var b1 = ops.FromArray(bqkv, new Shape(3 * c), f64);
        using var w2 = ops.FromArray(wo, new Shape(c, c), f64);
        using var b2 = ops.FromArray(bo, new Shape(c), f64);
        using var dyd = ops.FromArray(dy, new Shape(t, c), f64);
        using var qkv = ops.Empty(new Shape(t, 3 * c), f64);
        using var y = ops.Empty(new Shape(t, c), f64);
        using var attention = new HeadAttention(ops, t, heads, d, f64);
        ops.Gemm(xd, w1, qkv, bias: b1);
        var o = attention.Forward(qkv);
        ops.Gemm(o, w2, y, bias: b2);
        using var dO = ops.Empty(o.Shape, f64);
        using var dWo = ops.Empty(new Shape(c, c), f64);
        using var dqkv = ops.Empty(qkv.Shape, f64);
        using var dWqkv = ops.Empty(new Shape(c, 3 * c), f64);
        using var dx = ops.Empty(xd.Shape, f64);
        ops.Gemm(dyd, w2, dO, transB: true);
        ops.Gemm(o, dyd, dWo, transA: true);
        attention.Backward(dO, dqkv);
        ops.Gemm(xd, dqkv, dWqkv, transA: true);
        ops.Gemm(dqkv, w1, dx, transB: true);
        return new AttentionReference(ops.ToDoubleArray(y), ops.ToDoubleArray(dx), ops.ToDoubleArray(dWqkv),
            ColumnSums(ops.ToDoubleArray(dqkv), t, 3 * c), ops.ToDoubleArray(dWo), ColumnSums(dy, t, c));
    }

    /// <summary>
    /// Causal attention over the heads of a q | k | v row block [T, 3·Hh·D] (Hh heads: all, or one rank's), returning
    /// the output rows [T, Hh·D]; backward writes dqkv [T, 3·Hh·D]. Heads move between rows and [1, Hh, T, D] with
    /// IndexSelect / IndexAdd (the contract has no permute).
    /// </summary>
    private sealed class HeadAttention(Ops ops, int t, int heads, int d, DType dtype) : IDisposable
    {
        private readonly Tensor _q = ops.Empty(new Shape(1, heads, t, d), dtype);
        private readonly Tensor _k = ops.Empty(new Shape(1, heads, t, d), dtype);
        private readonly Tensor _v = ops.Empty(new Shape(1, heads, t, d), dtype);
        private readonly Tensor _o = ops.Empty(new Shape(1, heads, t, d), dtype);
        private readonly Tensor _lse = ops.Empty(new Shape(1, heads, t), DType.F32);
        private readonly Tensor _rows = ops.Empty(new Shape(t, heads * d), dtype);
        private readonly double _scale = 1 / Math.Sqrt(d);

        public Tensor Forward(Tensor qkv)
        {
            ToHeads(qkv, 3, 0, _q);
            ToHeads(qkv, 3, 1, _k);
            ToHeads(qkv, 3, 2, _v);
            ops.Attention(_q, _k, _v, causal: true, _scale, _o, _lse);
            ops.Fill(_rows, 0);
            FromHeads(_o, 1, 0, _rows);
            return _rows;
        }

        public void Backward(Tensor dOutputRows, Tensor dqkv)
        {
            using var dO = ops.Empty(_o.Shape, dtype);
            using var dq = ops.Empty(_q.Shape, dtype);
            using var dk = ops.Empty(_k.Shape, dtype);
            using var dv = ops.Empty(_v.Shape, dtype);
            ToHeads(dOutputRows, 1, 0, dO);
            ops.AttentionBackward(_q, _k, _v, _o, _lse, dO, causal: true, _scale, dq, dk, dv);
            ops.Fill(dqkv, 0);
            FromHeads(dq, 3, 0, dqkv);
            FromHeads(dk, 3, 1, dqkv);
            FromHeads(dv, 3, 2, dqkv);
        }

        public void Dispose()
        {
            foreach (var tensor in new[] { _q, _k, _v, _o, _lse, _rows })
            {
                tensor.Dispose();
            }
        }

        /// <summary>Segment s of rows [T, S·Hh·D] → [1, Hh, T, D].</summary>
        private void ToHeads(Tensor rows, int segments, int segment, Tensor result)
        {
            var view = rows.Reshape(t, segments * heads, d);
            for (int h = 0; h < heads; h++)
            {
                using var index = ops.FromArray([(long)((segment * heads) + h)], new Shape(1), DType.I64);
                ops.IndexSelect(view, 1, index, result.View((long)h * t * d, new Shape(t, 1, d)));
            }
        }

        /// <summary>[1, Hh, T, D] added into segment s of rows [T, S·Hh·D] (zero-filled by the caller).</summary>
        private void FromHeads(Tensor source, int segments, int segment, Tensor rows)
        {
            var view = rows.Reshape(t, segments * heads, d);
            for (int h = 0; h < heads; h++)
            {
                using var index = ops.FromArray([(long)((segment * heads) + h)], new Shape(1), DType.I64);
                ops.IndexAdd(source.View((long)h * t * d, new Shape(t, 1, d)), 1, index, view);
            }
        }
    }
}
