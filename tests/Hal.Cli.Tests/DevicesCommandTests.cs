using System.Text.Json;

namespace Hal.Cli.Tests;

public class DevicesCommandTests
{
    [Fact]
    public void JsonIsTheDocumentedArrayWithAnAvailableCpu()
    {
        var r = CliRunner.Run("devices", "--json");
        Assert.Equal(0, r.ExitCode);
        Assert.Equal("", r.Stderr);
        using var doc = JsonDocument.Parse(r.Stdout);
        Assert.Equal(JsonValueKind.Array, doc.RootElement.ValueKind);
        var cpu = doc.RootElement.EnumerateArray().Single(b => b.GetProperty("backend").GetString() == "cpu");
        Assert.Equal(["backend", "available", "reason", "devices"], cpu.EnumerateObject().Select(p => p.Name).ToArray());
        Assert.True(cpu.GetProperty("available").GetBoolean());
        Assert.Equal(JsonValueKind.Null, cpu.GetProperty("reason").ValueKind);
        var device = Assert.Single(cpu.GetProperty("devices").EnumerateArray());
        Assert.Equal(["id", "name", "memoryBytes", "dtypes"], device.EnumerateObject().Select(p => p.Name).ToArray());
        Assert.Equal("cpu:0", device.GetProperty("id").GetString());
        Assert.False(string.IsNullOrWhiteSpace(device.GetProperty("name").GetString()));
        Assert.True(device.GetProperty("memoryBytes").GetInt64() > 0);
        var dtypes = device.GetProperty("dtypes").EnumerateArray().Select(d => d.GetString()).ToList();
        Assert.Contains("f32", dtypes);
        Assert.Contains("bf16", dtypes);
    }

    [Fact]
    public void TableNamesTheCpuDevice()
    {
        var r = CliRunner.Run("devices");
        Assert.Equal(0, r.ExitCode);
        Assert.Contains("cpu:0", r.Stdout);
        Assert.Contains("available", r.Stdout);
    }

    [Theory]
    [InlineData(0L, "0 B")]
    [InlineData(1023L, "1023 B")]
    [InlineData(1024L, "1.0 KiB")]
    [InlineData(1536L, "1.5 KiB")]
    [InlineData(512L * 1024 * 1024, "512.0 MiB")]
    [InlineData(3L << 30, "3.0 GiB")]
    public void FormatsBytesForPeople(long bytes, string expected)
    {
        Assert.Equal(expected, Commands.DevicesCommand.FormatBytes(bytes));
    }
}
