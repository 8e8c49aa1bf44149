using System.Text.Json;

namespace Hal.Conformance.Kernels;

/// <summary>One expected failure: a glob over case ids and why the case is expected to fail.</summary>
public sealed record Expectation(string Case, string Reason);

/// <summary>
/// An expectations file (<c>--expect FILE</c>): cases a backend is known to fail, each with a reason, so a CI run
/// stays green on known gaps while every gap stays visible. Format:
/// <code>{ "expectedFailures": [ { "case": "gemm/bf16/*", "reason": "bf16 GEMM accumulates in bf16 on this NPU" } ] }</code>
/// </summary>
public sealed class Expectations
{
    /// <summary>No expected failures.</summary>
    public static Expectations None { get; } = new([]);

    /// <summary>Creates the set.</summary>
    public Expectations(IReadOnlyList<Expectation> expectedFailures)
    {
        ExpectedFailures = expectedFailures ?? throw new ArgumentNullException(nameof(expectedFailures));
    }

    /// <summary>The entries, in file order.</summary>
    public IReadOnlyList<Expectation> ExpectedFailures { get; }

    /// <summary>The first entry whose glob matches <paramref name="caseId"/>, or null.</summary>
    public Expectation? Match(string caseId) => ExpectedFailures.FirstOrDefault(e => Glob.IsMatch(e.Case, caseId));

    /// <summary>Reads an expectations file.</summary>
    /// <exception cref="ConformanceInputException">the file is missing, not JSON, or an entry lacks its case or reason.</exception>
    public static Expectations Load(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (!File.Exists(path))
        {
            throw new ConformanceInputException($"expectations file '{path}' does not exist");
        }
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(path));
            if (!doc.RootElement.TryGetProperty("expectedFailures", out var list) || list.ValueKind != JsonValueKind.Array)
            {
                throw new ConformanceInputException($"expectations file '{path}': expected an object with an array \"expectedFailures\" of {{\"case\": GLOB, \"reason\": TEXT}}");
            }
            var entries = new List<Expectation>();
            int n = 0;
            foreach (var item in list.EnumerateArray())
            {
                string? id = item.ValueKind == JsonValueKind.Object && item.TryGetProperty("case", out var c) && c.ValueKind == JsonValueKind.String ? c.GetString() : null;
                string? reason = item.ValueKind == JsonValueKind.Object && item.TryGetProperty("reason", out var r) && r.ValueKind == JsonValueKind.String ? r.GetString() : null;
                if (string.IsNullOrWhiteSpace(id) || string.IsNullOrWhiteSpace(reason))
                {
                    throw new ConformanceInputException($"expectations file '{path}': entry {n} needs a non-empty \"case\" glob and a non-empty \"reason\"");
                }
                entries.Add(new Expectation(id, reason));
                n++;
            }
            return new Expectations(entries);
        }
        catch (JsonException e)
        {
            throw new ConformanceInputException($"expectations file '{path}' is not valid JSON: {e.Message}");
        }
    }
}

/// <summary>Bad input to the conformance suite (an expectations file, a filter, a backend list), with what to fix.</summary>
public sealed class ConformanceInputException(string message) : HalException(message);
