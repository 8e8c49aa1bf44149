using System.Globalization;

namespace Hal.Models.Zero;

/// <summary>How model states are placed between the device and host memory (and NVMe beyond the host limit).</summary>
public enum OffloadPolicy
{
    /// <summary>Everything on the device.</summary>
    None,

    /// <summary>Fixed fractions of parameters and optimizer states live off the device.</summary>
    Static,

    /// <summary>A warm-up step measures the memory the rest of the step needs; the plan fills what is left.</summary>
    Auto,
}

/// <summary>
/// The <c>--offload</c> value: <c>none</c>, <c>static:PARAMS,OPTIM</c> (fractions in [0, 1] of the parameter chunks
/// that are not kept resident between uses and of the optimizer-state chunks kept in host memory) or <c>auto</c>.
/// </summary>
/// <param name="Policy">The policy.</param>
/// <param name="ParameterFraction">Static: fraction of parameter chunks (by bytes) fetched on use instead of kept resident.</param>
/// <param name="OptimizerFraction">Static: fraction of optimizer-state chunks (by bytes) kept off the device.</param>
public sealed record OffloadSpec(OffloadPolicy Policy, double ParameterFraction = 0, double OptimizerFraction = 0)
{
    /// <summary>No offload.</summary>
    public static OffloadSpec None { get; } = new(OffloadPolicy.None);

    /// <summary>Parses an <c>--offload</c> value.</summary>
    /// <exception cref="FormatException">anything else, with the accepted forms.</exception>
    public static OffloadSpec Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        string t = text.Trim().ToLowerInvariant();
        if (t == "none")
        {
            return None;
        }
        if (t == "auto")
        {
            return new OffloadSpec(OffloadPolicy.Auto);
        }
        if (t.StartsWith("static:", StringComparison.Ordinal))
        {
            var parts = t["static:".Length..].Split(',');
            if (parts.Length == 2
                && double.TryParse(parts[0], NumberStyles.Float, CultureInfo.InvariantCulture, out double p)
                && double.TryParse(parts[1], NumberStyles.Float, CultureInfo.InvariantCulture, out double o)
                && p is >= 0 and <= 1 && o is >= 0 and <= 1)
            {
                return new OffloadSpec(OffloadPolicy.Static, p, o);
            }
        }
        throw new FormatException($"--offload '{text}': give none, auto, or static:PARAMS,OPTIM with two fractions in [0, 1] (e.g. static:0.5,0.5)");
    }

    /// <inheritdoc/>
    public override string ToString() => Policy switch
    {
        OffloadPolicy.Static => string.Create(CultureInfo.InvariantCulture, $"static:{ParameterFraction},{OptimizerFraction}"),
        OffloadPolicy.Auto => "auto",
        _ => "none",
    };
}
