using Hal;
using Hal.Registration;

[assembly: HalPlugin(typeof(Hal.TestPlugin.Registration), 1, 0)]

namespace Hal.TestPlugin;

/// <summary>A vendor backend that is never available here: it exists to test plugin loading and probing.</summary>
public sealed class TestVendorBackend : IBackend
{
    /// <summary>The reason <see cref="Probe"/> gives.</summary>
    public const string UnavailableReason = "no TestVendor accelerator is attached to this machine";

    /// <inheritdoc />
    public string Name => "testvendor";

    /// <inheritdoc />
    public BackendProbe Probe() => BackendProbe.Unavailable(Name, UnavailableReason);

    /// <inheritdoc />
    public IDevice Open(int index) => throw new BackendUnavailableException(Name, UnavailableReason);
}

/// <summary>The plugin's registration, named by the assembly attribute.</summary>
public sealed class Registration : IHalPlugin
{
    /// <inheritdoc />
    public void Register(HalBuilder builder) => builder.AddBackend(new TestVendorBackend());
}
