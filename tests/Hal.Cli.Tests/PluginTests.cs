using System.Text.Json;
using Hal.Registration;
using Microsoft.Extensions.DependencyInjection;

namespace Hal.Cli.Tests;

public class PluginTests
{
    private const string TestVendorReason = "no TestVendor accelerator is attached to this machine";

    [Fact]
    public void LoaderCreatesTheRegistrationOfACompatiblePlugin()
    {
        var plugins = PluginLoader.Load(CliRunner.TestPluginPath);
        var plugin = Assert.Single(plugins);
        Assert.Equal("Hal.TestPlugin.Registration", plugin.GetType().FullName);

        var services = new ServiceCollection();
        plugin.Register(services.AddHal());
        using var provider = services.BuildServiceProvider();
        var runtime = provider.GetRequiredService<HalRuntime>();
        var probe = Assert.Single(runtime.ProbeAll());
        Assert.Equal("testvendor", probe.Backend);
        Assert.False(probe.Available);
        Assert.Equal(TestVendorReason, probe.Reason);
    }

    [Fact]
    public void DevicesJsonListsACompatiblePluginWithItsReason()
    {
        var r = CliRunner.Run("devices", "--json", "--plugin", CliRunner.TestPluginPath);
        Assert.Equal(0, r.ExitCode);
        using var doc = JsonDocument.Parse(r.Stdout);
        var backends = doc.RootElement.EnumerateArray().ToList();
        // Built-in backends come first (cpu, then the others in registration order), plugins after them.
        var names = backends.Select(b => b.GetProperty("backend").GetString() ?? "").ToArray();
        Assert.Equal("cpu", names[0]);
        Assert.Equal("testvendor", names[^1]);
        Assert.Single(names, "testvendor");
        Assert.Contains("opencl", names);
        Assert.Contains("npu", names);
        Assert.Contains("cuda", names);
        var vendor = backends[^1];
        Assert.False(vendor.GetProperty("available").GetBoolean());
        Assert.Equal(TestVendorReason, vendor.GetProperty("reason").GetString());
        Assert.Equal(0, vendor.GetProperty("devices").GetArrayLength());
    }

    [Fact]
    public void BenchOnAnUnavailablePluginBackendExitsTwoWithItsReason()
    {
        var r = CliRunner.Run("bench", "gemm", "--backend", "testvendor", "--sizes", "8", "--plugin", CliRunner.TestPluginPath);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains($"backend 'testvendor' is not available: {TestVendorReason}", r.Stderr);
    }

    [Fact]
    public void LoadingTheSamePluginTwiceIsADuplicateBackendName()
    {
        var r = CliRunner.Run("devices", "--plugin", CliRunner.TestPluginPath, "--plugin", CliRunner.TestPluginPath);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("two backends are registered under the name 'testvendor'", r.Stderr);
    }

    [Fact]
    public void LoaderRefusesANewerContractNamingBothVersions()
    {
        var e = Assert.Throws<PluginLoadException>(() => PluginLoader.Load(CliRunner.FuturePluginPath));
        Assert.Contains("2.0", e.Message);
        Assert.Contains(HalContract.Version, e.Message);
        Assert.Equal("1.0", HalContract.Version);
        Assert.Equal(CliRunner.FuturePluginPath, e.PluginPath);
    }

    [Fact]
    public void CommandRefusesANewerContractInOneLine()
    {
        var r = CliRunner.Run("devices", "--plugin", CliRunner.FuturePluginPath);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("contract 2.0", r.Stderr);
        Assert.Contains("contract 1.0", r.Stderr);
        Assert.Single(r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Equal("", r.Stdout);
    }

    [Fact]
    public void AnAssemblyThatIsNotAPluginDeclaresNoBackend()
    {
        string xunitPath = typeof(FactAttribute).Assembly.Location;
        var e = Assert.Throws<PluginLoadException>(() => PluginLoader.Load(xunitPath));
        Assert.Contains("declares no backend", e.Message);

        var r = CliRunner.Run("devices", "--plugin", xunitPath);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("declares no backend", r.Stderr);
    }

    [Fact]
    public void AMissingPathDoesNotExist()
    {
        string missing = Path.Combine(Path.GetTempPath(), "hal-no-such-plugin", "Vendor.dll");
        var e = Assert.Throws<PluginLoadException>(() => PluginLoader.Load(missing));
        Assert.Contains("does not exist", e.Message);

        var r = CliRunner.Run("devices", "--json", "--plugin", missing);
        Assert.Equal(2, r.ExitCode);
        Assert.Equal($"hal: cannot load backend plugin '{missing}': the file does not exist", r.Stderr.Trim());
        Assert.Equal("", r.Stdout);
    }

    [Fact]
    public void AFileThatIsNotAnAssemblyIsRefused()
    {
        string path = Path.Combine(Path.GetTempPath(), $"hal-not-an-assembly-{Environment.ProcessId}.dll");
        File.WriteAllText(path, "not a portable executable");
        try
        {
            var r = CliRunner.Run("devices", "--plugin", path);
            Assert.Equal(2, r.ExitCode);
            Assert.Contains("not a loadable .NET assembly", r.Stderr);
        }
        finally
        {
            File.Delete(path);
        }
    }
}
