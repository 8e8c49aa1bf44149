namespace Hal.Cli.Tests;

public class ByteSizeTests
{
    [Theory]
    [InlineData("1000000", 1_000_000L)]
    [InlineData("1", 1L)]
    [InlineData("512MiB", 512L * 1024 * 1024)]
    [InlineData("2GiB", 2L * 1024 * 1024 * 1024)]
    [InlineData("1.5GB", 1_500_000_000L)]
    [InlineData("1.5KiB", 1536L)]
    [InlineData("64KB", 64_000L)]
    [InlineData("3MB", 3_000_000L)]
    [InlineData("100B", 100L)]
    [InlineData("512 MiB", 512L * 1024 * 1024)]
    [InlineData("512mib", 512L * 1024 * 1024)]
    [InlineData(" 2GiB ", 2L * 1024 * 1024 * 1024)]
    [InlineData("1TiB", 1L << 40)]
    public void ParsesSizes(string text, long expectedBytes)
    {
        Assert.True(ByteSize.TryParse(text, out long bytes, out string error), error);
        Assert.Equal(expectedBytes, bytes);
    }

    [Theory]
    [InlineData("", "empty")]
    [InlineData("abc", "is not a size")]
    [InlineData("12XB", "is not a size")]
    [InlineData("MiB", "is not a size")]
    [InlineData("-5MiB", "is not a size")]
    [InlineData("1,5GB", "is not a size")]
    [InlineData("0", "not a positive size")]
    [InlineData("0.5B", "not a whole number of bytes")]
    [InlineData("99999999999TiB", "too large")]
    public void RejectsBadSizes(string text, string expectedFragment)
    {
        Assert.False(ByteSize.TryParse(text, out long bytes, out string error));
        Assert.Equal(0L, bytes);
        Assert.Contains(expectedFragment, error);
    }

    [Theory]
    [InlineData("12XB")]
    [InlineData("lots")]
    [InlineData("0")]
    public void BadDeviceMemoryOptionExitsTwoWithTheReason(string text)
    {
        var r = CliRunner.Run("devices", "--device-memory", text);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("--device-memory", r.Stderr);
        Assert.Contains($"'{text}'", r.Stderr);
        Assert.Equal("", r.Stdout);
    }

    [Fact]
    public void DeviceMemoryOptionReachesTheCpuBackendAndItsAllocator()
    {
        var globals = new GlobalOptions();
        var parse = HalApp.CreateRootCommand(globals).Parse(["devices", "--device-memory", "512MiB"]);
        Assert.Empty(parse.Errors);
        using var session = globals.OpenSession(parse);
        var cpu = Assert.IsType<Hal.Backends.Cpu.CpuBackend>(session.Runtime.GetBackend("cpu"));
        Assert.Equal(512L * 1024 * 1024, cpu.Options.DeviceMemoryBytes);
        using var device = cpu.Open(0);
        Assert.Equal(512L * 1024 * 1024, device.Allocator.LimitBytes);
    }
}
