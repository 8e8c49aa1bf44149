using Hal.Parallel.TensorParallel;
using static Hal.Parallel.Tests.DataParallelTestKit;
using static Hal.Parallel.Tests.GridHostMath;
using static Hal.Parallel.Tests.GridTestMath;
using static Hal.Parallel.Tests.HostMath;

namespace Hal.Parallel.Tests;

// Legend: N rows, H hidden features, C model width, F feed-forward width, V vocabulary (padded to Vp, a multiple of
// the vocabulary group), R = rows of a rank's block, Hl = features of its block. Blocks per rank: see GridSession.

public sealed partial class TensorParallelNdTests
{
    private const double NormEps = 1e-5;

    [Theory]
    [MemberData(nameof(LayoutCases))]
    public void Layer_norm_over_split_hidden_equals_single_device(string layout, string dtypeName)
    {
        var dtype = Enum.Parse<DType>(dtypeName);
        double tolerance = Tolerance(dtype);
        int e = dtype.SizeInBytes();
        foreach (var (n, h) in new[] { (4, 2), (8, 18), (16, 34), (4, 66) })
        {
            int seed = 41_000 + (n * 100) + h + (dtype == DType.F64 ? 7 : 0);
            var random = new Random(seed);
            // Rows offset by up to ±2 so the mean matters; unit spread.
            double[] x = Normal(random, n * h);
            for (int i = 0; i < n; i++)
            {
                double offset = (4 * random.NextDouble()) - 2;
                for (int j = 0; j < h; j++)
                {
                    x[(i * h) + j] += offset;
                }
            }
            double[] gamma = Normal(random, h), beta = Normal(random, h), dy = Normal(random, n * h);
            double[] gamma0 = Normal(random, h), beta0 = Normal(random, h);
            var (y, mean, rstd) = LayerNorm(x, n, h, gamma, beta, NormEps);
            var (dx, dgamma, dbeta) = LayerNormBackward(x, dy, n, h, gamma, mean, rstd);
            // dx is a difference of terms rstd·dy·gamma that cancel (to the eps effect alone when H = 2, where x̂ = ±1 for
            // any x): its rounding error follows those terms, so they set the norm floor of the comparison.
            double[] dxTerms = dy.Select((v, k) => rstd[k / h] * v * gamma[k % h]).ToArray();
            var failures = RunRanks(GridSession.Ranks(layout), (comm, ops, failed) =>
            {
                using var session = new GridSession(layout, comm, ops);
                using var norm = session.Norm(0, NormEps);
                GridBlock xb = session.Output(0), vb = session.Vector(0);
                using var xd = Upload(ops, x, n, h, xb, dtype);
                using var gd = Upload(ops, gamma, 0, h, vb, dtype);
                using var bd = Upload(ops, beta, 0, h, vb, dtype);
                using var dyd = Upload(ops, dy, n, h, xb, dtype);
                using var dgd = Upload(ops, gamma0, 0, h, vb, dtype);
                using var dbd = Upload(ops, beta0, 0, h, vb, dtype);
                int rows = xd.Shape[0], features = xd.Shape[1];
                using var yd = ops.Empty(xd.Shape, dtype);
                using var md = ops.Empty(new Shape(rows), dtype);
                using var rd = ops.Empty(new Shape(rows), dtype);
                using var dxd = ops.Empty(xd.Shape, dtype);

                norm.Forward(xd, gd, bd, yd, md, rd);
                long forward = norm.BytesCommunicated;
                norm.Backward(dyd, xd, gd, md, rd, dxd, dgd, dbd);
                long backward = norm.BytesCommunicated - forward;

                string what = $"layer norm {layout} rank {comm.Rank} {dtype.Name()} N {n} H {h} (seed {seed})";
                var rowBlock = new GridBlock(xb.RowBlock, xb.RowBlocks, 0, 1);
                Compare(failed, what + " y", ops.ToDoubleArray(yd), Block(y, n, h, xb), tolerance);
                Compare(failed, what + " mean", ops.ToDoubleArray(md), Block(mean, n, 1, rowBlock), tolerance, 1);
                Compare(failed, what + " rstd", ops.ToDoubleArray(rd), Block(rstd, n, 1, rowBlock), tolerance);
                Compare(failed, what + " dx", ops.ToDoubleArray(dxd), Block(dx, n, h, xb), tolerance, Norm(Block(dxTerms, n, h, xb)));
                // gamma and beta are replicated over the rows: every replica accumulates the whole batch's gradient.
                Compare(failed, what + " dgamma", ops.ToDoubleArray(dgd), Block(Add(gamma0, dgamma), vb), tolerance, Math.Sqrt(h));
                Compare(failed, what + " dbeta", ops.ToDoubleArray(dbd), Block(Add(beta0, dbeta), vb), tolerance, Math.Sqrt(h));
                var (forwardBytes, backwardBytes) = GridSession.NormBytes(layout, rows, features, e);
                if (forward != forwardBytes || backward != backwardBytes)
                {
                    failed.Enqueue($"{what}: sent {forward} bytes forward and {backward} backward, the derivation says {forwardBytes} and {backwardBytes}");
                }
            });
            Assert.True(failures.Count == 0, string.Join("\n", failures));
        }
    }

