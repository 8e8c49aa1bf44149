using Hal.Parallel.TensorParallel;
using static Hal.Parallel.Tests.DataParallelTestKit;
using static Hal.Parallel.Tests.GridTestMath;
using static Hal.Parallel.Tests.GridHostMath;
using static Hal.Parallel.Tests.HostMath;

namespace Hal.Parallel.Tests;

// Legend: layouts 2d (2×2 grid, 4 ranks), 2.5d (2×2×2, 8 ranks), 3d (2×2×2 cube, 8 ranks); N rows, In/Out features of
// the full layer, W [In, Out]. Each rank holds blocks (see GridSession); references are double loops on full tensors.

/// <summary>2D (SUMMA), 2.5D and 3D tensor-parallel layers over in-process CPU ranks against single-device references.</summary>
public sealed partial class TensorParallelNdTests
{
    public static TheoryData<string, string> LayoutCases()
    {
        var data = new TheoryData<string, string>();
        foreach (string layout in GridSession.Layouts)
        {
            foreach (string dtype in new[] { "F32", "F64" })
            {
                data.Add(layout, dtype);
            }
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(LayoutCases))]
    public void Linear_equals_single_device_and_sends_the_derived_bytes(string layout, string dtypeName)
    {
        var dtype = Enum.Parse<DType>(dtypeName);
        double tolerance = Tolerance(dtype);
        int e = dtype.SizeInBytes();
        // N divisible by 4 (2.5D and 3D row blocks), In by 4 (3D weight pieces), Out by 2; blocks of 1 to 17 features
        // sweep odd widths around the vector tails.
        foreach (var (n, inFeatures, outFeatures) in new[] { (4, 4, 2), (8, 12, 6), (16, 36, 34), (8, 68, 18) })
        {
            int seed = 31_000 + (n * 1000) + (inFeatures * 10) + outFeatures + (dtype == DType.F64 ? 7 : 0);
            var c = new FullLinear(seed, n, inFeatures, outFeatures);
            var (forwardBytes, backwardBytes) = GridSession.LinearBytes(layout, n, inFeatures, outFeatures, e);
            var failures = RunRanks(GridSession.Ranks(layout), (comm, ops, failed) =>
            {
                using var session = new GridSession(layout, comm, ops);
                using var layer = session.Linear(0);
                GridBlock xb = session.Input(0), yb = session.Output(0), wb = session.Weight(0), bb = session.Vector(0);
                using var wFull = ops.FromArray(c.W, new Shape(inFeatures, outFeatures), dtype);
                using var w = ops.Empty(wb.Of(wFull.Shape), dtype);
                TensorGridShards.Split(ops, wFull, w, wb);
                using var x = Upload(ops, c.X, n, inFeatures, xb, dtype);
                using var b = Upload(ops, c.Bias, 0, outFeatures, bb, dtype);
                using var g = Upload(ops, c.WeightGrad0, inFeatures, outFeatures, wb, dtype);
                using var gb = Upload(ops, c.BiasGrad0, 0, outFeatures, bb, dtype);
                using var dy = Upload(ops, c.Dy, n, outFeatures, yb, dtype);
                using var y = ops.Empty(yb.Of(new Shape(n, outFeatures)), dtype);
                using var dx = ops.Empty(x.Shape, dtype);

                layer.Forward(x, w, b, y);
                long forward = layer.BytesCommunicated;
                layer.Backward(x, dy, w, g, gb, dx);
                long backward = layer.BytesCommunicated - forward;

                string what = $"{layout} rank {comm.Rank} {dtype.Name()} N {n} In {inFeatures} Out {outFeatures} (seed {seed})";
                Compare(failed, what + " y", ops.ToDoubleArray(y), Block(c.Y, n, outFeatures, yb), tolerance);
                Compare(failed, what + " dx", ops.ToDoubleArray(dx), Block(c.Dx, n, inFeatures, xb), tolerance);
                Compare(failed, what + " dW block", ops.ToDoubleArray(g), Block(c.WeightGrad, inFeatures, outFeatures, wb), tolerance);
                // The bias gradient accumulates on its owners only; every other rank's copy is left exactly as it was.
                if (session.OwnsBias)
                {
                    Compare(failed, what + " db", ops.ToDoubleArray(gb), Block(c.BiasGrad, bb), tolerance, Math.Sqrt(outFeatures));
                }
                else if (!ops.ToDoubleArray(gb).SequenceEqual(Block(c.BiasGrad0, bb).Select(v => dtype == DType.F32 ? (double)(float)v : v)))
                {
                    failed.Enqueue(what + ": a rank that does not own the bias changed its gradient");
                }
                using var gFull = ops.Empty(new Shape(inFeatures, outFeatures), dtype);
                TensorGridShards.Gather(ops, comm, g, gFull, wb);
                Compare(failed, what + " dW gathered", ops.ToDoubleArray(gFull), c.WeightGrad, tolerance);
                if (forward != forwardBytes || backward != backwardBytes)
                {
                    failed.Enqueue($"{what}: sent {forward} bytes forward and {backward} backward, the derivation says {forwardBytes} and {backwardBytes}");
                }
            });
            Assert.True(failures.Count == 0, string.Join("\n", failures));
        }
    }

