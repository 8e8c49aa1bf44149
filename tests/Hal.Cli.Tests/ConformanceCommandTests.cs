using System.Text.Json;
using Hal.Backends.Cpu;
using Hal.Collectives.InProcess;
using Hal.Conformance.Collectives;

namespace Hal.Cli.Tests;

public class ConformanceCommandTests
{
    [Fact]
    public void QuickCollectivesOnTwoRanksPassAndListEveryCaseInJson()
    {
        string path = Path.Combine(Path.GetTempPath(), $"hal-conformance-{Guid.NewGuid():N}.json");
        try
        {
            var r = CliRunner.Run("conformance", "--collectives", "--ranks", "2", "--quick", "--json", path);
            Assert.True(r.ExitCode == 0, $"exit {r.ExitCode}\n{r.Stdout}\n{r.Stderr}");
            int expectedCases = CollectiveCatalogue.Cases(2, quick: true).Count;
            Assert.Contains($"{expectedCases} cases, {expectedCases} passed, 0 failed", r.Stdout);
            Assert.Contains("allreduce", r.Stdout);

            using var doc = JsonDocument.Parse(File.ReadAllText(path));
            var cases = doc.RootElement.EnumerateArray().ToList();
            Assert.Equal(expectedCases, cases.Count);
            Assert.Equal(
                ["id", "collective", "dtype", "op", "count", "inPlace", "ranks", "comm", "passed", "wrongCount", "firstWrongRank", "firstWrongIndex", "expected", "actual", "error"],
                cases[0].EnumerateObject().Select(p => p.Name).ToArray());
            var ids = cases.Select(c => c.GetProperty("id").GetString()).ToHashSet();
            Assert.Contains("allreduce/f32/sum/n=1023/inplace", ids);
            Assert.Contains("reducescatter/bf16/mean/n=75/outofplace", ids);
            Assert.Contains("sendrecv/i32/n=0/outofplace", ids);
            Assert.All(cases, c =>
            {
                Assert.True(c.GetProperty("passed").GetBoolean(), c.GetProperty("id").GetString());
                Assert.Equal(2, c.GetProperty("ranks").GetInt32());
                Assert.Equal("inproc", c.GetProperty("comm").GetString());
            });
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void ACommunicatorThatCorruptsOneAllReduceElementFailsExactlyThoseCases()
    {
        const int corruptRank = 1;
        const long corruptIndex = 5;
        var options = new CollectiveConformanceOptions
        {
            Quick = true,
            // All-reduce (the corrupted collective) and all-gather (which must stay clean), to keep the test short.
            Filter = c => c.Collective is CollectiveKind.AllReduce || c.Id.StartsWith("allgather/f32/", StringComparison.Ordinal),
        };
        var results = RunInProcess(2, comm => new CorruptingCommunicator(comm, corruptRank, corruptIndex), options);

        var expectedFailed = CollectiveCatalogue.Cases(2, quick: true)
            .Where(c => c.Collective == CollectiveKind.AllReduce && c.Count > corruptIndex)
            .Select(c => c.Id)
            .ToList();
        Assert.NotEmpty(expectedFailed);
        Assert.Equal(expectedFailed, results.Where(r => !r.Passed).Select(r => r.Id).ToList());
        Assert.Contains(results, r => r.Collective == "allgather" && r.Passed);
        Assert.All(results.Where(r => !r.Passed), r =>
        {
            Assert.Equal(1, r.WrongCount);
            Assert.Equal(corruptRank, r.FirstWrongRank);
            Assert.Equal(corruptIndex, r.FirstWrongIndex);
            Assert.NotNull(r.Expected);
            Assert.NotNull(r.Actual);
            Assert.NotEqual(r.Expected, r.Actual);
            Assert.Null(r.Error);
        });
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    public void OtherRankCountsPassTheSmallCases(int ranks)
    {
        // Every collective, dtype and op at sizes up to the ragged one (the large case is covered at two ranks).
        var options = new CollectiveConformanceOptions { Quick = true, Filter = c => c.Count <= 1023 };
        var results = RunInProcess(ranks, comm => comm, options);
        Assert.NotEmpty(results);
        Assert.All(results, r => Assert.True(r.Passed, $"{r.Id} at {ranks} ranks: {r.WrongCount} wrong at {r.FirstWrongIndex} (expected {r.Expected}, got {r.Actual}) {r.Error}"));
    }

    [Fact]
    public void CatalogueCoversEverySizeClassWithUniqueIds()
    {
        var cases = CollectiveCatalogue.Cases(4, quick: false);
        Assert.Equal(cases.Count, cases.Select(c => c.Id).Distinct().Count());
        var allReduceSizes = cases.Where(c => c.Collective == CollectiveKind.AllReduce).Select(c => c.Count).Distinct().Order().ToList();
        Assert.Equal([0L, 1L, 149L, 1023L, 1L << 20], allReduceSizes);
        Assert.Contains(allReduceSizes, n => n % 4 != 0 && n > 1);
        // Block collectives keep their tensors at the large size: 4 blocks of 2^18.
        Assert.Contains(cases, c => c.Collective == CollectiveKind.AllToAll && c.Count == 1L << 18);
        // 6 dtypes (f32, f64, f16, bf16, i32, i64) × 4 ops × 5 sizes × 2 placements.
        Assert.Equal(240, cases.Count(c => c.Collective == CollectiveKind.AllReduce));
        Assert.Equal(240, cases.Count(c => c.Collective == CollectiveKind.ReduceScatter));
        Assert.Single(cases, c => c.Collective == CollectiveKind.Barrier);
    }

    [Theory]
    [InlineData(DType.F16, 11)]
    [InlineData(DType.BF16, 8)]
    [InlineData(DType.F32, 24)]
    [InlineData(DType.F64, 53)]
    [InlineData(DType.I32, 31)]
    public void InputsAreBoundedSoEverySumIsExact(DType dtype, int significandBits)
    {
        for (int ranks = 1; ranks <= 8; ranks++)
        {
            long max = CollectiveValues.MaxUnits(dtype, ranks);
            Assert.True(max >= 1, $"{dtype} at {ranks} ranks");
            // The largest partial sum must be an integer the dtype's significand holds exactly.
            Assert.True(max * ranks <= 1L << significandBits, $"{dtype} at {ranks} ranks: {max} × {ranks}");
        }
    }

    [Fact]
    public void IntegerMeanTruncatesTowardZero()
    {
        Assert.Equal(-1.0, CollectiveValues.Reduce([-3, 0], ReduceOp.Mean, DType.I32));
        Assert.Equal(1.0, CollectiveValues.Reduce([3, 0], ReduceOp.Mean, DType.I32));
        Assert.Equal(-3.0 / 32, CollectiveValues.Reduce([-3, 0], ReduceOp.Mean, DType.F32));
        Assert.Equal(3.0 / 16, CollectiveValues.Reduce([-3, 3], ReduceOp.Max, DType.F16));
    }

    [Fact]
    public void CollectiveFlagsWithoutCollectivesAreAUsageError()
    {
        // Without --collectives the command checks kernels, which take no rank count.
        var r = CliRunner.Run("conformance", "--ranks", "2");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("--collectives", r.Stderr);
    }

    [Theory]
    [InlineData("0")]
    [InlineData("9")]
    public void RankCountsOutsideOneToEightAreRejected(string ranks)
    {
        var r = CliRunner.Run("conformance", "--collectives", "--ranks", ranks, "--quick");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("--ranks", r.Stderr);
    }

    [Theory]
    [InlineData("0")]
    [InlineData("-1")]
    [InlineData("NaN")]
    public void NonPositiveTimeoutsAreRejected(string seconds)
    {
        var r = CliRunner.Run("conformance", "--collectives", "--ranks", "2", "--quick", "--timeout", seconds);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("--timeout", r.Stderr);
    }

    [Fact]
    public void ATimeoutIsAccepted()
    {
        var r = CliRunner.Run("conformance", "--collectives", "--ranks", "1", "--quick", "--timeout", "30");
        Assert.Equal(0, r.ExitCode);
        Assert.Contains(" passed, 0 failed", r.Stdout);
    }

    private static List<CollectiveCaseResult> RunInProcess(int ranks, Func<ICommunicator, ICommunicator> wrap, CollectiveConformanceOptions options)
    {
        var devices = Enumerable.Range(0, ranks).Select(_ => new CpuBackend().Open(0)).ToList();
        try
        {
            IReadOnlyList<CollectiveCaseResult>? results = null;
            InProcessWorld.Run(devices, comm =>
            {
                var mine = CollectiveConformance.Run(wrap(comm), options);
                if (comm.Rank == 0)
                {
                    results = mine;
                }
            }, TimeSpan.FromSeconds(60));
            return [.. results!];
        }
        finally
        {
            foreach (var d in devices)
            {
                d.Dispose();
            }
        }
    }
}
