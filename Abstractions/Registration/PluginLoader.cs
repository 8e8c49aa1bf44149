using System.Reflection;
using System.Runtime.Loader;

namespace Hal.Registration;

/// <summary>
/// Loads out-of-tree backends. A plugin is an assembly with one or more <see cref="HalPluginAttribute"/>s; its own
/// dependencies resolve from its folder, while Hal's assemblies (and anything already loaded) are shared with the host.
/// </summary>
public static class PluginLoader
{
    /// <summary>Loads the plugin at <paramref name="path"/> and creates its registrations.</summary>
    /// <exception cref="PluginLoadException">the file is missing or unreadable, declares no registration, or targets an incompatible contract.</exception>
    public static IReadOnlyList<IHalPlugin> Load(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        string full = Path.GetFullPath(path);
        if (!File.Exists(full))
        {
            throw new PluginLoadException(path, "the file does not exist");
        }
        Assembly assembly;
        try
        {
            assembly = new PluginLoadContext(full).LoadFromAssemblyPath(full);
        }
        catch (Exception e) when (e is BadImageFormatException or FileLoadException or IOException)
        {
            throw new PluginLoadException(path, $"not a loadable .NET assembly ({e.Message})", e);
        }
        var attributes = assembly.GetCustomAttributes<HalPluginAttribute>().ToList();
        if (attributes.Count == 0)
        {
            throw new PluginLoadException(path,
                "the assembly declares no backend; add [assembly: Hal.Registration.HalPlugin(typeof(YourRegistration), 1, 0)]");
        }
        var plugins = new List<IHalPlugin>();
        foreach (var a in attributes)
        {
            if (!HalContract.IsCompatible(a.ContractMajor, a.ContractMinor))
            {
                throw new PluginLoadException(path,
                    $"it was built against contract {a.ContractMajor}.{a.ContractMinor}, this Hal implements contract {HalContract.Version}; rebuild the plugin against this Hal");
            }
            if (!typeof(IHalPlugin).IsAssignableFrom(a.RegistrationType))
            {
                throw new PluginLoadException(path, $"{a.RegistrationType.FullName} does not implement {nameof(IHalPlugin)}");
            }
            try
            {
                plugins.Add((IHalPlugin)Activator.CreateInstance(a.RegistrationType)!);
            }
            catch (Exception e) when (e is MissingMethodException or TargetInvocationException or MemberAccessException)
            {
                throw new PluginLoadException(path, $"cannot create {a.RegistrationType.FullName}: {e.Message}", e);
            }
        }
        return plugins;
    }

    private sealed class PluginLoadContext(string mainPath) : AssemblyLoadContext(isCollectible: false)
    {
        private readonly AssemblyDependencyResolver _resolver = new(mainPath);

        protected override Assembly? Load(AssemblyName assemblyName)
        {
            // Share what the host already has (Hal.Abstractions above all), so the plugin's types are the host's types.
            foreach (var loaded in Default.Assemblies)
            {
                if (AssemblyName.ReferenceMatchesDefinition(assemblyName, loaded.GetName()))
                {
                    return null;
                }
            }
            if (assemblyName.Name is { } n && (n.StartsWith("Hal.", StringComparison.Ordinal) || n.StartsWith("System.", StringComparison.Ordinal) || n.StartsWith("Microsoft.", StringComparison.Ordinal)))
            {
                try
                {
                    return Default.LoadFromAssemblyName(assemblyName);
                }
                catch (FileNotFoundException)
                {
                    // not in the host: fall through to the plugin's folder
                }
            }
            string? p = _resolver.ResolveAssemblyToPath(assemblyName);
            return p is null ? null : LoadFromAssemblyPath(p);
        }

        protected override IntPtr LoadUnmanagedDll(string unmanagedDllName)
        {
            string? p = _resolver.ResolveUnmanagedDllToPath(unmanagedDllName);
            return p is null ? IntPtr.Zero : LoadUnmanagedDllFromPath(p);
        }
    }
}
