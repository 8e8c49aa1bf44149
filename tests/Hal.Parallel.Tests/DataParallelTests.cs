using static Hal.Parallel.Tests.DataParallelTestKit;

namespace Hal.Parallel.Tests;

/// <summary>DataParallel's broadcast and scalar mean over in-process groups of CPU devices.</summary>
public sealed class DataParallelTests
{
    [Theory]
    [InlineData(1, DType.F32)]
    [InlineData(2, DType.F32)]
    [InlineData(4, DType.BF16)]
    [InlineData(3, DType.F16)]
    public void Broadcast_parameters_gives_every_rank_rank_zeros_slab(int ranks, DType dtype)
    {
        const int count = 33;
        var failures = RunRanks(ranks, (comm, ops, failed) =>
        {
            using var slab = ops.FromArray(Values(comm.Rank, count), new Shape(count), dtype);

            DataParallel.BroadcastParameters(comm, slab);

            Check(failed, $"rank {comm.Rank} {dtype.Name()}", ops.ToDoubleArray(slab), i => Value(0, i));
        });

        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    public void Average_scalar_is_the_mean_of_the_ranks_values(int ranks)
    {
        // 0.1·(r+1) are not exact in binary: the mean of n doubles summed in some order and divided once is within
        // (n + 1) rounding errors of the exact mean, each at most half an ulp of a value below 1 (2⁻⁵³).
        double expected = Enumerable.Range(0, ranks).Sum(r => 0.1 * (r + 1)) / ranks;
        var results = new double[ranks];
        var failures = RunRanks(ranks, (comm, ops, failed) => results[comm.Rank] = DataParallel.AverageScalar(comm, ops, 0.1 * (comm.Rank + 1)));

        Assert.True(failures.Count == 0, string.Join("\n", failures));
        foreach (double r in results)
        {
            Assert.True(Math.Abs(r - expected) <= (ranks + 1) * Math.Pow(2, -53), $"mean {r}, expected {expected}");
        }
        Assert.All(results, r => Assert.Equal(results[0], r));
    }

    [Fact]
    public void Average_scalar_refuses_ops_on_another_device()
    {
        WithOneRank((comm, ops) =>
        {
            using var other = new Hal.Backends.Cpu.CpuBackend().Open(0);

            Assert.Throws<ArgumentException>(() => DataParallel.AverageScalar(comm, new Ops(other), 1));
            Assert.Equal(2.5, DataParallel.AverageScalar(comm, ops, 2.5));
        });
    }
}
