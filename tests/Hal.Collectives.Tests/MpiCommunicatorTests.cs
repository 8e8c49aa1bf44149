using System.Text.RegularExpressions;
using Hal.Collectives.Mpi;

namespace Hal.Collectives.Tests;

/// <summary>
/// The MPI communicator in real processes under mpirun (no mocks). Each test runs one worker scenario and asserts on
/// mpirun's exit code and the lines the ranks printed. Without Open MPI these tests fail and say to run ./hal.
/// </summary>
public sealed class MpiCommunicatorTests
{
    // Generous: the 4-rank case sweep runs oversubscribed on 2 cores; the process tree is killed past it.
    private static readonly TimeSpan CollectivesLimit = TimeSpan.FromSeconds(240);
    private static readonly TimeSpan ScenarioLimit = TimeSpan.FromSeconds(120);

    [Fact]
    public void Probe_outside_mpirun_says_the_process_was_not_started_by_mpirun()
    {
        MpiRun.RequireMpirun();
        Assert.False(MpiCommunicator.IsUnderMpirun, "this test must run outside mpirun (OMPI_COMM_WORLD_SIZE is set)");

        var availability = MpiCommunicator.Probe();

        Assert.False(availability.Available);
        Assert.NotNull(availability.Reason);
        Assert.Contains("not started by mpirun", availability.Reason);
    }

    [Theory]
    [InlineData(2)]
    [InlineData(4)]
    public void Collectives_match_the_double_reference_bit_for_bit(int ranks)
    {
        var result = MpiRun.Run(ranks, "collectives", CollectivesLimit);

        AssertEveryCasePassed(result, ranks);
    }

    [Theory]
    [InlineData(2)]
    [InlineData(4)]
    public void Hal_conformance_collectives_passes_under_mpirun(int ranks)
    {
        // The user-facing command, one rank per process: only rank 0 prints the summary line.
        var result = MpiRun.RunCli(ranks, ["conformance", "--collectives", "--quick"], CollectivesLimit);

        Assert.True(result.ExitCode == 0, $"mpirun -np {ranks} hal conformance exit code {result.ExitCode}:\n{Tail(result.Output)}");
        int expected = Hal.Conformance.Collectives.CollectiveCatalogue.Cases(ranks, quick: true).Count;
        Assert.Single(result.LinesContaining($"{expected} cases, {expected} passed, 0 failed"));
        Assert.Contains(result.Lines, l => l.Contains("│ mpi ", StringComparison.Ordinal));
    }

    [Fact]
    public void Hal_json_output_under_mpirun_is_plain_json()
    {
        // mpirun gives each rank a pseudo-terminal; nothing but the JSON may reach stdout (no terminal escape codes).
        var result = MpiRun.RunCli(2, ["bench", "allreduce", "--comm", "mpi", "--sizes", "1K", "--iters", "3", "--json"], ScenarioLimit);

        Assert.True(result.ExitCode == 0, $"exit code {result.ExitCode}:\n{Tail(result.Output)}");
        string json = result.Output[..(result.Output.LastIndexOf(']') + 1)];
        using var doc = System.Text.Json.JsonDocument.Parse(json);
        var row = Assert.Single(doc.RootElement.EnumerateArray());
        Assert.Equal("mpi", row.GetProperty("comm").GetString());
        Assert.Equal(0, row.GetProperty("wrong").GetInt64());
    }

