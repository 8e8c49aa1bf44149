using System.Collections.Concurrent;
using Hal.Collectives.InProcess;
using Hal.Parallel.Pipeline;
using static Hal.Parallel.Tests.DataParallelTestKit;

namespace Hal.Parallel.Tests;

// Legend: N batch rows (8), C width (6), m micro-batches, p stages, v chunks per stage; 8 linear+tanh layers.

/// <summary>
/// A pipelined 8-layer linear+tanh stack trained one step on in-process CPU ranks: loss and every layer's gradients
/// equal the single-device run, for every schedule, p 2 and 4, m 1 and 4.
/// </summary>
public sealed class PipelineExecutorTests
{
    private const int Layers = 8;
    private const int Width = 6;
    private const int Batch = 8;
    private const int Seed = 4242;

    public static TheoryData<PipelineScheduleKind, int, int, int, DType> Cases()
    {
        var data = new TheoryData<PipelineScheduleKind, int, int, int, DType>();
        foreach (var dtype in new[] { DType.F32, DType.F64 })
        {
            foreach (int p in new[] { 2, 4 })
            {
                foreach (int m in new[] { 1, 4 })
                {
                    data.Add(PipelineScheduleKind.GPipe, p, m, 1, dtype);
                    data.Add(PipelineScheduleKind.OneFOneB, p, m, 1, dtype);
                    if (m % p == 0)
                    {
                        data.Add(PipelineScheduleKind.Interleaved, p, m, 2, dtype);
                    }
                }
            }
            data.Add(PipelineScheduleKind.GPipe, 2, 4, 2, dtype);
            data.Add(PipelineScheduleKind.Interleaved, 2, 2, 1, dtype);
            data.Add(PipelineScheduleKind.Interleaved, 1, 4, 2, dtype);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Pipelined_step_equals_the_single_device_step(PipelineScheduleKind kind, int p, int m, int v, DType dtype) =>
        RunAndCompare(kind, p, m, v, dtype, rendezvous: false);

    [Theory]
    [InlineData(PipelineScheduleKind.GPipe, 2, 4, 1)]
    [InlineData(PipelineScheduleKind.OneFOneB, 2, 4, 1)]
    [InlineData(PipelineScheduleKind.OneFOneB, 4, 4, 1)]
    [InlineData(PipelineScheduleKind.Interleaved, 2, 4, 2)]
    [InlineData(PipelineScheduleKind.Interleaved, 4, 8, 2)]
    public void Sends_that_wait_for_their_receive_do_not_deadlock(PipelineScheduleKind kind, int p, int m, int v) =>
        RunAndCompare(kind, p, m, v, DType.F64, rendezvous: true);

    [Fact]
    public void The_rendezvous_wrapper_stalls_two_ranks_that_send_to_each_other_first()
    {
        // The check that the test above can fail: the exchange 1F1B's steady state would make with blocking sends.
        var devices = Devices(2);
        try
        {
            var e = Assert.Throws<AggregateException>(() => InProcessWorld.Run(devices, comm =>
            {
                var rendezvous = new RendezvousCommunicator(comm);
                var ops = new Ops(comm.Device);
                using var mine = ops.Zeros(new Shape(4), DType.F64);
                using var theirs = ops.Zeros(new Shape(4), DType.F64);
                rendezvous.Send(mine, 1 - comm.Rank, tag: 7);
                rendezvous.Recv(theirs, 1 - comm.Rank, tag: 7);
            }, TimeSpan.FromMilliseconds(300)));
            Assert.Contains(e.InnerExceptions, x => x is CollectiveTimeoutException || x.InnerException is CollectiveTimeoutException);
        }
        finally
        {
            foreach (var d in devices)
            {
                d.Dispose();
            }
        }
    }

    private static void RunAndCompare(PipelineScheduleKind kind, int p, int m, int v, DType dtype, bool rendezvous)
    {
        var model = new TinyMlp(Layers, Width, Batch, Seed);
        var single = SingleDevice(model, dtype);
        // Norm-wise relative tolerance, |a − e| ≤ tol·max|e| per tensor. F64: the pipelined and the whole-batch run sum
        // the same ≤ 8-term products in another order, a few ulps (2.2e-16) each. F32: the same reordering at 6e-8 per
        // rounding through 8 layers of GEMM (K = 6) and tanh, well under 1e-5.
        double tolerance = dtype == DType.F64 ? 1e-12 : 1e-5;
        string what = $"{kind} p {p} m {m} v {v} {dtype.Name()} seed {Seed}{(rendezvous ? " rendezvous sends" : "")}";

        var losses = new ConcurrentDictionary<int, double>();
        var gradients = new ConcurrentDictionary<int, (double[] DW, double[] DB)>();
        var reports = new ConcurrentBag<PipelineStepReport>();
        var failures = RunRanks(p, (comm, ops, failed) =>
        {
            var partition = StagePartition.Balance(Enumerable.Repeat((double)(Width * Width) + Width, Layers).ToArray(), p, v);
            using var stage = new TinyMlpStage(ops, model, partition, comm.Rank, dtype, m);
            using var executor = new PipelineExecutor(rendezvous ? new RendezvousCommunicator(comm) : comm, stage);
            reports.Add(executor.Run(PipelineSchedule.Build(kind, comm.Rank, p, m, v)));
            foreach (var (micro, loss) in stage.Losses)
            {
                losses[micro] = loss;
            }
            foreach (int layer in stage.LayerIndices)
            {
                gradients[layer] = stage.Gradients(layer);
            }
        });
        Assert.True(failures.Count == 0, string.Join("\n", failures));

        Assert.Equal(m, losses.Count);
        double pipelinedLoss = Enumerable.Range(0, m).Sum(i => losses[i]);
        Assert.True(Math.Abs(pipelinedLoss - single.Loss) <= tolerance * Math.Abs(single.Loss), $"{what}: loss {pipelinedLoss}, single device {single.Loss}");
        Assert.Equal(Layers, gradients.Count);
        for (int l = 0; l < Layers; l++)
        {
            CheckClose($"{what} layer {l} dW", gradients[l].DW, single.DWeights[l], tolerance);
            CheckClose($"{what} layer {l} db", gradients[l].DB, single.DBiases[l], tolerance);
        }

        Assert.Equal(p, reports.Count);
        double theoretical = (p - 1) / (double)((v * m) + p - 1);
        var byStage = reports.OrderBy(r => r.Stage).ToArray();
        for (int s = 0; s < p; s++)
        {
            var report = byStage[s];
            Assert.Equal(s, report.Stage);
            Assert.InRange(report.BubbleFraction, 0, 1);
            Assert.InRange(report.MeanBubbleFraction, 0, 1);
            Assert.True(report.BusySeconds >= 0 && report.BusySeconds <= report.WallSeconds, report.ToString());
            // The same formula computed the same way: exact.
            Assert.Equal(theoretical, report.TheoreticalBubbleFraction);
            // Every stage derives the table from the same all-reduced numbers, so all agree exactly.
            Assert.Equal(byStage[0].WallSeconds, report.WallSeconds);
            Assert.Equal(byStage[0].StageBubbleFractions, report.StageBubbleFractions);
            Assert.Equal(report.BubbleFraction, report.StageBubbleFractions[s]);
            Assert.Equal(report.StageBubbleFractions.Average(), report.MeanBubbleFraction);
        }
    }

    [Theory]
    [InlineData(DType.F32)]
    [InlineData(DType.F64)]
    public void The_single_device_step_matches_the_plain_loop_reference(DType dtype)
    {
        var model = new TinyMlp(Layers, Width, Batch, Seed);
        var single = SingleDevice(model, dtype);
        var reference = model.Reference();
        // F64: the CPU GEMM and tanh against plain loops, a few ulps per op over 8 layers. F32: unit roundoff 6e-8
        // compounded through 8 layers of K = 6 GEMMs and tanh stays below 1e-5 of each tensor's largest entry.
        double tolerance = dtype == DType.F64 ? 1e-12 : 1e-5;
        string what = $"single device {dtype.Name()} seed {Seed}";
        Assert.True(Math.Abs(single.Loss - reference.Loss) <= tolerance * reference.Loss, $"{what}: loss {single.Loss}, reference {reference.Loss}");
        for (int l = 0; l < Layers; l++)
        {
            Assert.True(reference.DWeights[l].Max(Math.Abs) > 1e-4, $"{what}: layer {l} has a vanishing gradient, the comparison would be weak");
            CheckClose($"{what} layer {l} dW", single.DWeights[l], reference.DWeights[l], tolerance);
            CheckClose($"{what} layer {l} db", single.DBiases[l], reference.DBiases[l], tolerance);
        }
    }

    [Theory]
    [InlineData(PipelineScheduleKind.OneFOneB, 1)]
    [InlineData(PipelineScheduleKind.Interleaved, 2)]
    public void Pipeline_stages_inside_a_data_parallel_mesh_equal_the_single_device_step(PipelineScheduleKind kind, int v)
    {
        // dp 2 × pp 2 on 4 ranks: each replica pipelines half the batch (m 2 micro-batches of 2 rows), then the dp
        // group averages the gradients; the mean of two half-batch means is the whole-batch mean.
        const int dp = 2, pp = 2, m = 2;
        var model = new TinyMlp(Layers, Width, Batch, Seed);
        var single = SingleDevice(model, DType.F64);
        // F64: the half-batch sums and the dp average reorder a few ≤ 8-term sums, a few ulps each.
        const double tolerance = 1e-12;
        string what = $"dp {dp} × pp {pp} {kind} v {v} m {m} F64 seed {Seed}";
        var losses = new ConcurrentDictionary<(int Replica, int Micro), double>();
        var gradients = new ConcurrentDictionary<(int Replica, int Layer), (double[] DW, double[] DB)>();
        var failures = RunRanks(dp * pp, (world, ops, failed) =>
        {
            using var mesh = new Mesh.DeviceMesh(world, dp: dp, tp: 1, pp: pp, sp: 1);
            var partition = StagePartition.Balance(Enumerable.Repeat(1.0, Layers).ToArray(), pp, v);
            var share = model.Rows(mesh.DpRank * (Batch / dp), Batch / dp);
            using var stage = new TinyMlpStage(ops, share, partition, mesh.PpRank, DType.F64, m);
            using (var executor = new PipelineExecutor(mesh.PpGroup, stage))
            {
                executor.Run(PipelineSchedule.Build(kind, mesh.PpRank, pp, m, v));
            }
            foreach (var (micro, loss) in stage.Losses)
            {
                losses[(mesh.DpRank, micro)] = loss;
            }
            foreach (int layer in stage.LayerIndices.Order())
            {
                var (dw, db) = stage.Gradients(layer);
                using var both = ops.FromArray([.. dw, .. db], new Shape(dw.Length + db.Length), DType.F64);
                mesh.DpGroup.AllReduce(both, both, ReduceOp.Mean);
                var mean = ops.ToDoubleArray(both);
                gradients[(mesh.DpRank, layer)] = (mean[..dw.Length], mean[dw.Length..]);
            }
        });
        Assert.True(failures.Count == 0, string.Join("\n", failures));

        double meanLoss = Enumerable.Range(0, dp).Average(r => Enumerable.Range(0, m).Sum(i => losses[(r, i)]));
        Assert.True(Math.Abs(meanLoss - single.Loss) <= tolerance * single.Loss, $"{what}: loss {meanLoss}, single device {single.Loss}");
        for (int r = 0; r < dp; r++)
        {
            for (int l = 0; l < Layers; l++)
            {
                CheckClose($"{what} replica {r} layer {l} dW", gradients[(r, l)].DW, single.DWeights[l], tolerance);
                CheckClose($"{what} replica {r} layer {l} db", gradients[(r, l)].DB, single.DBiases[l], tolerance);
            }
        }
    }

    [Fact]
    public void A_schedule_for_another_stage_is_refused()
    {
        var model = new TinyMlp(Layers, Width, Batch, Seed);
        WithOneRank((comm, ops) =>
        {
            var partition = StagePartition.Balance(Enumerable.Repeat(1.0, Layers).ToArray(), 1);
            using var stage = new TinyMlpStage(ops, model, partition, 0, DType.F64, 1);
            using var executor = new PipelineExecutor(comm, stage);
            var e = Assert.Throws<PipelineException>(() => executor.Run(PipelineSchedule.Build(PipelineScheduleKind.OneFOneB, 1, 2, 1)));
            Assert.Contains("schedule for stage 1 of 2", e.Message);
        });
    }

    [Fact]
    public void A_stage_that_returns_nothing_to_send_is_reported()
    {
        var devices = Devices(2);
        try
        {
            // Rank 0 throws; the group's failure then ends rank 1's wait for the activation that never comes.
            var e = Assert.Throws<AggregateException>(() => InProcessWorld.Run(devices, comm =>
            {
                using var executor = new PipelineExecutor(comm, new SilentStage());
                executor.Run(PipelineSchedule.Build(PipelineScheduleKind.GPipe, comm.Rank, 2, 1));
            }, TimeSpan.FromSeconds(30)));
            var first = Assert.IsType<PipelineException>(e.InnerExceptions[0]);
            Assert.Contains("stage 0 returned no tensor from F(micro 0, chunk 0)", first.Message);
        }
        finally
        {
            foreach (var d in devices)
            {
                d.Dispose();
            }
        }
    }

    /// <summary>The one-device run: all 8 layers as one chunk on one rank, the whole batch as one micro-batch.</summary>
    private static (double Loss, double[][] DWeights, double[][] DBiases) SingleDevice(TinyMlp model, DType dtype)
    {
        (double, double[][], double[][]) result = default;
        WithOneRank((comm, ops) =>
        {
            var partition = StagePartition.Balance(Enumerable.Repeat(1.0, Layers).ToArray(), 1);
            using var stage = new TinyMlpStage(ops, model, partition, 0, dtype, 1);
            using var executor = new PipelineExecutor(comm, stage);
            executor.Run(PipelineSchedule.Build(PipelineScheduleKind.GPipe, 0, 1, 1));
            var grads = Enumerable.Range(0, Layers).Select(stage.Gradients).ToArray();
            result = (stage.Losses[0], grads.Select(g => g.DW).ToArray(), grads.Select(g => g.DB).ToArray());
        });
        return result;
    }

    private static void CheckClose(string what, double[] actual, double[] expected, double tolerance)
    {
        Assert.Equal(expected.Length, actual.Length);
        double scale = expected.Max(Math.Abs);
        for (int i = 0; i < expected.Length; i++)
        {
            Assert.True(Math.Abs(actual[i] - expected[i]) <= tolerance * scale,
                $"{what}: element {i} is {actual[i]}, expected {expected[i]} (tolerance {tolerance} × {scale})");
        }
    }

    /// <summary>A stage whose forward returns nothing: the executor must say so instead of sending nothing.</summary>
    private sealed class SilentStage : IPipelineStage
    {
        public int ChunkCount => 1;

        public PipelineTensorSpec InputSpec(int chunk) => new(new Shape(2), DType.F32);

        public PipelineTensorSpec OutputSpec(int chunk) => new(new Shape(2), DType.F32);

        public Tensor? Forward(int chunk, int micro, Tensor? input)
        {
            input?.Dispose();
            return null;
        }

        public Tensor? Backward(int chunk, int micro, Tensor? outputGradient)
        {
            outputGradient?.Dispose();
            return null;
        }
    }
}
