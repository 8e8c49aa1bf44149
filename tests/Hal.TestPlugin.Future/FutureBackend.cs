using Hal;
using Hal.Registration;

[assembly: HalPlugin(typeof(Hal.TestPlugin.Future.Registration), 2, 0)]

namespace Hal.TestPlugin.Future;

/// <summary>A backend that claims a newer contract than the host's: the loader must refuse it before running any of its code.</summary>
public sealed class FutureBackend : IBackend
{
    /// <inheritdoc />
    public string Name => "future";

    /// <inheritdoc />
    public BackendProbe Probe() => new(Name, true, null, []);

    /// <inheritdoc />
    public IDevice Open(int index) => throw new BackendUnavailableException(Name, "this backend has no devices");
}

/// <summary>The plugin's registration, named by the assembly attribute.</summary>
public sealed class Registration : IHalPlugin
{
    /// <inheritdoc />
    public void Register(HalBuilder builder) => builder.AddBackend(new FutureBackend());
}
