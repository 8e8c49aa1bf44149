using System.Globalization;

namespace Hal.Cli;

/// <summary>Parses byte sizes written on the command line: <c>1000000</c>, <c>512MiB</c>, <c>2GiB</c>, <c>1.5GB</c>.</summary>
internal static class ByteSize
{
    // Longest suffixes first, so that "MiB" is not read as "B" after a stray "Mi".
    private static readonly (string Suffix, long Multiplier)[] Units =
    [
        ("KiB", 1L << 10), ("MiB", 1L << 20), ("GiB", 1L << 30), ("TiB", 1L << 40),
        ("KB", 1_000L), ("MB", 1_000_000L), ("GB", 1_000_000_000L), ("TB", 1_000_000_000_000L),
        ("B", 1L),
    ];

    /// <summary>The accepted forms, for error messages.</summary>
    public const string Help = "a byte count such as 1000000, 512MiB, 2GiB or 1.5GB (units B, KB, MB, GB, TB = powers of 1000; KiB, MiB, GiB, TiB = powers of 1024)";

    /// <summary>Parses <paramref name="text"/> into a positive whole number of bytes, or says why it cannot.</summary>
    public static bool TryParse(string? text, out long bytes, out string error)
    {
        bytes = 0;
        string t = (text ?? "").Trim();
        if (t.Length == 0)
        {
            error = $"an empty size; expected {Help}";
            return false;
        }
        long multiplier = 1;
        string number = t;
        foreach (var (suffix, mult) in Units)
        {
            if (t.EndsWith(suffix, StringComparison.OrdinalIgnoreCase))
            {
                multiplier = mult;
                number = t[..^suffix.Length].TrimEnd();
                break;
            }
        }
        if (number.Length == 0 || !char.IsAsciiDigit(number[0]) && number[0] != '.'
            || !decimal.TryParse(number, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out decimal value))
        {
            error = $"'{text}' is not a size; expected {Help}";
            return false;
        }
        decimal exact;
        try
        {
            exact = value * multiplier;
        }
        catch (OverflowException)
        {
            error = $"'{text}' is too large";
            return false;
        }
        if (exact > long.MaxValue)
        {
            error = $"'{text}' is too large";
            return false;
        }
        if (exact != decimal.Truncate(exact))
        {
            error = $"'{text}' is not a whole number of bytes";
            return false;
        }
        if (exact <= 0)
        {
            error = $"'{text}' is not a positive size";
            return false;
        }
        bytes = (long)exact;
        error = "";
        return true;
    }
}
