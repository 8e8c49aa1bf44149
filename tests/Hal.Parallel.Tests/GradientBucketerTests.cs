using System.Collections.Concurrent;
using static Hal.Parallel.Tests.DataParallelTestKit;

namespace Hal.Parallel.Tests;

// Shape legend: count = slab elements; e = elements per bucket; n = ranks.

/// <summary>GradientBucketer over in-process groups of CPU devices: exact means, bucket layout, launch points, errors.</summary>
public sealed class GradientBucketerTests
{
    private const int PatternCount = 5;

    /// <summary>(count, e) pairs: one element, slabs that are and are not multiples of e, many buckets, one bucket
    /// larger than the slab, and buckets of at least 32 KiB so the in-process ring path runs too.</summary>
    public static TheoryData<int, int, long, long> Cases()
    {
        var data = new TheoryData<int, int, long, long>();
        (long Count, long Elements)[] sizes = [(1, 1), (1, 1000), (7, 3), (8, 8), (9, 8), (17, 16), (33, 1), (65, 64), (100, 7), (20_000, 9_000)];
        foreach (int ranks in (int[])[1, 2, 4])
        {
            foreach (var dtype in (DType[])[DType.F32, DType.BF16])
            {
                foreach (var (count, e) in sizes)
                {
                    data.Add(ranks, (int)dtype, count, e);
                }
            }
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Finish_alone_leaves_every_rank_with_the_exact_mean(int ranks, int dtypeCode, long count, long bucketElements)
    {
        var dtype = (DType)dtypeCode;
        var failures = RunRanks(ranks, (comm, ops, failed) =>
        {
            using var slab = ops.FromArray(Values(comm.Rank, count), new Shape((int)count), dtype);
            using var bucketer = new GradientBucketer(comm, slab, bucketElements * dtype.SizeInBytes());
            bucketer.BeginBackward();
            bucketer.FinishBackward();
            Check(failed, $"rank {comm.Rank} {dtype.Name()} count {count} e {bucketElements}", ops.ToDoubleArray(slab), i => Mean(ranks, i));
            if (bucketer.BucketsOverlapped != 0 || bucketer.BytesReduced != count * dtype.SizeInBytes())
            {
                failed.Enqueue($"rank {comm.Rank}: overlapped {bucketer.BucketsOverlapped} (expected 0), bytes {bucketer.BytesReduced} (expected {count * dtype.SizeInBytes()})");
            }
        });

        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    [Theory]
    [InlineData(2, 0)]
    [InlineData(2, 3)]
    [InlineData(4, 0)]
    [InlineData(4, 1)]
    [InlineData(4, 2)]
    public void Every_readiness_pattern_gives_the_same_exact_mean_even_when_ranks_differ(int ranks, int patternShift)
    {
        // Each rank reports readiness its own way (rank r uses pattern (r + shift) mod 5), over three steps, so the
        // buckets launch at different moments on different ranks; the result may not depend on it.
        const long count = 1_001;
        const long bucketElements = 37;
        foreach (var dtype in (DType[])[DType.F32, DType.BF16])
        {
            var failures = RunRanks(ranks, (comm, ops, failed) =>
            {
                using var slab = ops.Zeros(new Shape((int)count), dtype);
                using var bucketer = new GradientBucketer(comm, slab, bucketElements * dtype.SizeInBytes());
                int pattern = (comm.Rank + patternShift) % PatternCount;
                for (int step = 0; step < 3; step++)
                {
                    ops.Upload(Values(comm.Rank, count, step), slab);
                    bucketer.BeginBackward();
                    Report(bucketer, count, pattern, seed: (comm.Rank * 31) + step);
                    bucketer.FinishBackward();
                    int s = step;
                    Check(failed, $"rank {comm.Rank} {dtype.Name()} pattern {pattern} step {step} (seed {(comm.Rank * 31) + step})", ops.ToDoubleArray(slab), i => Mean(ranks, i, s));
                }
                if (bucketer.BytesReduced != 3 * count * dtype.SizeInBytes())
                {
                    failed.Enqueue($"rank {comm.Rank}: {bucketer.BytesReduced} bytes reduced, expected {3 * count * dtype.SizeInBytes()}");
                }
            });

            Assert.True(failures.Count == 0, string.Join("\n", failures));
        }
    }

    [Fact]
    public void A_bucket_is_launched_exactly_when_its_whole_range_becomes_final()
    {
        // count 10, e 3: buckets [7, 10), [4, 7), [1, 4), [0, 1).
        var failures = RunRanks(2, (comm, ops, failed) =>
        {
            using var slab = ops.FromArray(Values(comm.Rank, 10), new Shape(10), DType.F32);
            using var bucketer = new GradientBucketer(comm, slab, 3 * sizeof(float));
            (long Offset, int Launched)[] script = [(10, 0), (9, 0), (8, 0), (7, 1), (6, 1), (5, 1), (4, 2), (2, 2), (1, 3), (1, 3), (5, 3), (0, 4)];
            bucketer.BeginBackward();
            foreach (var (offset, launched) in script)
            {
                bucketer.GradientsReadyFrom(offset);
                if (bucketer.BucketsLaunched != launched || bucketer.BucketsOverlapped != launched)
                {
                    failed.Enqueue($"rank {comm.Rank}: after ready-from {offset}: {bucketer.BucketsLaunched} launched, {bucketer.BucketsOverlapped} overlapped, expected {launched}");
                }
            }
            bucketer.FinishBackward();
            Check(failed, $"rank {comm.Rank}", ops.ToDoubleArray(slab), i => Mean(2, i));
            if (bucketer.BucketsOverlapped != 4 || bucketer.BytesReduced != 40 || bucketer.BucketsLaunched != 0)
            {
                failed.Enqueue($"rank {comm.Rank}: overlapped {bucketer.BucketsOverlapped} (4), bytes {bucketer.BytesReduced} (40), launched {bucketer.BucketsLaunched} (0)");
            }

            // Readiness reported outside BeginBackward … FinishBackward (an accumulating micro-batch) launches nothing.
            bucketer.GradientsReadyFrom(0);
            if (bucketer.BucketsLaunched != 0 || bucketer.BucketsOverlapped != 4)
            {
                failed.Enqueue($"rank {comm.Rank}: an unarmed ready-from launched {bucketer.BucketsLaunched} bucket(s)");
            }

            // Half before Finish, half in it: counters add up across backwards.
            bucketer.BeginBackward();
            bucketer.GradientsReadyFrom(4);
            bucketer.FinishBackward();
            if (bucketer.BucketsOverlapped != 6 || bucketer.BytesReduced != 80)
            {
                failed.Enqueue($"rank {comm.Rank}: after the second backward overlapped {bucketer.BucketsOverlapped} (6), bytes {bucketer.BytesReduced} (80)");
            }
        });

        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    [Theory]
    [InlineData(0, 4, 0)]
    [InlineData(1, 4, 1)]
    [InlineData(1, 1, 1)]
    [InlineData(7, 8, 1)]
    [InlineData(8, 8, 1)]
    [InlineData(9, 8, 2)]
    [InlineData(63, 16, 4)]
    [InlineData(64, 16, 4)]
    [InlineData(65, 16, 5)]
    [InlineData(1000, 1, 1000)]
    public void Buckets_tile_the_slab_from_its_end(int count, long bucketElements, int expectedBuckets)
    {
        WithOneRank((comm, ops) =>
        {
            using var slab = ops.Zeros(new Shape(count));
            using var bucketer = new GradientBucketer(comm, slab, bucketElements * sizeof(float));

            Assert.Equal(expectedBuckets, bucketer.BucketCount);
            long end = count;
            for (int b = 0; b < bucketer.BucketCount; b++)
            {
                Assert.Equal(end, bucketer.BucketStart(b) + bucketer.BucketLength(b));
                long expectedLength = b < bucketer.BucketCount - 1 ? bucketElements : count - ((long)b * bucketElements);
                Assert.Equal(expectedLength, bucketer.BucketLength(b));
                end = bucketer.BucketStart(b);
            }
            Assert.Equal(0, end);
            bucketer.BeginBackward();
            bucketer.FinishBackward();
            Assert.Equal(count * sizeof(float), bucketer.BytesReduced);
        });
    }

    [Fact]
    public void A_bucket_size_below_one_element_still_makes_one_element_buckets()
    {
        WithOneRank((comm, ops) =>
        {
            using var slab = ops.Zeros(new Shape(5), DType.BF16);
            using var bucketer = new GradientBucketer(comm, slab, bucketBytes: 1);

            Assert.Equal(5, bucketer.BucketCount);
        });
    }

    [Fact]
    public void A_peer_that_never_reduces_makes_finish_raise_a_timeout_naming_the_bucket()
    {
        var caught = new Exception?[2];
        var devices = Devices(2);
        try
        {
            Hal.Collectives.InProcess.InProcessWorld.Run(devices, comm =>
            {
                if (comm.Rank == 1)
                {
                    return;
                }
                var ops = new Ops(comm.Device);
                using var slab = ops.FromArray(Values(0, 10), new Shape(10), DType.F32);
                using var bucketer = new GradientBucketer(comm, slab, 4 * sizeof(float));
                bucketer.BeginBackward();
                bucketer.GradientsReadyFrom(5);
                caught[0] = Record.Exception(bucketer.FinishBackward);
            }, TimeSpan.FromSeconds(0.5));
        }
        finally
        {
            foreach (var d in devices)
            {
                d.Dispose();
            }
        }

        var timeout = Assert.IsType<CollectiveTimeoutException>(caught[0]);
        Assert.Contains("bucket 0/3", timeout.Op);
        Assert.Contains("[6, 10)", timeout.Op);
        Assert.Contains("rank 1", timeout.WaitingFor);
    }

    [Fact]
    public void Bad_arguments_raise_the_documented_errors()
    {
        WithOneRank((comm, ops) =>
        {
            using var matrix = ops.Zeros(new Shape(2, 3));
            using var ints = ops.Zeros(new Shape(4), DType.I32);
            using var slab = ops.Zeros(new Shape(4));

            Assert.Throws<ArgumentException>(() => new GradientBucketer(comm, matrix));
            Assert.Throws<DTypeNotSupportedException>(() => new GradientBucketer(comm, ints));
            Assert.Throws<ArgumentOutOfRangeException>(() => new GradientBucketer(comm, slab, bucketBytes: 0));
            using var other = new Hal.Backends.Cpu.CpuBackend().Open(0);
            using var elsewhere = new Ops(other).Zeros(new Shape(4));
            Assert.Throws<ArgumentException>(() => new GradientBucketer(comm, elsewhere));

            var bucketer = new GradientBucketer(comm, slab, sizeof(float));
            Assert.Throws<ArgumentOutOfRangeException>(() => bucketer.GradientsReadyFrom(-1));
            Assert.Throws<ArgumentOutOfRangeException>(() => bucketer.GradientsReadyFrom(5));
            bucketer.BeginBackward();
            bucketer.GradientsReadyFrom(2);
            Assert.Equal(2, bucketer.BucketsLaunched);
            Assert.Throws<InvalidOperationException>(bucketer.BeginBackward);
            bucketer.FinishBackward();
            bucketer.Dispose();
            bucketer.Dispose();
            Assert.Throws<ObjectDisposedException>(bucketer.FinishBackward);
        });
    }

    /// <summary>
    /// Reports readiness in one of <see cref="PatternCount"/> ways: 0 never (all in FinishBackward); 1 once at 0;
    /// 2 every element, descending; 3 random decreasing offsets (repeats included) from <paramref name="seed"/>;
    /// 4 eight equal steps.
    /// </summary>
    private static void Report(GradientBucketer bucketer, long count, int pattern, int seed)
    {
        switch (pattern)
        {
            case 1:
                bucketer.GradientsReadyFrom(0);
                break;
            case 2:
                for (long offset = count; offset >= 0; offset--)
                {
                    bucketer.GradientsReadyFrom(offset);
                }
                break;
            case 3:
                {
                    var random = new Random(seed);
                    long offset = count;
                    while (offset > 0)
                    {
                        bucketer.GradientsReadyFrom(offset);
                        offset -= random.Next(0, 120);
                    }
                    break;
                }
            case 4:
                for (int k = 7; k >= 1; k--)
                {
                    bucketer.GradientsReadyFrom(count * k / 8);
                }
                break;
            default:
                break;
        }
    }
}