    [Theory]
    [InlineData("2d")]
    [InlineData("2.5d")]
    [InlineData("3d")]
    public void A_nan_or_infinity_in_one_input_row_reaches_that_output_row_and_no_other(string layout)
    {
        const int n = 8, inFeatures = 8, outFeatures = 4;
        foreach (double poison in new[] { double.NaN, double.PositiveInfinity })
        {
            int seed = 37_000 + layout.Length;
            var c = new FullLinear(seed, n, inFeatures, outFeatures);
            const int poisonedRow = 5;
            double[] x = (double[])c.X.Clone();
            x[(poisonedRow * inFeatures) + 3] = poison;
            var failures = RunRanks(GridSession.Ranks(layout), (comm, ops, failed) =>
            {
                using var session = new GridSession(layout, comm, ops);
                using var layer = session.Linear(0);
                GridBlock xb = session.Input(0), yb = session.Output(0), wb = session.Weight(0);
                using var xd = Upload(ops, x, n, inFeatures, xb, DType.F32);
                using var w = Upload(ops, c.W, inFeatures, outFeatures, wb, DType.F32);
                using var y = ops.Empty(yb.Of(new Shape(n, outFeatures)), DType.F32);
                layer.Forward(xd, w, null, y);
                double[] actual = ops.ToDoubleArray(y);
                int rows = y.Shape[0], cols = y.Shape[1];
                for (int i = 0; i < rows; i++)
                {
                    int row = (yb.RowBlock * rows) + i;
                    for (int j = 0; j < cols; j++)
                    {
                        // x·W with one non-finite x in row 5: ±Inf times weights of both signs, or NaN, poisons every
                        // output of that row; every other row stays finite.
                        bool finite = double.IsFinite(actual[(i * cols) + j]);
                        if (finite == (row == poisonedRow))
                        {
                            failed.Enqueue($"{layout} rank {comm.Rank} x[{poisonedRow}, 3] = {poison} (seed {seed}): y[{row}, {(yb.ColumnBlock * cols) + j}] = {actual[(i * cols) + j]}");
                        }
                    }
                }
            });
            Assert.True(failures.Count == 0, string.Join("\n", failures));
        }
    }

