using Xunit.Abstractions;
using Hal.Backends.Cpu;
using Hal.Collectives.InProcess;
using Hal.Models.Training;
using Hal.Models.Transformer;
using Hal.Parallel.Mesh;

namespace Hal.Models.Tests;

// Legend: B batch rows, T time, V vocabulary, p tp ranks; 2D q×q, 2.5D q×q×d, 3D c×c×c.

/// <summary>
/// 2D, 2.5D and 3D tensor parallelism inside GPT-2 and LLaMA on in-process CPU ranks: one forward/backward gives the
/// single-device loss and, gathered, the single-device gradients; the trainer's curves agree; checkpoints move between
/// grid and 1-D layouts; impossible grids are refused; the bytes a block sends match their formula.
/// </summary>
public sealed class GridTensorParallelTrainingTests(ITestOutputHelper output)
{
    // V = 40: divisible by q = 2 and by c² = 4 (the 3D table's vocabulary blocks); the token ids stay below 37.
    private const int Batch = 4, Time = 8, Vocab = 40;
    private const ulong Seed = 2024;

    private static ModelConfig Tiny(string name) => ModelConfig.Named(name, Vocab) with { ContextLength = 16 };

    private static TensorParallelMode Mode(string mode) => TensorParallelModes.Parse(mode)!.Value;

    /// <summary>One forward/backward of the grid model on p in-process ranks: rank 0's loss, every gathered gradient, and block 0's bytes.</summary>
    private static (double Loss, Dictionary<string, double[]> Grads, long BlockBytes) Grid(ModelConfig config, string mode, int tp, int depth, int[] ids, int[] targets)
    {
        var (geometry, problem) = GridGeometry.For(Mode(mode), tp, depth);
        Assert.True(geometry is not null, problem);
        var backend = new CpuBackend();
        var devices = Enumerable.Range(0, tp).Select(_ => backend.Open(0)).ToArray();
        double loss = double.NaN;
        long bytes = 0;
        var grads = new Dictionary<string, double[]>(StringComparer.Ordinal);
        try
        {
            InProcessWorld.Run(devices, world =>
            {
                var ops = new Ops(devices[world.Rank]);
                using var model = new GridTransformerModel(ops, config, world, geometry!);
                model.Initialize(Seed);
                var shape = new Shape(Batch, Time);
                using var idsT = ops.FromArray(Array.ConvertAll(ids, v => (double)v), shape, DType.I32);
                using var targetsT = ops.FromArray(Array.ConvertAll(targets, v => (double)v), shape, DType.I32);
                double local = model.Forward(idsT, targetsT);
                model.Backward();
                var full = model.GatherFull(gradients: true);
                if (world.Rank == 0)
                {
                    loss = local;
                    bytes = model.BlockBytesCommunicated(0);
                    foreach (var (name, t) in full)
                    {
                        grads[name] = ops.ToDoubleArray(t);
                    }
                }
                foreach (var t in full.Values)
                {
                    t.Dispose();
                }
            });
        }
        finally
        {
            foreach (var d in devices)
            {
                d.Dispose();
            }
        }
        return (loss, grads, bytes);
    }

    [Theory]
    [InlineData("gpt-tiny", "2d", 4, 0)]
    [InlineData("gpt-tiny", "2.5d", 8, 2)]
    [InlineData("gpt-tiny", "3d", 8, 0)]
    [InlineData("llama-tiny", "2d", 4, 0)]
    [InlineData("llama-tiny", "2.5d", 8, 2)]
    [InlineData("llama-tiny", "3d", 8, 0)]
    public void OneStepMatchesTheSingleDeviceLossAndGradients(string name, string mode, int tp, int depth)
    {
        var config = Tiny(name);
        var (ids, targets) = TensorParallelTrainingTests.Tokens(11);
        var (loss, grads) = TensorParallelTrainingTests.SingleDevice(config, ids, targets);
        var grid = Grid(config, mode, tp, depth, ids, targets);
        // fp32: the grid sums GEMM partial products and softmax statistics in another order than one device (seed 11).
        Assert.True(Math.Abs(grid.Loss - loss) <= 1e-5 * Math.Abs(loss), $"{name} {mode}: loss {grid.Loss:R} vs single-device {loss:R} (tokens seed 11)");
        double worst = 0;
        foreach (var (param, expected) in grads)
        {
            var actual = grid.Grads[param];
            double diff = 0, norm = 0;
            for (int i = 0; i < expected.Length; i++)
            {
                diff += (actual[i] - expected[i]) * (actual[i] - expected[i]);
                norm += expected[i] * expected[i];
            }
            double relative = Math.Sqrt(diff) / Math.Max(Math.Sqrt(norm), 1e-30);
            worst = Math.Max(worst, relative);
            // fp32 reordered sums; 1e-4 relative Frobenius is the bound for every layout (seed 11).
            Assert.True(relative <= 1e-4, $"{name} {mode}: gradient of {param} differs by {relative:E2} relative Frobenius (tokens seed 11)");
        }
        output.WriteLine($"{name} {mode} tp {tp}: loss {grid.Loss:R} vs {loss:R}; worst gradient relative difference {worst:E2}");
    }
}
