namespace Hal.Cli.Tests;

public class CommandLineTests
{
    [Theory]
    [InlineData("--help")]
    [InlineData("devices", "--help")]
    [InlineData("bench", "--help")]
    [InlineData("bench", "gemm", "--help")]
    [InlineData("train", "--help")]
    [InlineData("test", "--help")]
    [InlineData("devices", "-h")]
    public void HelpExitsZeroAndShowsUsage(params string[] args)
    {
        var r = CliRunner.Run(args);
        Assert.Equal(0, r.ExitCode);
        Assert.Contains("Usage:", r.Stdout);
        Assert.Contains("hal", r.Stdout);
    }

    [Fact]
    public void NoCommandIsAUsageError()
    {
        var r = CliRunner.Run();
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("hal --help", r.Stderr);
    }

    [Fact]
    public void UnknownCommandIsAUsageError()
    {
        var r = CliRunner.Run("frobnicate");
        Assert.Equal(2, r.ExitCode);
        Assert.StartsWith("hal: ", r.Stderr);
    }

    [Fact]
    public void UnknownBackendExitsTwoWithTheUnavailableMessage()
    {
        var r = CliRunner.Run("bench", "gemm", "--backend", "nosuch", "--sizes", "8");
        Assert.Equal(2, r.ExitCode);
        string expected = new BackendUnavailableException("nosuch", "x").Message[..^1];
        Assert.StartsWith("hal: " + expected, r.Stderr);
        Assert.Contains("registered: cpu", r.Stderr);
        Assert.DoesNotContain("   at ", r.Stderr);
        Assert.Equal("", r.Stdout);
    }

    [Theory]
    [InlineData("--sizes", "256,x")]
    [InlineData("--sizes", "0")]
    [InlineData("--sizes", "-8")]
    [InlineData("--sizes", "")]
    [InlineData("--dtype", "f33")]
    public void BadBenchOptionsExitTwo(string option, string value)
    {
        var r = CliRunner.Run("bench", "gemm", option, value);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains(option, r.Stderr);
    }

    [Theory]
    [InlineData("256,1024,2048", new[] { 256, 1024, 2048 })]
    [InlineData("8", new[] { 8 })]
    [InlineData(" 7 , 65 ", new[] { 7, 65 })]
    public void ParsesBenchSizes(string text, int[] expected)
    {
        Assert.True(Commands.BenchCommand.TryParseSizes(text, out int[] sizes, out string error), error);
        Assert.Equal(expected, sizes);
    }

    [Fact]
    public void TrainRejectsNonPositiveSteps()
    {
        var r = CliRunner.Run("train", "--steps", "0");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("--steps", r.Stderr);
    }

    [Fact]
    public void TestCommandFindsTheRepositoryThisBuildCameFrom()
    {
        string? root = Commands.TestCommand.FindRepositoryRoot(AppContext.BaseDirectory);
        Assert.NotNull(root);
        Assert.True(File.Exists(Path.Combine(root, "hal")));
        Assert.Equal(Path.GetFullPath(CliRunner.RepositoryRoot).TrimEnd('/'), root.TrimEnd('/'));
    }
}