    private static double Norm(double[] values) => Math.Sqrt(values.Sum(v => v * v));

    [Theory]
    [InlineData("2d", "F32", 8)]
    [InlineData("2d", "F64", 13)]
    [InlineData("3d", "F32", 13)]
    [InlineData("3d", "F64", 8)]
    public void Embedding_split_by_vocabulary_and_hidden_equals_a_whole_table_lookup(string layout, string dtypeName, int vocab)
    {
        var dtype = Enum.Parse<DType>(dtypeName);
        double tolerance = Tolerance(dtype);
        int e = dtype.SizeInBytes();
        int group = layout == "2d" ? 2 : 4;
        int padded = (vocab + group - 1) / group * group;
        foreach (var (n, h) in new[] { (4, 2), (8, 6), (12, 34) })
        {
            int seed = 51_000 + (n * 100) + h + vocab + (dtype == DType.F64 ? 7 : 0);
            var random = new Random(seed);
            long[] ids = Enumerable.Range(0, n).Select(_ => (long)random.Next(vocab)).ToArray();
            // Padding rows past V are zero in the table and its gradient.
            double[] table = new double[padded * h], grad0 = new double[padded * h];
            // The table as stored in the dtype, so the exact lookup can be compared exactly.
            Normal(random, vocab * h).Select(v => dtype == DType.F32 ? (float)v : v).ToArray().CopyTo(table, 0);
            Normal(random, vocab * h).CopyTo(grad0, 0);
            double[] dy = Normal(random, n * h);
            double[] y = new double[n * h], grad = (double[])grad0.Clone();
            for (int i = 0; i < n; i++)
            {
                for (int j = 0; j < h; j++)
                {
                    y[(i * h) + j] = table[(ids[i] * h) + j];
                    grad[(ids[i] * h) + j] += dy[(i * h) + j];
                }
            }
            var failures = RunRanks(GridSession.Ranks(layout), (comm, ops, failed) =>
            {
                using var grid2 = layout == "2d" ? new TensorGrid2D(comm) : null;
                using var grid3 = layout == "3d" ? new TensorGrid3D(comm) : null;
                using var embedding2 = grid2 is null ? null : new Embedding2D(ops, grid2, vocab);
                using var embedding3 = grid3 is null ? null : new Embedding3D(ops, grid3, vocab, inputAxis: 2);
                GridBlock tb = grid2?.TableBlock ?? grid3!.TableBlock(2), yb = grid2?.MatrixBlock ?? grid3!.InputBlock(2);
                using var idd = ops.FromArray(ids, new Shape(n), DType.I64);
                using var wd = Upload(ops, table, padded, h, tb, dtype);
                using var gd = Upload(ops, grad0, padded, h, tb, dtype);
                using var dyd = Upload(ops, dy, n, h, yb, dtype);
                using var yd = ops.Empty(yb.Of(new Shape(n, h)), dtype);

                embedding2?.Forward(wd, idd, yd);
                embedding3?.Forward(wd, idd, yd);
                long forward = (embedding2?.BytesCommunicated ?? 0) + (embedding3?.BytesCommunicated ?? 0);
                embedding2?.Backward(idd, dyd, gd);
                embedding3?.Backward(idd, dyd, gd);
                long backward = (embedding2?.BytesCommunicated ?? 0) + (embedding3?.BytesCommunicated ?? 0) - forward;

                string what = $"embedding {layout} rank {comm.Rank} {dtype.Name()} V {vocab} N {n} H {h} (seed {seed})";
                // One rank contributes each row and the others add zeros: the lookup is exact.
                Compare(failed, what + " y", ops.ToDoubleArray(yd), Block(y, n, h, yb), 0);
                Compare(failed, what + " dW", ops.ToDoubleArray(gd), Block(grad, padded, h, tb), tolerance);
                // One reduce-scatter forward and one all-gather backward of the [N, Hl] rows over the vocabulary group.
                long expected = (group - 1) * ((long)n * (h / yb.ColumnBlocks) * e) / group;
                if (forward != expected || backward != expected)
                {
                    failed.Enqueue($"{what}: sent {forward} bytes forward and {backward} backward, the derivation says {expected} each");
                }
            });
            Assert.True(failures.Count == 0, string.Join("\n", failures));
        }
    }

