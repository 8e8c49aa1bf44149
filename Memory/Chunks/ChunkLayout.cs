namespace Hal.Memory;

// Legend: a layout is a list of tensors (name, element count) in the order they are used, packed into chunks of
// ChunkElements elements each; a tensor sits whole inside one chunk at an element offset.

/// <summary>One tensor to pack: a name and its element count.</summary>
/// <param name="Name">the tensor's name, e.g. <c>h.0.attn.c_attn.weight</c>.</param>
/// <param name="Elements">its element count (0 allowed).</param>
public readonly record struct TensorSpec(string Name, long Elements);

/// <summary>Where one tensor sits: its chunk and its element offset inside it.</summary>
/// <param name="Name">the tensor's name.</param>
/// <param name="ChunkIndex">index of the chunk that holds it.</param>
/// <param name="OffsetElements">offset of its first element inside the chunk.</param>
/// <param name="Elements">its element count.</param>
public readonly record struct TensorPlacement(string Name, int ChunkIndex, long OffsetElements, long Elements);

/// <summary>The result of <see cref="ChunkLayout.SearchChunkSize(IReadOnlyList{long}, long, long, long)"/>.</summary>
/// <param name="ChunkElements">the chosen chunk size in elements.</param>
/// <param name="ChunkCount">the number of chunks the tensors take at that size.</param>
/// <param name="WastedElements">elements allocated in chunks but not used by any tensor.</param>
/// <param name="WasteFraction">wasted elements over allocated elements (0 = no waste).</param>
public readonly record struct ChunkSizeSearchResult(long ChunkElements, int ChunkCount, long WastedElements, double WasteFraction);

/// <summary>A tensor does not fit in one chunk: chunks must be at least <see cref="MinimumChunkElements"/> elements.</summary>
public sealed class ChunkTooSmallException(string tensor, long tensorElements, long chunkElements, long minimumChunkElements)
    : HalException($"tensor '{tensor}' has {tensorElements} elements and does not fit in a chunk of {chunkElements} elements; " +
        $"a tensor never straddles two chunks, so use a chunk size of at least {minimumChunkElements} elements")
{
    /// <summary>The tensor that did not fit.</summary>
    public string Tensor { get; } = tensor;

    /// <summary>Its element count.</summary>
    public long TensorElements { get; } = tensorElements;

    /// <summary>The chunk size that was asked for, in elements.</summary>
    public long ChunkElements { get; } = chunkElements;

    /// <summary>The smallest chunk size that holds every tensor (the largest tensor's element count).</summary>
    public long MinimumChunkElements { get; } = minimumChunkElements;
}

/// <summary>
/// Tensors packed in order into chunks of a fixed element count. Packing is next-fit: each tensor goes into the
/// current chunk if it fits after the tensors already there, otherwise it opens a new chunk; a tensor never
/// straddles two chunks, so the order of use is kept and a chunk holds tensors used close together in time.
/// </summary>
public sealed class ChunkLayout
{
    private readonly TensorPlacement[] _placements;
    private readonly long[] _usedElements;

    private ChunkLayout(long chunkElements, TensorPlacement[] placements, long[] usedElements)
    {
        ChunkElements = chunkElements;
        _placements = placements;
        _usedElements = usedElements;
    }

    /// <summary>Elements per chunk.</summary>
    public long ChunkElements { get; }

    /// <summary>Number of chunks.</summary>
    public int ChunkCount => _usedElements.Length;

    /// <summary>Every tensor's placement, in the order the tensors were given.</summary>
    public IReadOnlyList<TensorPlacement> Placements => _placements;

    /// <summary>Elements allocated in all chunks: <see cref="ChunkCount"/> × <see cref="ChunkElements"/>.</summary>
    public long AllocatedElements => ChunkCount * ChunkElements;

    /// <summary>Elements used by tensors.</summary>
    public long UsedElements => _usedElements.Sum();

    /// <summary>Elements allocated but holding no tensor.</summary>
    public long WastedElements => AllocatedElements - UsedElements;

    /// <summary>Wasted over allocated elements; 0 when there are no chunks.</summary>
    public double WasteFraction => AllocatedElements == 0 ? 0.0 : (double)WastedElements / AllocatedElements;

    /// <summary>Elements used by tensors in chunk <paramref name="chunkIndex"/>.</summary>
    public long UsedElementsOf(int chunkIndex) => _usedElements[chunkIndex];

    /// <summary>The tensors of chunk <paramref name="chunkIndex"/>, in order.</summary>
    public IEnumerable<TensorPlacement> TensorsOf(int chunkIndex) => _placements.Where(p => p.ChunkIndex == chunkIndex);

