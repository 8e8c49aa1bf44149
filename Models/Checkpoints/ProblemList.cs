namespace Hal.Models.Checkpoints;

/// <summary>Collects what is wrong with a file by kind, so one exception can list all of it instead of the first.</summary>
internal sealed class ProblemList
{
    /// <summary>Items listed per kind before "… and N more", so a wholly wrong file gives a readable message.</summary>
    private const int ShownPerKind = 12;

    private readonly Dictionary<string, List<string>> _byKind = new(StringComparer.Ordinal);

    public bool Any => _byKind.Count > 0;

    public void Add(string kind, string item)
    {
        if (!_byKind.TryGetValue(kind, out var items))
        {
            _byKind[kind] = items = [];
        }
        items.Add(item);
    }

    /// <summary>Throws a <see cref="CheckpointException"/> that starts with <paramref name="what"/> and lists every kind.</summary>
    public void ThrowIfAny(string what)
    {
        if (!Any)
        {
            return;
        }
        var parts = _byKind.Select(kind =>
        {
            string shown = string.Join(", ", kind.Value.Take(ShownPerKind));
            string more = kind.Value.Count > ShownPerKind ? $" … and {kind.Value.Count - ShownPerKind} more" : "";
            return $"{kind.Value.Count} {kind.Key}: {shown}{more}";
        });
        throw new CheckpointException($"{what}; {string.Join("; ", parts)}");
    }
}
