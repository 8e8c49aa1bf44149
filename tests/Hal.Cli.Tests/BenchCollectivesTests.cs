using System.Text.Json;
using Hal.Cli.Commands;

namespace Hal.Cli.Tests;

public class BenchCollectivesTests
{
    private static readonly string[] JsonFields = ["op", "comm", "ranks", "bytes", "timeUs", "algbwGBps", "busbwGBps", "wrong", "peerBusbwGBps"];

    [Theory]
    [InlineData("allreduce", 2, "8:1K", 8, 2.0 * 1 / 2)]
    [InlineData("allreduce", 3, "64,4K", 2, 2.0 * 2 / 3)]
    [InlineData("allgather", 3, "96:384", 3, 2.0 / 3)]
    [InlineData("reducescatter", 4, "1K", 1, 3.0 / 4)]
    public void JsonRowsHaveTheDocumentedFieldsAndTheBusFactor(string op, int ranks, string sizes, int rowCount, double busFactor)
    {
        var r = CliRunner.Run("bench", op, "--ranks", ranks.ToString(System.Globalization.CultureInfo.InvariantCulture), "--sizes", sizes, "--iters", "3", "--json");
        Assert.True(r.ExitCode == 0, $"exit {r.ExitCode}\n{r.Stdout}\n{r.Stderr}");
        using var doc = JsonDocument.Parse(r.Stdout);
        var rows = doc.RootElement.EnumerateArray().ToList();
        Assert.Equal(rowCount, rows.Count);
        foreach (var row in rows)
        {
            Assert.Equal(JsonFields, row.EnumerateObject().Select(p => p.Name).ToArray());
            Assert.Equal(op, row.GetProperty("op").GetString());
            Assert.Equal("inproc", row.GetProperty("comm").GetString());
            Assert.Equal(ranks, row.GetProperty("ranks").GetInt32());
            Assert.Equal(0, row.GetProperty("wrong").GetInt64());
            Assert.Equal(JsonValueKind.Null, row.GetProperty("peerBusbwGBps").ValueKind);
            long bytes = row.GetProperty("bytes").GetInt64();
            double timeUs = row.GetProperty("timeUs").GetDouble();
            double algbw = row.GetProperty("algbwGBps").GetDouble();
            double busbw = row.GetProperty("busbwGBps").GetDouble();
            Assert.True(bytes > 0 && timeUs > 0, $"bytes {bytes}, time {timeUs} µs");
            // GB/s = bytes / µs / 1000; the JSON round-trips doubles, so only the last bit may differ.
            Assert.Equal(bytes / timeUs / 1e3, algbw, 1e-9 * algbw);
            Assert.Equal(algbw * busFactor, busbw, 1e-9 * busbw);
        }
        // f32 elements; all-gather and reduce-scatter round the count down to a multiple of the ranks.
        long first = rows[0].GetProperty("bytes").GetInt64();
        Assert.Equal(0, first % (4 * (op == "allreduce" ? 1 : ranks)));
    }

    [Fact]
    public void TableHasTheNcclTestsColumns()
    {
        var r = CliRunner.Run("bench", "allreduce", "--ranks", "2", "--sizes", "1K", "--iters", "2", "--dtype", "bf16");
        Assert.True(r.ExitCode == 0, $"exit {r.ExitCode}\n{r.Stderr}");
        foreach (string column in new[] { "size (B)", "count (elements)", "type", "redop", "time (µs)", "algbw (GB/s)", "busbw (GB/s)", "#wrong" })
        {
            Assert.Contains(column, r.Stdout);
        }
        Assert.Contains("bf16", r.Stdout);
        Assert.Contains("1024", r.Stdout);
        Assert.Contains("512", r.Stdout);
    }

    [Theory]
    [InlineData("8:1K", new long[] { 8, 16, 32, 64, 128, 256, 512, 1024 })]
    [InlineData("1M,64M", new long[] { 1L << 20, 64L << 20 })]
    [InlineData("64K", new long[] { 65536 })]
    [InlineData("1G", new long[] { 1L << 30 })]
    [InlineData("8:20", new long[] { 8, 16 })]
    [InlineData("7:7", new long[] { 7 })]
    [InlineData("4kb, 2:4", new long[] { 4096, 2, 4 })]
    public void SizeListsParse(string text, long[] expected)
    {
        Assert.True(BenchCollectivesCommand.TryParseSizes(text, out long[] sizes, out string error), error);
        Assert.Equal(expected, sizes);
    }

    [Fact]
    public void TheDefaultSweepIsEightBytesTo128MiB()
    {
        Assert.True(BenchCollectivesCommand.TryParseSizes(BenchCollectivesCommand.DefaultSizes, out long[] sizes, out _));
        Assert.Equal(25, sizes.Length);
        Assert.Equal(8, sizes[0]);
        Assert.Equal(128L << 20, sizes[^1]);
    }

    [Theory]
    [InlineData("", "empty")]
    [InlineData("abc", "'abc'")]
    [InlineData("0", "'0'")]
    [InlineData("-8", "'-8'")]
    [InlineData("12X", "'12X'")]
    [InlineData("1K:8", "starts above its end")]
    [InlineData("8:1K:2", "more than one ':'")]
    [InlineData("8:", "''")]
    [InlineData("1,,2", "''")]
    [InlineData("32G", "16G")]
    public void BadSizeListsSayWhy(string text, string reason)
    {
        Assert.False(BenchCollectivesCommand.TryParseSizes(text, out _, out string error));
        Assert.Contains(reason, error);
    }

    [Fact]
    public void ABadSizeListExitsTwoWithTheReason()
    {
        var r = CliRunner.Run("bench", "allgather", "--sizes", "1K:8");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("--sizes", r.Stderr);
        Assert.Contains("starts above its end", r.Stderr);
    }

    [Fact]
    public void MpiOutsideMpirunExitsTwoWithTheReason()
    {
        Assert.Null(Environment.GetEnvironmentVariable("OMPI_COMM_WORLD_SIZE"));
        var r = CliRunner.Run("bench", "allreduce", "--comm", "mpi", "--sizes", "1K");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("mpirun", r.Stderr);
        Assert.Contains("OMPI_COMM_WORLD_SIZE", r.Stderr);
        Assert.Equal("", r.Stdout);
    }

    [Theory]
    [InlineData("--comm", "tcp")]
    [InlineData("--ranks", "9")]
    [InlineData("--dtype", "u8")]
    [InlineData("--iters", "0")]
    public void BadOptionsExitTwo(string option, string value)
    {
        var r = CliRunner.Run("bench", "reducescatter", option, value, "--sizes", "1K");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains(option.TrimStart('-'), r.Stderr);
    }
}
