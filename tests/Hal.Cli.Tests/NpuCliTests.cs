using System.Text.Json;

namespace Hal.Cli.Tests;

/// <summary>The npu backend on the command line: <c>--ep</c>, <c>hal devices</c>, and backends as <c>bench gemm</c> peers.</summary>
public class NpuCliTests
{
    // Small sizes: these tests check fields and exit codes, not speed.
    private const string Size = "32";

    private static JsonElement SingleRow(CliRunner.Result r)
    {
        Assert.True(r.ExitCode == 0, $"exit {r.ExitCode}: {r.Stderr}");
        using var doc = JsonDocument.Parse(r.Stdout);
        Assert.Equal(1, doc.RootElement.GetArrayLength());
        return doc.RootElement[0].Clone();
    }

    private static JsonElement NpuEntry(CliRunner.Result r)
    {
        Assert.True(r.ExitCode == 0, $"exit {r.ExitCode}: {r.Stderr}");
        using var doc = JsonDocument.Parse(r.Stdout);
        return doc.RootElement.EnumerateArray().Single(b => b.GetProperty("backend").GetString() == "npu").Clone();
    }

    [Fact]
    public void DevicesListsTheCpuProviderAsNpuZeroAndTheProvidersStatus()
    {
        var npu = NpuEntry(CliRunner.Run("devices", "--json"));
        Assert.True(npu.GetProperty("available").GetBoolean());
        Assert.Contains("cpu usable", npu.GetProperty("reason").GetString(), StringComparison.Ordinal);
        var device = npu.GetProperty("devices")[0];
        Assert.Equal("npu:0", device.GetProperty("id").GetString());
        Assert.StartsWith("(cpu)", device.GetProperty("name").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public void AnUnknownEpMakesTheNpuBackendUnavailableAndBenchExitsTwo()
    {
        var npu = NpuEntry(CliRunner.Run("devices", "--json", "--ep", "nosuch"));
        Assert.False(npu.GetProperty("available").GetBoolean());
        Assert.Contains("--ep nosuch", npu.GetProperty("reason").GetString(), StringComparison.Ordinal);
        var r = CliRunner.Run("bench", "gemm", "--backend", "npu", "--ep", "nosuch", "--sizes", Size);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("--ep nosuch", r.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void BenchGemmOnNpuDefaultsToTheCpuPeerAndReportsTheSessionCache()
    {
        var row = SingleRow(CliRunner.Run("bench", "gemm", "--backend", "npu", "--sizes", Size, "--json"));
        Assert.Equal("npu", row.GetProperty("backend").GetString());
        Assert.Equal("cpu", row.GetProperty("peer").GetString());
        double peer = row.GetProperty("peerGflops").GetDouble();
        Assert.True(peer > 0, $"peerGflops {peer}");
        Assert.Equal(row.GetProperty("gflops").GetDouble() / peer, row.GetProperty("ratioToPeer").GetDouble(), 12);
        // One GEMM graph serves every run: one session, and every call after the first hits the cache.
        Assert.Equal(1, row.GetProperty("kernelSessions").GetInt32());
        Assert.InRange(row.GetProperty("kernelCacheHitRate").GetDouble(), 0.5, 1.0);
        Assert.True(row.GetProperty("kernelCompileMs").GetDouble() > 0);
    }

    [Fact]
    public void BenchGemmOnCpuTakesNpuAsPeerAndRejectsAnUnregisteredName()
    {
        var row = SingleRow(CliRunner.Run("bench", "gemm", "--sizes", Size, "--peer", "npu", "--json"));
        Assert.Equal("cpu", row.GetProperty("backend").GetString());
        Assert.Equal("npu", row.GetProperty("peer").GetString());
        Assert.True(row.GetProperty("peerGflops").GetDouble() > 0);
        Assert.Equal(JsonValueKind.Null, row.GetProperty("kernelSessions").ValueKind);
        var r = CliRunner.Run("bench", "gemm", "--sizes", Size, "--peer", "nosuch");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("registered backend", r.Stderr, StringComparison.Ordinal);
    }
}
