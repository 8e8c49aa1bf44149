using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Hal.Registration;

/// <summary>Adds backends to a service collection: <c>services.AddHal().AddCpuBackend()</c>.</summary>
public sealed class HalBuilder
{
    internal HalBuilder(IServiceCollection services)
    {
        Services = services;
    }

    public IServiceCollection Services { get; }

    /// <summary>Registers a backend type (a singleton).</summary>
    public HalBuilder AddBackend<TBackend>()
        where TBackend : class, IBackend
    {
        Services.AddSingleton<IBackend, TBackend>();
        return this;
    }

    /// <summary>Registers a backend instance.</summary>
    public HalBuilder AddBackend(IBackend backend)
    {
        ArgumentNullException.ThrowIfNull(backend);
        Services.AddSingleton(backend);
        return this;
    }

    /// <summary>Loads the plugin assembly at <paramref name="path"/> and runs its registrations.</summary>
    /// <exception cref="PluginLoadException">the file is missing, not a Hal plugin, or built against an incompatible contract.</exception>
    public HalBuilder AddPlugin(string path)
    {
        foreach (var plugin in PluginLoader.Load(path))
        {
            plugin.Register(this);
        }
        return this;
    }
}

/// <summary>Entry point of the registration API.</summary>
public static class HalServiceCollectionExtensions
{
    /// <summary>Adds <see cref="HalRuntime"/> and returns a builder for backends.</summary>
    public static HalBuilder AddHal(this IServiceCollection services)
    {
        ArgumentNullException.ThrowIfNull(services);
        services.TryAddSingleton<HalRuntime>();
        return new HalBuilder(services);
    }
}
