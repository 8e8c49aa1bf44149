using System.Reflection;
using Hal.Registration;
using Microsoft.Extensions.DependencyInjection;

namespace Hal.Conformance.Tests;

/// <summary>
/// The sample vendor backend (samples/VendorBackend), loaded from its own build folder as a plugin, as a vendor's
/// backend would be: tier 1 only, so its @fused cases are unsupported and its @composite cases must pass.
/// </summary>
public sealed class VendorKernelConformanceTests : KernelConformanceTests
{
    // One load per test run: every plugin load makes a new load context.
    private static readonly Lazy<IBackend> Loaded = new(() => LoadVendorBackend(VendorPluginPath));

    /// <summary>Where the test project's build put the sample's assembly.</summary>
    public static string VendorPluginPath =>
        typeof(VendorKernelConformanceTests).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == "VendorPluginPath").Value
        ?? throw new InvalidOperationException("assembly metadata VendorPluginPath is empty");

    /// <inheritdoc />
    protected override IBackend CreateBackend() => Loaded.Value;

    /// <summary>Registers the plugin at <paramref name="path"/> and returns its <c>vendor</c> backend.</summary>
    public static IBackend LoadVendorBackend(string path)
    {
        var services = new ServiceCollection();
        services.AddHal().AddPlugin(path);
        // The provider lives as long as the test run: the backend it made is used by every test.
        var provider = services.BuildServiceProvider();
        return provider.GetRequiredService<HalRuntime>().GetBackend("vendor");
    }
}
