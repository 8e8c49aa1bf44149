using System.Runtime.InteropServices;
using System.Text.Json;

namespace Hal.Cli.Tests;

/// <summary>The OpenBLAS peer of <c>hal bench gemm</c>: its JSON fields, <c>--peer</c> and its absence.</summary>
public class BenchGemmPeerTests
{
    // Small sizes: these tests check fields and exit codes, not speed.
    private const string Size = "32";

    private static readonly string[] ContractFields = ["backend", "m", "n", "k", "dtype", "gflops", "peakGflops", "ratioToPeak", "peakVectorBits"];

    /// <summary>Whether the system has an OpenBLAS with cblas_sgemm, checked here without the code under test.</summary>
    private static bool OpenBlasLoads()
    {
        foreach (string name in new[] { "libopenblas.so.0", "libopenblas.so", "libcblas.so.3" })
        {
            if (NativeLibrary.TryLoad(name, out IntPtr handle) && NativeLibrary.TryGetExport(handle, "cblas_sgemm", out _))
            {
                return true;
            }
        }
        return false;
    }

    private static JsonElement SingleRow(CliRunner.Result r)
    {
        Assert.True(r.ExitCode == 0, $"exit {r.ExitCode}: {r.Stderr}");
        using var doc = JsonDocument.Parse(r.Stdout);
        Assert.Equal(1, doc.RootElement.GetArrayLength());
        return doc.RootElement[0].Clone();
    }

    [Fact]
    public void DefaultPeerIsOpenBlasExactlyWhenTheLibraryLoads()
    {
        var row = SingleRow(CliRunner.Run("bench", "gemm", "--sizes", Size, "--json"));
        foreach (string field in ContractFields)
        {
            Assert.True(row.TryGetProperty(field, out _), $"missing contract field {field}");
        }
        Assert.Equal(32, row.GetProperty("m").GetInt32());
        if (OpenBlasLoads())
        {
            Assert.Equal("openblas", row.GetProperty("peer").GetString());
            double peer = row.GetProperty("peerGflops").GetDouble();
            Assert.True(peer > 0, $"peerGflops {peer}");
            // The ratio is computed from the same two doubles; only the JSON round trip (exact for doubles) is between.
            Assert.Equal(row.GetProperty("gflops").GetDouble() / peer, row.GetProperty("ratioToPeer").GetDouble(), 12);
        }
        else
        {
            Assert.Equal(JsonValueKind.Null, row.GetProperty("peer").ValueKind);
            Assert.Equal(JsonValueKind.Null, row.GetProperty("peerGflops").ValueKind);
            Assert.Equal(JsonValueKind.Null, row.GetProperty("ratioToPeer").ValueKind);
        }
    }

    [Fact]
    public void PeerNoneGivesNullPeerFields()
    {
        var row = SingleRow(CliRunner.Run("bench", "gemm", "--sizes", Size, "--peer", "none", "--json"));
        Assert.Equal(JsonValueKind.Null, row.GetProperty("peer").ValueKind);
        Assert.Equal(JsonValueKind.Null, row.GetProperty("peerGflops").ValueKind);
        Assert.Equal(JsonValueKind.Null, row.GetProperty("ratioToPeer").ValueKind);
        Assert.True(row.GetProperty("gflops").GetDouble() > 0);
    }

    [Fact]
    public void PeerOpenBlasRunsWhenFoundElseExitsTwoWithTheInstallHint()
    {
        var r = CliRunner.Run("bench", "gemm", "--sizes", Size, "--peer", "openblas", "--json");
        if (OpenBlasLoads())
        {
            Assert.Equal("openblas", SingleRow(r).GetProperty("peer").GetString());
        }
        else
        {
            Assert.Equal(2, r.ExitCode);
            Assert.Contains("libopenblas.so.0 not found; apt-get install libopenblas0-pthread", r.Stderr);
            Assert.Equal("", r.Stdout);
        }
    }

    [Fact]
    public void NonF32DTypeHasNoPeer()
    {
        var row = SingleRow(CliRunner.Run("bench", "gemm", "--sizes", Size, "--dtype", "f64", "--json"));
        Assert.Equal(JsonValueKind.Null, row.GetProperty("peer").ValueKind);
        Assert.Equal(JsonValueKind.Null, row.GetProperty("peerGflops").ValueKind);
    }

    [Theory]
    [InlineData("blis")]
    [InlineData("")]
    [InlineData("OpenBLAS")]
    public void BadPeerValueExitsTwo(string value)
    {
        var r = CliRunner.Run("bench", "gemm", "--sizes", Size, "--peer", value);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("--peer", r.Stderr);
    }
}
