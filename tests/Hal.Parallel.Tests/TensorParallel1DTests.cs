using Hal.Parallel.TensorParallel;
using static Hal.Parallel.Tests.DataParallelTestKit;
using static Hal.Parallel.Tests.HostMath;

namespace Hal.Parallel.Tests;

// Legend: p tp ranks, r rank, N rows, Nl = N/p rows per rank (sequence-parallel), In/Out features of the full
// layer, Il = In/p and Ol = Out/p features of a shard. Host references are double loops over the full tensors.

/// <summary>1D (Megatron) tensor-parallel layers over in-process CPU ranks against single-device references.</summary>
public sealed partial class TensorParallel1DTests
{
    // F32: each result is a dot product of at most 65 terms (plus up to p = 4 partial sums and a bias), so its rounding
    // error is at most about 70·2⁻²⁴ ≈ 4e-6 of the terms' magnitude, and typically √70·2⁻²⁴ ≈ 5e-7; 1e-5 relative
    // Frobenius against the double reference holds with margin yet fails on any dropped, doubled or misplaced term
    // (which moves the error to order 1/√(terms)). F64: the same count at 2⁻⁵³ is ≈ 8e-15; 1e-12 leaves room for
    // cancellation in small gradients while staying 9 orders below a wrong term.
    private const double F32Tolerance = 1e-5;
    private const double F64Tolerance = 1e-12;

    // BF16 keeps 8 significant bits (unit roundoff 2⁻⁹ ≈ 2e-3). The tied head rounds the logits, dlogits, dx and the
    // gradient each once to BF16 and the softmax turns a logit error δ into a probability error of about δ, with logits
    // of order 3 here: a few roundings of up to 3·2e-3 each (6e-3 is the largest seen over these cases), so 2e-2.
    // A wrong or missing term is an error of order 1.
    private const double Bf16Tolerance = 2e-2;

    public static TheoryData<int, WeightLayout, string, bool> LinearCases()
    {
        var data = new TheoryData<int, WeightLayout, string, bool>();
        foreach (int tp in new[] { 1, 2, 4 })
        {
            foreach (var layout in new[] { WeightLayout.InOut, WeightLayout.OutIn })
            {
                foreach (string dtype in new[] { "F32", "F64" })
                {
                    foreach (bool sp in new[] { false, true })
                    {
                        data.Add(tp, layout, dtype, sp);
                    }
                }
            }
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(LinearCases))]
    public void Column_parallel_linear_equals_single_device(int tp, WeightLayout layout, string dtypeName, bool sp)
    {
        var dtype = Enum.Parse<DType>(dtypeName);
        double tolerance = Tolerance(dtype);
        // Out divisible by p = 4; In and N swept around vector widths (N divisible by 4 for the sequence split).
        foreach (var (n, inFeatures, outFeatures) in new[] { (4, 1, 4), (8, 7, 8), (16, 17, 12), (8, 33, 20), (4, 65, 16) })
        {
            int seed = 7000 + (tp * 1000) + (n * 100) + inFeatures + outFeatures + (sp ? 7 : 0) + (int)layout;
            var c = new LinearCase(seed, n, inFeatures, outFeatures, layout);
            int ol = outFeatures / tp, nl = n / tp;
            var failures = RunRanks(tp, (comm, ops, failed) =>
            {
                int r = comm.Rank;
                using var layer = new ColumnParallelLinear(ops, comm, layout, sp);
                using var w = Shard(ops, c.StoredWeight, c.StoredShape, dtype, layout, ShardedFeatures.Output, r, tp);
                using var b = Shard(ops, c.Bias, new Shape(outFeatures), dtype, layout, ShardedFeatures.Output, r, tp);
                using var g = Shard(ops, c.StoredWeightGrad0, c.StoredShape, dtype, layout, ShardedFeatures.Output, r, tp);
                using var gb = Shard(ops, c.BiasGrad0, new Shape(outFeatures), dtype, layout, ShardedFeatures.Output, r, tp);
                using var x = sp ? ops.FromArray(Rows(c.X, inFeatures, r * nl, nl), new Shape(nl, inFeatures), dtype) : ops.FromArray(c.X, new Shape(n, inFeatures), dtype);
                using var y = ops.Empty(new Shape(n, ol), dtype);
                using var dy = ops.FromArray(Columns(c.Dy, n, outFeatures, r * ol, ol), new Shape(n, ol), dtype);
                using var dx = ops.Empty(x.Shape, dtype);

                layer.Forward(x, w, b, y);
                layer.Backward(x, dy, w, g, gb, dx);

                using var gFull = ops.Empty(c.StoredShape, dtype);
                using var gbFull = ops.Empty(new Shape(outFeatures), dtype);
                TensorParallelShards.Gather(ops, comm, g, gFull, layout, ShardedFeatures.Output);
                TensorParallelShards.Gather(ops, comm, gb, gbFull, layout, ShardedFeatures.Output);
                string what = $"column tp {tp} rank {r} {layout} {dtype.Name()} sp {sp} N {n} In {inFeatures} Out {outFeatures} (seed {seed})";
                Compare(failed, what + " y", ops.ToDoubleArray(y), Columns(c.Y, n, outFeatures, r * ol, ol), tolerance);
                Compare(failed, what + " dx", ops.ToDoubleArray(dx), sp ? Rows(c.Dx, inFeatures, r * nl, nl) : c.Dx, tolerance);
                Compare(failed, what + " dW", ops.ToDoubleArray(gFull), c.StoredWeightGrad, tolerance);
                Compare(failed, what + " db", ops.ToDoubleArray(gbFull), c.BiasGrad, tolerance, UnitNorm(outFeatures));
            });
            Assert.True(failures.Count == 0, string.Join("\n", failures));
        }
    }