    [Theory]
    [InlineData(2, "2D", "square")]
    [InlineData(8, "2D", "square")]
    [InlineData(4, "2.5D", "q²·2")]
    [InlineData(6, "2.5D", "q²·2")]
    [InlineData(4, "3D", "cube")]
    [InlineData(9, "3D", "cube")]
    public void A_group_size_that_does_not_fit_the_grid_is_refused(int ranks, string grid, string expected)
    {
        var failures = RunRanks(ranks, (comm, ops, failed) =>
        {
            var e = Assert.Throws<TensorGridException>(() =>
            {
                IDisposable made = grid switch
                {
                    "2D" => new TensorGrid2D(comm),
                    "2.5D" => new TensorGrid25D(comm, depth: 2),
                    _ => new TensorGrid3D(comm),
                };
                made.Dispose();
            });
            if (!e.Message.Contains(expected, StringComparison.Ordinal) || !e.Message.Contains($"got {ranks}", StringComparison.Ordinal))
            {
                failed.Enqueue($"{grid} over {ranks} ranks, rank {comm.Rank}: \"{e.Message}\"");
            }
        });
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    [Fact]
    public void Sizes_that_do_not_divide_and_blocks_that_do_not_fit_are_refused_before_any_communication()
    {
        var failures = RunRanks(8, (comm, ops, failed) =>
        {
            using var session = new GridSession("3d", comm, ops);
            using var layer = session.Linear(0);
            // The 3D weight [In, Out] is cut into c² = 4 row pieces: In = 6 does not divide.
            var uneven = Assert.Throws<ArgumentException>(() => session.Weight(0).Of(new Shape(6, 4)));
            using var x = ops.Zeros(new Shape(1, 3));
            using var w = ops.Zeros(new Shape(2, 2));
            using var y = ops.Zeros(new Shape(1, 2));
            var misfit = Assert.Throws<ShapeMismatchException>(() => layer.Forward(x, w, null, y));
            using var ids = ops.Zeros(new Shape(6), DType.I64);
            using var grid = new TensorGrid3D(comm);
            using var embedding = new Embedding3D(ops, grid, vocabSize: 8, inputAxis: 2);
            using var table = ops.Zeros(new Shape(2, 3));
            using var rows = ops.Zeros(new Shape(1, 3));
            // 6 ids do not split into the plane's c² = 4 row blocks.
            var batch = Assert.Throws<ArgumentException>(() => embedding.Forward(table, ids, rows));
            string messages = string.Join(" | ", uneven.Message, misfit.Message, batch.Message);
            if (!uneven.Message.Contains("divisible", StringComparison.Ordinal) || !misfit.Message.Contains("[N/c², In/c]", StringComparison.Ordinal)
                || !batch.Message.Contains("divisible by 4", StringComparison.Ordinal) || layer.BytesCommunicated + embedding.BytesCommunicated != 0)
            {
                failed.Enqueue($"rank {comm.Rank}: {messages}");
            }
        });
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }
}

/// <summary>Tolerances and the full-size reference of one linear layer.</summary>
internal static class GridTestMath
{
    // F32: each result is a dot product of at most 68 terms (plus up to q = 2 partial sums, a bias, and in 2.5D a depth
    // sum), so its rounding error is at most about 72·2⁻²⁴ ≈ 4e-6 of the terms' magnitude, typically √72·2⁻²⁴ ≈ 5e-7;
    // 1e-5 relative Frobenius holds with margin yet fails on any dropped, doubled or misplaced block (an error of order
    // 1/√(terms)). The layer norm adds a few roundings of the mean, variance and rstd (one-pass variance: Σx²/H − mean²
    // loses at most a factor E[x²]/var ≈ 2 here). F64: the same counts at 2⁻⁵³ are ≈ 1e-14; 1e-12 leaves room for
    // cancellation in small gradients while staying many orders below a wrong term.
    public const double F32Tolerance = 1e-5;
    public const double F64Tolerance = 1e-12;

    public static double Tolerance(DType dtype) => dtype == DType.F64 ? F64Tolerance : F32Tolerance;
}

/// <summary>
/// One full linear layer y = x·W + b with W [In, Out], its gradients from dy, starting from non-zero gradients (G0, B0)
/// so accumulation is checked too.
/// </summary>
internal sealed class FullLinear
{
    public FullLinear(int seed, int n, int inFeatures, int outFeatures)
    {
        var random = new Random(seed);
        X = HostMath.Normal(random, n * inFeatures);
        W = HostMath.Normal(random, inFeatures * outFeatures, 1 / Math.Sqrt(inFeatures));
        Bias = HostMath.Normal(random, outFeatures);
        Dy = HostMath.Normal(random, n * outFeatures);
        WeightGrad0 = HostMath.Normal(random, inFeatures * outFeatures);
        BiasGrad0 = HostMath.Normal(random, outFeatures);
        Y = HostMath.AddRow(HostMath.MatMul(X, W, n, inFeatures, outFeatures), Bias, n, outFeatures);
        Dx = HostMath.MatMul(Dy, HostMath.Transpose(W, inFeatures, outFeatures), n, outFeatures, inFeatures);
        WeightGrad = HostMath.Add(WeightGrad0, HostMath.MatMul(HostMath.Transpose(X, n, inFeatures), Dy, inFeatures, n, outFeatures));
        BiasGrad = HostMath.Add(BiasGrad0, HostMath.ColumnSums(Dy, n, outFeatures));
    }

    public double[] X { get; }
    public double[] W { get; }
    public double[] Bias { get; }
    public double[] Dy { get; }
    public double[] WeightGrad0 { get; }
    public double[] BiasGrad0 { get; }
    public double[] Y { get; }
    public double[] Dx { get; }
    public double[] WeightGrad { get; }
    public double[] BiasGrad { get; }
}
