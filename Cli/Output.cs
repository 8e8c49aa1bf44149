using System.Text.Json;
using Spectre.Console;

namespace Hal.Cli;

/// <summary>How commands write: Spectre tables for people, System.Text.Json (camelCase) for programs.</summary>
internal static class Output
{
    /// <summary>camelCase names, indented, nulls written (a null reason is part of the contract).</summary>
    public static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        WriteIndented = true,
    };

    /// <summary>A console over <paramref name="writer"/>: colours only when it is a terminal.</summary>
    public static IAnsiConsole Console(TextWriter writer) => AnsiConsole.Create(new AnsiConsoleSettings
    {
        Out = new AnsiConsoleOutput(writer),
        Ansi = AnsiSupport.Detect,
        ColorSystem = ColorSystemSupport.Detect,
        Interactive = InteractionSupport.No,
    });

    /// <summary>Writes <paramref name="value"/> as JSON and a newline.</summary>
    public static void WriteJson<T>(TextWriter writer, T value)
    {
        writer.WriteLine(JsonSerializer.Serialize(value, Json));
    }
}