    [Theory]
    [MemberData(nameof(LinearCases))]
    public void Row_parallel_linear_equals_single_device(int tp, WeightLayout layout, string dtypeName, bool sp)
    {
        var dtype = Enum.Parse<DType>(dtypeName);
        double tolerance = Tolerance(dtype);
        // In divisible by p = 4; Out swept around vector widths.
        foreach (var (n, inFeatures, outFeatures) in new[] { (4, 4, 1), (8, 8, 7), (16, 16, 9), (8, 32, 17), (4, 64, 33) })
        {
            int seed = 8000 + (tp * 1000) + (n * 100) + inFeatures + outFeatures + (sp ? 7 : 0) + (int)layout;
            var c = new LinearCase(seed, n, inFeatures, outFeatures, layout);
            int il = inFeatures / tp, nl = n / tp;
            var failures = RunRanks(tp, (comm, ops, failed) =>
            {
                int r = comm.Rank;
                using var layer = new RowParallelLinear(ops, comm, layout, sp);
                using var w = Shard(ops, c.StoredWeight, c.StoredShape, dtype, layout, ShardedFeatures.Input, r, tp);
                using var g = Shard(ops, c.StoredWeightGrad0, c.StoredShape, dtype, layout, ShardedFeatures.Input, r, tp);
                using var b = ops.FromArray(c.Bias, new Shape(outFeatures), dtype);
                using var gb = ops.FromArray(c.BiasGrad0, new Shape(outFeatures), dtype);
                using var x = ops.FromArray(Columns(c.X, n, inFeatures, r * il, il), new Shape(n, il), dtype);
                int rows = sp ? nl : n;
                using var y = ops.Empty(new Shape(rows, outFeatures), dtype);
                using var dy = ops.FromArray(sp ? Rows(c.Dy, outFeatures, r * nl, nl) : c.Dy, new Shape(rows, outFeatures), dtype);
                using var dx = ops.Empty(x.Shape, dtype);

                layer.Forward(x, w, b, y);
                layer.Backward(x, dy, w, g, gb, dx);

                using var gFull = ops.Empty(c.StoredShape, dtype);
                TensorParallelShards.Gather(ops, comm, g, gFull, layout, ShardedFeatures.Input);
                string what = $"row tp {tp} rank {r} {layout} {dtype.Name()} sp {sp} N {n} In {inFeatures} Out {outFeatures} (seed {seed})";
                Compare(failed, what + " y", ops.ToDoubleArray(y), sp ? Rows(c.Y, outFeatures, r * nl, nl) : c.Y, tolerance);
                Compare(failed, what + " dx", ops.ToDoubleArray(dx), Columns(c.Dx, n, inFeatures, r * il, il), tolerance);
                Compare(failed, what + " dW", ops.ToDoubleArray(gFull), c.StoredWeightGrad, tolerance);
                // The bias and its gradient are whole on every rank: each must hold the full sum.
                Compare(failed, what + " db", ops.ToDoubleArray(gb), c.BiasGrad, tolerance, UnitNorm(outFeatures));
            });
            Assert.True(failures.Count == 0, string.Join("\n", failures));
        }
    }