    [Theory]
    [InlineData("0", "none")]
    [InlineData("1", "none")]
    [InlineData("2", "none")]
    [InlineData("3", "none")]
    [InlineData("3", "static:0.5,0.5")]
    public void Hal_train_with_one_rank_per_process_matches_in_process_data_parallel(string zeroStage, string offload)
    {
        // The same data-parallel job two ways: two MPI processes, and two threads in one process (in-process ranks).
        string dir = Path.Combine(Path.GetTempPath(), "hal-mpi-train-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            string mpiLog = Path.Combine(dir, "mpi.jsonl");
            // ZeRO shards the optimizer states (2: and gradients, 3: and parameters) over the MPI processes, with or
            // without offloading; the in-process reference runs without either.
            string[] job = ["train", "--steps", "4", "--batch", "8", "--seq", "16", "--warmup", "2"];
            var result = MpiRun.RunCli(2, [.. job, "--zero", zeroStage, "--offload", offload, "--json-log", mpiLog], ScenarioLimit);
            Assert.True(result.ExitCode == 0, $"mpirun -np 2 hal train exit code {result.ExitCode}:\n{Tail(result.Output)}");

            string inProcessLog = Path.Combine(dir, "inproc.jsonl");
            var local = MpiRun.RunLocalCli([.. job, "--dp", "2", "--json-log", inProcessLog], ScenarioLimit);
            Assert.True(local.ExitCode == 0, $"hal train --dp 2 exit code {local.ExitCode}:\n{Tail(local.Output)}");

            double[] mpi = StepLosses(mpiLog);
            double[] inProcess = StepLosses(inProcessLog);
            Assert.Equal(4, mpi.Length);
            Assert.Equal(inProcess.Length, mpi.Length);
            for (int i = 0; i < mpi.Length; i++)
            {
                // MPI's reduction order differs from the in-process ring: fp32 sums agree to a few ulps (measured ~1e-8
                // relative); 1e-5 is the bound the parallel-layout tests use.
                Assert.True(Math.Abs(mpi[i] - inProcess[i]) <= 1e-5 * Math.Abs(inProcess[i]), $"step {i + 1}: mpi {mpi[i]:R} vs in-process {inProcess[i]:R}");
            }
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Theory]
    [InlineData(2, "--tp 2")]
    [InlineData(2, "--sp 2")]
    [InlineData(2, "--tp 2 --sp-mode split-gather")]
    [InlineData(2, "--pp 2")]
    [InlineData(4, "--tp 4 --tp-mode 2d")]
    [InlineData(4, "--tp 2 --sp 2")]
    public void Hal_train_with_tensor_or_sequence_parallel_processes_matches_in_process_ranks(int processes, string layout)
    {
        // Two MPI processes split one replica by tensor (--tp 2), by sequence (--sp 2, ring), both inside the tp group
        // (Megatron split-gather) or into pipeline stages (--pp 2, 1f1b: activations and gradients sent point to
        // point), and four processes as a 2×2 grid or tp 2 × sp 2 ring; the reference runs the same layout on as many
        // in-process ranks.
        string dir = Path.Combine(Path.GetTempPath(), "hal-mpi-layout-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            string[] job = ["train", .. layout.Split(' '), "--steps", "3", "--batch", "4", "--seq", "16", "--warmup", "2"];
            string mpiLog = Path.Combine(dir, "mpi.jsonl");
            var result = MpiRun.RunCli(processes, [.. job, "--json-log", mpiLog], ScenarioLimit);
            Assert.True(result.ExitCode == 0, $"mpirun -np {processes} hal train {layout} exit code {result.ExitCode}:\n{Tail(result.Output)}");
            string inProcessLog = Path.Combine(dir, "inproc.jsonl");
            var local = MpiRun.RunLocalCli([.. job, "--json-log", inProcessLog], ScenarioLimit);
            Assert.True(local.ExitCode == 0, $"hal train {layout} exit code {local.ExitCode}:\n{Tail(local.Output)}");
            double[] mpi = StepLosses(mpiLog);
            double[] inProcess = StepLosses(inProcessLog);
            Assert.Equal(3, mpi.Length);
            Assert.Equal(inProcess.Length, mpi.Length);
            for (int i = 0; i < mpi.Length; i++)
            {
                // MPI's reduction order differs from the in-process one: 1e-5 as the data-parallel test above.
                Assert.True(Math.Abs(mpi[i] - inProcess[i]) <= 1e-5 * Math.Abs(inProcess[i]), $"{layout} step {i + 1}: mpi {mpi[i]:R} vs in-process {inProcess[i]:R}");
            }
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static double[] StepLosses(string jsonLines) =>
        [.. File.ReadAllLines(jsonLines)
            .Select(l => System.Text.Json.JsonDocument.Parse(l).RootElement)
            .Where(e => e.GetProperty("event").GetString() == "step")
            .Select(e => e.GetProperty("loss").GetDouble())];

    [Fact]
    public void Collectives_staged_through_host_buffers_match_the_double_reference()
    {
        var result = MpiRun.Run(2, "collectives-staged", CollectivesLimit);

        AssertEveryCasePassed(result, 2);
    }

    [Fact]
    public void A_rank_that_sleeps_past_the_timeout_makes_the_others_raise_a_timeout()
    {
        var result = MpiRun.Run(2, "timeout", ScenarioLimit);

        Assert.True(result.ExitCode == 0, $"mpirun exit code {result.ExitCode}:\n{result.Output}");
        string caught = Assert.Single(result.LinesContaining("rank 0 caught CollectiveTimeoutException"));
        Assert.Contains("rank=0 timeout=500 ms", caught);
        Assert.Contains("waiting for the other ranks of MPI_COMM_WORLD (n=2)", caught);
        Assert.Single(result.LinesContaining("rank 0 refused after timeout"));
        Assert.Single(result.LinesContaining("rank 1 slept 1500 ms"));
    }

    [Fact]
    public void Different_arguments_on_different_ranks_raise_a_mismatch_on_every_rank()
    {
        var result = MpiRun.Run(2, "mismatch", ScenarioLimit);

        Assert.True(result.ExitCode == 0, $"mpirun exit code {result.ExitCode}:\n{result.Output}");
        for (int rank = 0; rank < 2; rank++)
        {
            Assert.Contains("element count ranges from 4 to 5", Assert.Single(result.LinesContaining($"rank {rank} count: caught CollectiveMismatchException")));
            Assert.Contains("dtype differs (f32 vs f64)", Assert.Single(result.LinesContaining($"rank {rank} dtype: caught CollectiveMismatchException")));
            Assert.Contains("collective differs (all-reduce on some ranks, broadcast on others)", Assert.Single(result.LinesContaining($"rank {rank} collective: caught CollectiveMismatchException")));
            // 1 + 2: the communicator still reduces correctly after the mismatches.
            Assert.Single(result.LinesContaining($"rank {rank} all-reduce after mismatches = 3 (expected 3)"));
        }
        Assert.Single(result.LinesContaining("rank 1 recv shorter than send: caught CollectiveMismatchException"));
        Assert.Single(result.LinesContaining("rank 1 recv longer than send: caught CollectiveMismatchException"));
        Assert.Empty(result.LinesContaining("FAIL"));
    }

    [Fact]
    public void Split_by_parity_reduces_within_each_group()
    {
        var result = MpiRun.Run(4, "split", ScenarioLimit);

        Assert.True(result.ExitCode == 0, $"mpirun exit code {result.ExitCode}:\n{result.Output}");
        // Parity groups {0, 2} and {1, 3}: sums of ranks 2 and 4.
        Assert.Single(result.LinesContaining("rank 0 parity 0: group rank 0/2, sum of ranks 2 (expected 2)"));
        Assert.Single(result.LinesContaining("rank 2 parity 0: group rank 1/2, sum of ranks 2 (expected 2)"));
        Assert.Single(result.LinesContaining("rank 1 parity 1: group rank 0/2, sum of ranks 4 (expected 4)"));
        Assert.Single(result.LinesContaining("rank 3 parity 1: group rank 1/2, sum of ranks 4 (expected 4)"));
        Assert.Single(result.LinesContaining("rank 0 negative color: no group"));
        // Key −rank orders the remaining group 3, 2, 1.
        Assert.Single(result.LinesContaining("rank 3 rest group rank 0/3"));
        Assert.Single(result.LinesContaining("rank 1 rest group rank 2/3"));
        Assert.Empty(result.LinesContaining("FAIL"));
    }

    [Fact]
    public void Using_a_disposed_communicator_raises_on_the_world_and_its_groups()
    {
        var result = MpiRun.Run(2, "dispose", ScenarioLimit);

        Assert.True(result.ExitCode == 0, $"mpirun exit code {result.ExitCode}:\n{result.Output}");
        // 2 ranks × 4 calls (world all-reduce, barrier, raw all-reduce, sub-group all-reduce).
        Assert.Equal(8, result.LinesContaining("caught ObjectDisposedException").Length);
        Assert.Empty(result.LinesContaining("FAIL"));
    }

    private static void AssertEveryCasePassed(MpiRun.Result result, int ranks)
    {
        Assert.True(result.ExitCode == 0, $"mpirun -np {ranks} exit code {result.ExitCode}:\n{string.Join('\n', result.LinesContaining("FAIL").Take(20))}\n{Tail(result.Output)}");
        Assert.Empty(result.LinesContaining("FAIL"));
        var final = Regex.Match(result.Output, @"^OK (\d+)$", RegexOptions.Multiline);
        Assert.True(final.Success, $"no final OK line:\n{Tail(result.Output)}");
        int cases = int.Parse(final.Groups[1].Value);
        // Rank 0 prints one "ok" line per case.
        Assert.Equal(cases, result.Lines.Count(l => l.StartsWith("ok ", StringComparison.Ordinal)));
        // Every collective × dtype × reduction of the shared catalogue ran (exact ids: "n=1" must not match "n=1023").
        var lines = result.Lines.ToHashSet();
        foreach (string dtype in (string[])["f32", "f64", "f16", "bf16", "i32", "i64"])
        {
            foreach (string op in (string[])["sum", "mean", "max", "min"])
            {
                Assert.Contains($"ok allreduce/{dtype}/{op}/n=1023/outofplace", lines);
                Assert.Contains($"ok allreduce/{dtype}/{op}/n=1/inplace", lines);
                Assert.Contains($"ok reducescatter/{dtype}/{op}/n={(37 * ranks) + 1}/outofplace", lines);
            }
            Assert.Contains($"ok allreduce/{dtype}/sum/n=0/inplace", lines);
            Assert.Contains($"ok broadcast/{dtype}/root={ranks - 1}/n=1/inplace", lines);
            Assert.Contains($"ok allgather/{dtype}/n=1023/inplace", lines);
            Assert.Contains($"ok alltoall/{dtype}/n=1023/outofplace", lines);
            Assert.Contains($"ok sendrecv/{dtype}/n=1023/outofplace", lines);
        }
        Assert.Contains("ok barrier", lines);
    }

    private static string Tail(string output) => output.Length <= 4000 ? output : output[^4000..];
}
