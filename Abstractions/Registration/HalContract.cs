namespace Hal.Registration;

/// <summary>
/// The version of the backend contract. A plugin records the version it was built against
/// (<see cref="HalPluginAttribute"/>); the loader accepts it when the majors are equal and the plugin's minor is not
/// newer than the host's. Members added in a minor version come with defaults, so older plugins keep working.
/// </summary>
public static class HalContract
{
    /// <summary>Major version: changes only when a member is removed or changes meaning.</summary>
    public const int Major = 1;

    /// <summary>Minor version: grows when members with defaults are added.</summary>
    public const int Minor = 0;

    /// <summary>Printed <c>1.0</c>.</summary>
    public static string Version => $"{Major}.{Minor}";

    /// <summary>Whether a plugin built against <paramref name="major"/>.<paramref name="minor"/> can load here.</summary>
    public static bool IsCompatible(int major, int minor) => major == Major && minor >= 0 && minor <= Minor;
}

/// <summary>
/// Declares a plugin assembly's registration: <c>[assembly: HalPlugin(typeof(MyRegistration), 1, 0)]</c>,
/// where MyRegistration implements <see cref="IHalPlugin"/> and has a public parameterless constructor.
/// </summary>
[AttributeUsage(AttributeTargets.Assembly, AllowMultiple = true)]
public sealed class HalPluginAttribute(Type registrationType, int contractMajor, int contractMinor) : Attribute
{
    public Type RegistrationType { get; } = registrationType;

    public int ContractMajor { get; } = contractMajor;

    public int ContractMinor { get; } = contractMinor;
}

/// <summary>A plugin's registration: adds its backends to the builder.</summary>
public interface IHalPlugin
{
    void Register(HalBuilder builder);
}