    /// <summary>Packs <paramref name="tensors"/> in order into chunks of <paramref name="chunkElements"/> elements.</summary>
    /// <exception cref="ArgumentOutOfRangeException">the chunk size is not positive, or a tensor's size is negative.</exception>
    /// <exception cref="ArgumentException">two tensors share a name.</exception>
    /// <exception cref="ChunkTooSmallException">a tensor is larger than a chunk; the error gives the minimum chunk size.</exception>
    public static ChunkLayout Pack(IReadOnlyList<TensorSpec> tensors, long chunkElements)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(chunkElements);
        var names = new HashSet<string>(StringComparer.Ordinal);
        long largest = 0;
        foreach (var t in tensors)
        {
            ArgumentOutOfRangeException.ThrowIfNegative(t.Elements, $"tensors['{t.Name}'].Elements");
            if (!names.Add(t.Name))
            {
                throw new ArgumentException($"tensor name '{t.Name}' appears twice; names must be unique", nameof(tensors));
            }
            largest = Math.Max(largest, t.Elements);
        }
        var placements = new TensorPlacement[tensors.Count];
        var used = new List<long>();
        for (int i = 0; i < tensors.Count; i++)
        {
            var t = tensors[i];
            if (t.Elements > chunkElements)
            {
                throw new ChunkTooSmallException(t.Name, t.Elements, chunkElements, largest);
            }
            if (used.Count == 0 || used[^1] + t.Elements > chunkElements)
            {
                used.Add(0);
            }
            placements[i] = new TensorPlacement(t.Name, used.Count - 1, used[^1], t.Elements);
            used[^1] += t.Elements;
        }
        return new ChunkLayout(chunkElements, placements, [.. used]);
    }

    /// <summary>
    /// Chunk count and wasted elements of next-fit packing of <paramref name="sizes"/> at <paramref name="chunkElements"/>,
    /// without building a layout; null when a tensor is larger than a chunk.
    /// </summary>
    public static (int ChunkCount, long WastedElements)? Measure(IReadOnlyList<long> sizes, long chunkElements)
    {
        ArgumentNullException.ThrowIfNull(sizes);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(chunkElements);
        int chunks = 0;
        long fill = 0;
        long total = 0;
        foreach (long s in sizes)
        {
            if (s > chunkElements)
            {
                return null;
            }
            if (chunks == 0 || fill + s > chunkElements)
            {
                chunks++;
                fill = 0;
            }
            fill += s;
            total += s;
        }
        return (chunks, chunks * chunkElements - total);
    }

    /// <summary>
    /// Tries chunk sizes <paramref name="minElements"/>, +<paramref name="step"/>, ... up to <paramref name="maxElements"/>
    /// and returns the one with the least wasted space (as a fraction of the allocated space); ties go to the smaller
    /// size (finer-grained moves). Sizes below the largest tensor are skipped, since they cannot hold it.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">a bound or the step is not positive, max &lt; min, or a size is negative.</exception>
    /// <exception cref="ChunkTooSmallException">even <paramref name="maxElements"/> is smaller than the largest tensor.</exception>
    public static ChunkSizeSearchResult SearchChunkSize(IReadOnlyList<long> sizes, long minElements, long maxElements, long step)
    {
        ArgumentNullException.ThrowIfNull(sizes);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(minElements);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(step);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxElements, minElements);
        long largest = 0;
        for (int i = 0; i < sizes.Count; i++)
        {
            ArgumentOutOfRangeException.ThrowIfNegative(sizes[i], $"sizes[{i}]");
            largest = Math.Max(largest, sizes[i]);
        }
        if (largest > maxElements)
        {
            int at = sizes.ToList().IndexOf(largest);
            throw new ChunkTooSmallException($"#{at}", largest, maxElements, largest);
        }
        ChunkSizeSearchResult? best = null;
        for (long size = minElements; size <= maxElements; size += step)
        {
            if (size < largest)
            {
                continue;
            }
            var (count, wasted) = Measure(sizes, size)!.Value;
            double fraction = count == 0 ? 0.0 : (double)wasted / ((double)count * size);
            if (best is null || fraction < best.Value.WasteFraction)
            {
                best = new ChunkSizeSearchResult(size, count, wasted, fraction);
            }
            if (maxElements - size < step)
            {
                break;
            }
        }
        // Every size in range was below the largest tensor (step skipped past it); the largest tensor's size would do.
        if (best is null)
        {
            throw new ChunkTooSmallException($"#{sizes.ToList().IndexOf(largest)}", largest, maxElements, largest);
        }
        return best.Value;
    }

    /// <summary>Same as <see cref="SearchChunkSize(IReadOnlyList{long}, long, long, long)"/> for named tensors.</summary>
    public static ChunkSizeSearchResult SearchChunkSize(IReadOnlyList<TensorSpec> tensors, long minElements, long maxElements, long step)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        return SearchChunkSize([.. tensors.Select(t => t.Elements)], minElements, maxElements, step);
    }
}
