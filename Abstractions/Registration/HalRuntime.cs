namespace Hal.Registration;

/// <summary>The registered backends, by name, and a way to open a device by its id.</summary>
public sealed class HalRuntime
{
    private readonly IReadOnlyList<IBackend> _backends;

    public HalRuntime(IEnumerable<IBackend> backends)
    {
        var list = new List<IBackend>();
        foreach (var b in backends)
        {
            if (list.Exists(x => x.Name == b.Name))
            {
                throw new HalException($"two backends are registered under the name '{b.Name}'; each backend needs its own name");
            }
            list.Add(b);
        }
        _backends = list;
    }

    /// <summary>Registered backends in registration order.</summary>
    public IReadOnlyList<IBackend> Backends => _backends;

    /// <summary>The backend named <paramref name="name"/>.</summary>
    /// <exception cref="BackendUnavailableException">no backend has that name; the message lists the registered ones.</exception>
    public IBackend GetBackend(string name)
    {
        foreach (var b in _backends)
        {
            if (string.Equals(b.Name, name, StringComparison.OrdinalIgnoreCase))
            {
                return b;
            }
        }
        throw new BackendUnavailableException(name,
            $"no backend of that name is registered (registered: {string.Join(", ", _backends.Select(b => b.Name))}); load a vendor backend with --plugin");
    }

    /// <summary>Opens the device <paramref name="id"/>.</summary>
    public IDevice Open(DeviceId id) => GetBackend(id.Backend).Open(id.Index);

    /// <summary>Probes every backend (never throws).</summary>
    public IReadOnlyList<BackendProbe> ProbeAll()
    {
        var result = new List<BackendProbe>();
        foreach (var b in _backends)
        {
            BackendProbe p;
            try
            {
                p = b.Probe();
            }
            catch (Exception e)
            {
                p = BackendProbe.Unavailable(b.Name, $"probe failed: {e.GetType().Name}: {e.Message}");
            }
            result.Add(p);
        }
        return result;
    }
}