    [Fact]
    public void Sequence_split_requires_rows_divisible_by_tp()
    {
        var failures = RunRanks(2, (comm, ops, failed) =>
        {
            using var layer = new RowParallelLinear(ops, comm, WeightLayout.InOut, sequenceParallel: true);
            using var x = ops.Zeros(new Shape(3, 2));
            using var w = ops.Zeros(new Shape(2, 4));
            using var y = ops.Empty(new Shape(1, 4));
            var e = Assert.Throws<ShapeMismatchException>(() => layer.Forward(x, w, null, y));
            if (!e.Message.Contains("rank order", StringComparison.Ordinal) || layer.BytesCommunicated != 0)
            {
                failed.Enqueue($"rank {comm.Rank}: \"{e.Message}\", {layer.BytesCommunicated} bytes");
            }
        });
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    [Fact]
    public void Misuse_is_refused_before_any_communication()
    {
        var failures = RunRanks(2, (comm, ops, failed) =>
        {
            using var column = new ColumnParallelLinear(ops, comm, WeightLayout.InOut, sequenceParallel: true);
            using var loss = new VocabParallelCrossEntropy(ops, comm, vocabSize: 7);
            using var embedding = new VocabParallelEmbedding(ops, comm, vocabSize: 7);
            using var x = ops.Zeros(new Shape(2, 3));
            using var w = ops.Zeros(new Shape(3, 2));
            using var logits = ops.Zeros(new Shape(2, 3));
            using var ids = ops.Zeros(new Shape(2), DType.I64);
            var early = Assert.Throws<InvalidOperationException>(() => column.Backward(x, x, w, w, null, null));
            var noForward = Assert.Throws<InvalidOperationException>(() => loss.Backward(1, logits));
            // V = 7 over tp 2 pads to 8: the logits shard has 4 columns and the table shard 4 rows.
            var wrongColumns = Assert.Throws<ArgumentException>(() => loss.Forward(logits, ids));
            var wrongRows = Assert.Throws<ArgumentException>(() => embedding.Forward(w, ids, x));
            using var otherDevice = new Hal.Backends.Cpu.CpuBackend().Open(0);
            var wrongDevice = Assert.Throws<ArgumentException>(() => new RowParallelLinear(new Ops(otherDevice), comm, WeightLayout.OutIn));
            string messages = string.Join(" | ", early.Message, noForward.Message, wrongColumns.Message, wrongRows.Message, wrongDevice.Message);
            if (!wrongColumns.Message.Contains("[N, 4]", StringComparison.Ordinal) || !wrongRows.Message.Contains("[4, C]", StringComparison.Ordinal)
                || !early.Message.Contains("before forward", StringComparison.Ordinal) || !wrongDevice.Message.Contains("tp group", StringComparison.Ordinal)
                || column.BytesCommunicated + loss.BytesCommunicated + embedding.BytesCommunicated != 0)
            {
                failed.Enqueue($"rank {comm.Rank}: {messages}");
            }
        });
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    private static double Tolerance(DType dtype) => dtype switch { DType.F64 => F64Tolerance, DType.BF16 => Bf16Tolerance, _ => F32Tolerance };

    /// <summary>The norm of a vector of unit entries: the scale of a bias gradient B0 + Σ dy built from unit-normal terms.</summary>
    private static double UnitNorm(int count) => Math.Sqrt(count);

    /// <summary>Rank r's shard of a host tensor, uploaded whole then split on the device.</summary>
    private static Tensor Shard(Ops ops, double[] full, Shape shape, DType dtype, WeightLayout layout, ShardedFeatures features, int rank, int tp, int segments = 1)
    {
        using var whole = ops.FromArray(full, shape, dtype);
        var shard = ops.Empty(TensorParallelShards.ShardShape(shape, layout, features, tp, segments), dtype);
        TensorParallelShards.Split(ops, whole, shard, layout, features, rank, tp, segments);
        return shard;
    }

    /// <summary>
    /// One full linear layer y = x·W + b with logical W [In, Out], its gradients from dy, and the stored layout
    /// ([In, Out] or [Out, In]); gradients start from non-zero values (G0, B0) so accumulation is checked too.
    /// </summary>
    private sealed class LinearCase
    {
        public LinearCase(int seed, int n, int inFeatures, int outFeatures, WeightLayout layout)
        {
            var random = new Random(seed);
            X = Normal(random, n * inFeatures);
            double[] w = Normal(random, inFeatures * outFeatures, 1 / Math.Sqrt(inFeatures));
            Bias = Normal(random, outFeatures);
            Dy = Normal(random, n * outFeatures);
            double[] g0 = Normal(random, inFeatures * outFeatures);
            BiasGrad0 = Normal(random, outFeatures);
            Y = AddRow(MatMul(X, w, n, inFeatures, outFeatures), Bias, n, outFeatures);
            Dx = MatMul(Dy, Transpose(w, inFeatures, outFeatures), n, outFeatures, inFeatures);
            double[] dw = Add(g0, MatMul(Transpose(X, n, inFeatures), Dy, inFeatures, n, outFeatures));
            BiasGrad = Add(BiasGrad0, ColumnSums(Dy, n, outFeatures));
            bool inOut = layout == WeightLayout.InOut;
            StoredShape = inOut ? new Shape(inFeatures, outFeatures) : new Shape(outFeatures, inFeatures);
            StoredWeight = inOut ? w : Transpose(w, inFeatures, outFeatures);
            StoredWeightGrad0 = inOut ? g0 : Transpose(g0, inFeatures, outFeatures);
            StoredWeightGrad = inOut ? dw : Transpose(dw, inFeatures, outFeatures);
        }

        public double[] X { get; }
        public double[] Bias { get; }
        public double[] Dy { get; }
        public double[] BiasGrad0 { get; }
        public double[] Y { get; }
        public double[] Dx { get; }
        public double[] BiasGrad { get; }
        public Shape StoredShape { get; }
        public double[] StoredWeight { get; }
        public double[] StoredWeightGrad0 { get; }
        public double[] StoredWeightGrad { get; }
    }
}
