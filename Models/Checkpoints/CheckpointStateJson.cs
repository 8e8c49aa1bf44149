using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Hal.Models.Checkpoints;

/// <summary>
/// <see cref="CheckpointState"/> as <c>trainer.json</c> (snake_case keys). Written and parsed by hand so every missing
/// or malformed field gets a message naming it, and non-finite losses survive (as the strings NaN, Infinity, -Infinity).
/// </summary>
internal static class CheckpointStateJson
{
    /// <summary>The newest <see cref="CheckpointState.FormatVersion"/> this code reads and writes.</summary>
    public const int CurrentVersion = 1;

    public static string Serialize(CheckpointState state)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true }))
        {
            json.WriteStartObject();
            json.WriteNumber("format_version", state.FormatVersion);
            json.WriteNumber("step", state.Step);
            json.WriteNumber("batches_drawn", state.BatchesDrawn);
            json.WriteNumber("seed", state.Seed);
            json.WriteString("model", state.Model);
            json.WriteString("optimizer", state.Optimizer);
            json.WriteString("precision", state.Precision);
            json.WriteNumber("dp", state.Dp);
            json.WriteStartObject("optimizer_scalars");
            foreach (var (key, value) in state.OptimizerScalars)
            {
                json.WritePropertyName(key);
                WriteDouble(json, value);
            }
            json.WriteEndObject();
            json.WriteStartArray("losses");
            foreach (double loss in state.Losses)
            {
                WriteDouble(json, loss);
            }
            json.WriteEndArray();
            json.WriteEndObject();
        }
        return Encoding.UTF8.GetString(buffer.ToArray()) + "\n";
    }

    /// <exception cref="CheckpointException">unreadable JSON, a missing or malformed field, or an unknown format version.</exception>
    public static CheckpointState Read(string path)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(File.ReadAllBytes(path));
        }
        catch (JsonException e)
        {
            throw new CheckpointException($"{path}: not valid JSON ({e.Message})", e);
        }
        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw new CheckpointException($"{path}: JSON {root.ValueKind}, not an object");
            }
            int version = (int)Field(path, root, "format_version", e => e.GetInt32());
            if (version < 1 || version > CurrentVersion)
            {
                throw new CheckpointException($"{path}: format version {version} is unknown (this build reads version {CurrentVersion})");
            }
            var scalars = new Dictionary<string, double>(StringComparer.Ordinal);
            foreach (var item in Field(path, root, "optimizer_scalars", e => e.ValueKind == JsonValueKind.Object ? e : throw new FormatException()).EnumerateObject())
            {
                scalars[item.Name] = ParseDouble(path, $"optimizer_scalars.{item.Name}", item.Value);
            }
            var losses = new List<double>();
            int index = 0;
            foreach (var item in Field(path, root, "losses", e => e.ValueKind == JsonValueKind.Array ? e : throw new FormatException()).EnumerateArray())
            {
                losses.Add(ParseDouble(path, $"losses[{index++}]", item));
            }
            return new CheckpointState
            {
                FormatVersion = version,
                Step = Field(path, root, "step", e => e.GetInt64()),
                BatchesDrawn = Field(path, root, "batches_drawn", e => e.GetInt64()),
                Seed = Field(path, root, "seed", e => e.GetUInt64()),
                Model = Field(path, root, "model", e => e.GetString()!),
                Optimizer = Field(path, root, "optimizer", e => e.GetString()!),
                Precision = Field(path, root, "precision", e => e.GetString()!),
                Dp = Field(path, root, "dp", e => e.GetInt32()),
                OptimizerScalars = scalars,
                Losses = losses,
            };
        }
    }

    private static T Field<T>(string path, JsonElement root, string name, Func<JsonElement, T> parse)
    {
        if (!root.TryGetProperty(name, out var value))
        {
            throw new CheckpointException($"{path}: field '{name}' is missing");
        }
        try
        {
            return parse(value);
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException)
        {
            throw new CheckpointException($"{path}: field '{name}' has the wrong type or range ({value.GetRawText()})", e);
        }
    }

    private static void WriteDouble(Utf8JsonWriter json, double value)
    {
        if (double.IsFinite(value))
        {
            json.WriteNumberValue(value);
        }
        else
        {
            json.WriteStringValue(value.ToString(CultureInfo.InvariantCulture));
        }
    }

    private static double ParseDouble(string path, string field, JsonElement value)
    {
        if (value.ValueKind == JsonValueKind.Number)
        {
            return value.GetDouble();
        }
        if (value.ValueKind == JsonValueKind.String
            && double.TryParse(value.GetString(), NumberStyles.Float, CultureInfo.InvariantCulture, out double parsed))
        {
            return parsed;
        }
        throw new CheckpointException($"{path}: {field} is {value.GetRawText()}, not a number");
    }
}