    [Theory]
    [MemberData(nameof(LayoutCases))]
    public void Mlp_of_two_linears_and_a_layer_norm_equals_single_device(string layout, string dtypeName)
    {
        var dtype = Enum.Parse<DType>(dtypeName);
        double tolerance = Tolerance(dtype);
        int e = dtype.SizeInBytes();
        const int n = 8, c = 8, f = 16;
        int seed = 61_000 + (layout.Length * 10) + (dtype == DType.F64 ? 7 : 0);
        var random = new Random(seed);
        double[] x = Normal(random, n * c), dy = Normal(random, n * c);
        double[] w1 = Normal(random, c * f, 1 / Math.Sqrt(c)), b1 = Normal(random, f);
        double[] gamma = Normal(random, f), beta = Normal(random, f);
        double[] w2 = Normal(random, f * c, 1 / Math.Sqrt(f)), b2 = Normal(random, c);

        // The single-device reference: h = x·W1 + b1, a = layer norm(h), y = a·W2 + b2, and its gradients.
        double[] h = AddRow(MatMul(x, w1, n, c, f), b1, n, f);
        var (a, mean, rstd) = LayerNorm(h, n, f, gamma, beta, NormEps);
        double[] y = AddRow(MatMul(a, w2, n, f, c), b2, n, c);
        double[] da = MatMul(dy, Transpose(w2, f, c), n, c, f);
        double[] dw2 = MatMul(Transpose(a, n, f), dy, f, n, c), db2 = ColumnSums(dy, n, c);
        var (dh, dgamma, dbeta) = LayerNormBackward(h, da, n, f, gamma, mean, rstd);
        double[] dw1 = MatMul(Transpose(x, n, c), dh, c, n, f), db1 = ColumnSums(dh, n, f);
        double[] dx = MatMul(dh, Transpose(w1, c, f), n, f, c);

        var (forward1, backward1) = GridSession.LinearBytes(layout, n, c, f, e);
        var (forward2, backward2) = GridSession.LinearBytes(layout, n, f, c, e);
        var failures = RunRanks(GridSession.Ranks(layout), (comm, ops, failed) =>
        {
            using var session = new GridSession(layout, comm, ops);
            using var linear1 = session.Linear(0);
            using var norm = session.Norm(0, NormEps);
            using var linear2 = session.Linear(1);
            using var xd = Upload(ops, x, n, c, session.Input(0), dtype);
            using var w1d = Upload(ops, w1, c, f, session.Weight(0), dtype);
            using var b1d = Upload(ops, b1, 0, f, session.Vector(0), dtype);
            using var gd = Upload(ops, gamma, 0, f, session.Vector(0), dtype);
            using var bd = Upload(ops, beta, 0, f, session.Vector(0), dtype);
            using var w2d = Upload(ops, w2, f, c, session.Weight(1), dtype);
            using var b2d = Upload(ops, b2, 0, c, session.Vector(1), dtype);
            using var dyd = Upload(ops, dy, n, c, session.Output(1), dtype);
            using var hd = ops.Empty(session.Output(0).Of(new Shape(n, f)), dtype);
            using var ad = ops.Empty(hd.Shape, dtype);
            using var md = ops.Empty(new Shape(hd.Shape[0]), dtype);
            using var rd = ops.Empty(new Shape(hd.Shape[0]), dtype);
            using var yd = ops.Empty(session.Output(1).Of(new Shape(n, c)), dtype);
            using var dad = ops.Empty(ad.Shape, dtype);
            using var dhd = ops.Empty(hd.Shape, dtype);
            using var dxd = ops.Empty(xd.Shape, dtype);
            using var g1 = ops.Zeros(w1d.Shape, dtype);
            using var gb1 = ops.Zeros(b1d.Shape, dtype);
            using var gg = ops.Zeros(gd.Shape, dtype);
            using var gbeta = ops.Zeros(bd.Shape, dtype);
            using var g2 = ops.Zeros(w2d.Shape, dtype);
            using var gb2 = ops.Zeros(b2d.Shape, dtype);

            linear1.Forward(xd, w1d, b1d, hd);
            norm.Forward(hd, gd, bd, ad, md, rd);
            linear2.Forward(ad, w2d, b2d, yd);
            linear2.Backward(ad, dyd, w2d, g2, gb2, dad);
            norm.Backward(dad, hd, gd, md, rd, dhd, gg, gbeta);
            linear1.Backward(xd, dhd, w1d, g1, gb1, dxd);

            string what = $"mlp {layout} rank {comm.Rank} {dtype.Name()} (seed {seed})";
            Compare(failed, what + " y", ops.ToDoubleArray(yd), Block(y, n, c, session.Output(1)), tolerance);
            Compare(failed, what + " dx", ops.ToDoubleArray(dxd), Block(dx, n, c, session.Input(0)), tolerance);
            Compare(failed, what + " dW1", ops.ToDoubleArray(g1), Block(dw1, c, f, session.Weight(0)), tolerance);
            Compare(failed, what + " dW2", ops.ToDoubleArray(g2), Block(dw2, f, c, session.Weight(1)), tolerance);
            Compare(failed, what + " dgamma", ops.ToDoubleArray(gg), Block(dgamma, session.Vector(0)), tolerance, Math.Sqrt(f));
            Compare(failed, what + " dbeta", ops.ToDoubleArray(gbeta), Block(dbeta, session.Vector(0)), tolerance, Math.Sqrt(f));
            if (session.OwnsBias)
            {
                Compare(failed, what + " db1", ops.ToDoubleArray(gb1), Block(db1, session.Vector(0)), tolerance, Math.Sqrt(f));
                Compare(failed, what + " db2", ops.ToDoubleArray(gb2), Block(db2, session.Vector(1)), tolerance, Math.Sqrt(c));
            }
            var (forwardNorm, backwardNorm) = GridSession.NormBytes(layout, hd.Shape[0], hd.Shape[1], e);
            long expected = forward1 + backward1 + forwardNorm + backwardNorm + forward2 + backward2;
            long sent = linear1.BytesCommunicated + norm.BytesCommunicated + linear2.BytesCommunicated;
            if (sent != expected)
            {
                failed.Enqueue($"{what}: sent {sent} bytes, the derivation says {expected}");
            }
        });
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    [Theory]
    [InlineData("2d")]
    [InlineData("2.5d")]
    [InlineData("3d")]
    public void Shards_split_and_gather_back_exactly_including_replicated_blocks(string layout)
    {
        const int rows = 16, cols = 12;
        // Distinct values, so a block put in the wrong place shows.
        double[] matrix = Enumerable.Range(0, rows * cols).Select(i => (double)i).ToArray();
        double[] vector = Enumerable.Range(0, cols).Select(i => 100.0 + i).ToArray();
        var failures = RunRanks(GridSession.Ranks(layout), (comm, ops, failed) =>
        {
            using var session = new GridSession(layout, comm, ops);
            using var full = ops.FromArray(matrix, new Shape(rows, cols), DType.F32);
            using var fullVector = ops.FromArray(vector, new Shape(cols), DType.F32);
            var blocks = new[] { ("input", session.Input(0), full), ("output", session.Output(1), full), ("weight", session.Weight(1), full), ("vector", session.Vector(0), fullVector) };
            foreach (var (name, block, source) in blocks)
            {
                using var shard = ops.Empty(block.Of(source.Shape), DType.F32);
                TensorGridShards.Split(ops, source, shard, block);
                double[] expectedShard = Block(source.Rank == 1 ? vector : matrix, source.Rank == 1 ? 1 : rows, cols, block);
                using var back = ops.Empty(source.Shape, DType.F32);
                TensorGridShards.Gather(ops, comm, shard, back, block);
                if (!ops.ToDoubleArray(shard).SequenceEqual(expectedShard) || !ops.ToDoubleArray(back).SequenceEqual(ops.ToDoubleArray(source)))
                {
                    failed.Enqueue($"{layout} rank {comm.Rank} {name} block {block}: split or gather moved an element");
                }
            }
        });
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }
}
