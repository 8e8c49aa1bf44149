namespace Hal;

/// <summary>
/// The one identity of a device everywhere in Hal: backend name and index, printed <c>opencl:0</c>.
/// Backends with named sub-devices (an NPU's execution providers) still use an index; the name is in the capabilities.
/// </summary>
public readonly record struct DeviceId(string Backend, int Index)
{
    /// <summary>Printed <c>backend:index</c>.</summary>
    public override string ToString() => $"{Backend}:{Index}";

    /// <summary>Parses <c>cpu:0</c>; a bare backend name means index 0.</summary>
    /// <exception cref="FormatException">the text is not <c>name</c> or <c>name:index</c>.</exception>
    public static DeviceId Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        string t = text.Trim();
        int colon = t.LastIndexOf(':');
        if (colon < 0)
        {
            if (t.Length == 0)
            {
                throw new FormatException("empty device id; expected 'backend:index', e.g. 'cpu:0'");
            }
            return new DeviceId(t.ToLowerInvariant(), 0);
        }
        string name = t[..colon];
        if (name.Length == 0 || !int.TryParse(t[(colon + 1)..], out int index) || index < 0)
        {
            throw new FormatException($"'{text}' is not a device id; expected 'backend:index', e.g. 'cpu:0'");
        }
        return new DeviceId(name.ToLowerInvariant(), index);
    }
}
