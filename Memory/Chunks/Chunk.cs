namespace Hal.Memory;

// Legend: a chunk holds ChunkElements elements of one dtype; each ChunkTensor is a range
// [OffsetElements, OffsetElements + Elements) of it with its own TensorState.

/// <summary>One tensor inside a chunk, with its state.</summary>
public sealed class ChunkTensor
{
    private readonly Lock _lock = new();
    private TensorState _state = TensorState.Free;

    internal ChunkTensor(Chunk chunk, string name, long offsetElements, long elements)
    {
        Chunk = chunk;
        Name = name;
        OffsetElements = offsetElements;
        Elements = elements;
    }

    /// <summary>The chunk that holds it.</summary>
    public Chunk Chunk { get; }

    /// <summary>Its name.</summary>
    public string Name { get; }

    /// <summary>Offset of its first element inside the chunk.</summary>
    public long OffsetElements { get; }

    /// <summary>Its element count.</summary>
    public long Elements { get; }

    /// <summary>Offset of its first byte inside the chunk's payload.</summary>
    public long OffsetBytes => OffsetElements * Chunk.ElementSizeBytes;

    /// <summary>Its size in bytes.</summary>
    public long SizeInBytes => Elements * Chunk.ElementSizeBytes;

    /// <summary>Its state; starts at <see cref="TensorState.Free"/>.</summary>
    public TensorState State
    {
        get
        {
            lock (_lock)
            {
                return _state;
            }
        }
    }

    /// <summary>Moves to <paramref name="to"/> if <see cref="TensorStateMachine"/> allows it.</summary>
    /// <exception cref="InvalidOperationException">the transition is not in the table; the message names the tensor and both states.</exception>
    public void MoveTo(TensorState to)
    {
        lock (_lock)
        {
            TensorStateMachine.Check(Name, _state, to);
            _state = to;
        }
    }
}

/// <summary>
/// A fixed-size block holding several tensors of one dtype: the unit that moves between tiers, is sharded and is
/// reduced. Its payload lives in a <see cref="ChunkStore"/>; the chunk itself is the layout and the tensor states.
/// </summary>
public sealed class Chunk
{
    private readonly ChunkTensor[] _tensors;

    /// <param name="index">its index in the layout.</param>
    /// <param name="capacityElements">its size in elements.</param>
    /// <param name="dtype">the dtype of every element.</param>
    /// <param name="tensors">its tensors (name, offset, elements), inside the chunk and not overlapping.</param>
    /// <exception cref="ArgumentOutOfRangeException">a size is negative, or a tensor lies outside the chunk.</exception>
    /// <exception cref="ArgumentException">two tensors overlap.</exception>
    public Chunk(int index, long capacityElements, DType dtype, IEnumerable<TensorPlacement> tensors)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        ArgumentOutOfRangeException.ThrowIfNegative(capacityElements);
        ArgumentNullException.ThrowIfNull(tensors);
        Index = index;
        CapacityElements = capacityElements;
        DType = dtype;
        ElementSizeBytes = dtype.SizeInBytes();
        var sorted = tensors.OrderBy(t => t.OffsetElements).ToArray();
        long end = 0;
        foreach (var t in sorted)
        {
            if (t.OffsetElements < 0 || t.Elements < 0 || t.OffsetElements + t.Elements > capacityElements)
            {
                throw new ArgumentOutOfRangeException(nameof(tensors),
                    $"tensor '{t.Name}' at [{t.OffsetElements}, {t.OffsetElements + t.Elements}) lies outside a chunk of {capacityElements} elements");
            }
            if (t.OffsetElements < end)
            {
                throw new ArgumentException($"tensor '{t.Name}' at offset {t.OffsetElements} overlaps the tensor before it (ending at {end})", nameof(tensors));
            }
            end = t.OffsetElements + t.Elements;
        }
        _tensors = [.. sorted.Select(t => new ChunkTensor(this, t.Name, t.OffsetElements, t.Elements))];
    }

    /// <summary>Its index in the layout.</summary>
    public int Index { get; }

    /// <summary>Its size in elements.</summary>
    public long CapacityElements { get; }

    /// <summary>The dtype of its elements.</summary>
    public DType DType { get; }

    /// <summary>Bytes per element.</summary>
    public int ElementSizeBytes { get; }

    /// <summary>Its payload size in bytes.</summary>
    public long SizeInBytes => CapacityElements * ElementSizeBytes;

    /// <summary>Its tensors, by offset.</summary>
    public IReadOnlyList<ChunkTensor> Tensors => _tensors;

    /// <summary>The tensor called <paramref name="name"/>.</summary>
    /// <exception cref="KeyNotFoundException">no tensor of that name is in this chunk.</exception>
    public ChunkTensor this[string name] =>
        _tensors.FirstOrDefault(t => t.Name == name) ?? throw new KeyNotFoundException($"chunk {Index} holds no tensor '{name}'");

    /// <summary>True when every tensor is in one of <paramref name="states"/> (true for a chunk with no tensors).</summary>
    public bool AllIn(params ReadOnlySpan<TensorState> states)
    {
        foreach (var t in _tensors)
        {
            if (states.IndexOf(t.State) < 0)
            {
                return false;
            }
        }
        return true;
    }

    /// <summary>True when every gradient in it is final (all <see cref="TensorState.ReadyForReduce"/>): the chunk can be reduced.</summary>
    public bool CanReduce => AllIn(TensorState.ReadyForReduce);

    /// <summary>True when nothing in it is in use (all <see cref="TensorState.Hold"/> or <see cref="TensorState.Free"/>): it can move between tiers.</summary>
    public bool CanMove => AllIn(TensorState.Hold, TensorState.Free);

    /// <summary>True when no tensor needs its payload (all <see cref="TensorState.Free"/>): it can be released.</summary>
    public bool CanRelease => AllIn(TensorState.Free);

    /// <summary>One chunk per chunk of <paramref name="layout"/>, with its tensors, for elements of <paramref name="dtype"/>.</summary>
    public static IReadOnlyList<Chunk> FromLayout(ChunkLayout layout, DType dtype)
    {
        ArgumentNullException.ThrowIfNull(layout);
        var chunks = new Chunk[layout.ChunkCount];
        for (int i = 0; i < chunks.Length; i++)
        {
            chunks[i] = new Chunk(i, layout.ChunkElements, dtype, layout.TensorsOf(i));
        }
        return chunks;
    }

    /// <inheritdoc />
    public override string ToString() => $"chunk {Index} ({CapacityElements} × {DType}, {_tensors.Length} tensors)";
}
