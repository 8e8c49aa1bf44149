using Hal.Models.Nn;

namespace Hal.Models.Optim;

// Shapes: the store's slabs are flat [N]; rank r owns the view [End - Start] at Start, made of whole parameters.

/// <summary>
/// One rank's part of a <see cref="ZeroPartition"/>: parameters [<see cref="FirstParameter"/>, <see cref="EndParameter"/>)
/// in declaration order, which occupy the slab elements [<see cref="Start"/>, <see cref="End"/>).
/// </summary>
/// <param name="Rank">The owning rank.</param>
/// <param name="FirstParameter">Index of the first owned parameter in <see cref="ParameterStore.Infos"/>.</param>
/// <param name="EndParameter">One past the last owned parameter (equal to <paramref name="FirstParameter"/>: none owned).</param>
/// <param name="Start">First owned slab element.</param>
/// <param name="End">One past the last owned slab element.</param>
public sealed record ZeroShard(int Rank, int FirstParameter, int EndParameter, long Start, long End)
{
    /// <summary>Owned slab elements.</summary>
    public long ElementCount => End - Start;

    /// <summary>Owned parameters.</summary>
    public int ParameterCount => EndParameter - FirstParameter;

    /// <summary>Whether the rank owns no parameter (more ranks than parameters, or one parameter dwarfs the rest).</summary>
    public bool IsEmpty => EndParameter == FirstParameter;
}

/// <summary>
/// ZeRO stage 1's split of a <see cref="ParameterStore"/> over dp ranks: contiguous runs of whole parameters in
/// declaration order, balanced by element count. Greedy: rank r's run grows while adding the next parameter would
/// overshoot the ideal boundary Count·(r+1)/dp by no more than stopping short of it; the last rank takes the rest.
/// Whole parameters keep per-tensor rules (LAMB's and LARS's trust ratios) exact under sharding.
/// </summary>
public sealed class ZeroPartition
{
    private readonly ZeroShard[] _shards;

    /// <summary>Splits <paramref name="store"/>'s declared parameters over <paramref name="ranks"/> ranks.</summary>
    /// <exception cref="ArgumentOutOfRangeException">fewer than one rank.</exception>
    /// <exception cref="ArgumentException">a store without parameters.</exception>
    public ZeroPartition(ParameterStore store, int ranks)
        : this(ElementCounts(store), ranks)
    {
    }

    /// <summary>Splits parameters of the given element counts (declaration order, laid out back to back).</summary>
    /// <exception cref="ArgumentOutOfRangeException">fewer than one rank, or a count below 1.</exception>
    /// <exception cref="ArgumentException">no parameters.</exception>
    public ZeroPartition(IReadOnlyList<long> parameterElementCounts, int ranks)
    {
        ArgumentNullException.ThrowIfNull(parameterElementCounts);
        ArgumentOutOfRangeException.ThrowIfLessThan(ranks, 1);
        if (parameterElementCounts.Count == 0)
        {
            throw new ArgumentException("there are no parameters to partition", nameof(parameterElementCounts));
        }
        var offsets = new long[parameterElementCounts.Count + 1];
        for (int i = 0; i < parameterElementCounts.Count; i++)
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(parameterElementCounts[i], 1L, nameof(parameterElementCounts));
            offsets[i + 1] = offsets[i] + parameterElementCounts[i];
        }
        int n = parameterElementCounts.Count;
        long total = offsets[n];
        _shards = new ZeroShard[ranks];
        int next = 0;
        for (int r = 0; r < ranks; r++)
        {
            int first = next;
            if (r == ranks - 1)
            {
                next = n;
            }
            else
            {
                // Int128: Count·(r+1) may exceed a long for huge models on many ranks.
                long target = (long)((Int128)total * (r + 1) / ranks);
                while (next < n)
                {
                    long overshoot = offsets[next + 1] - target;
                    long shortfall = target - offsets[next];
                    if (overshoot > shortfall)
                    {
                        break;
                    }
                    next++;
                }
            }
            _shards[r] = new ZeroShard(r, first, next, offsets[first], offsets[next]);
        }
        Count = total;
    }

    /// <summary>Number of ranks.</summary>
    public int Ranks => _shards.Length;

    /// <summary>Total elements partitioned (the store's Count).</summary>
    public long Count { get; }

    /// <summary>Every rank's shard, by rank.</summary>
    public IReadOnlyList<ZeroShard> Shards => _shards;

    /// <summary>Rank <paramref name="rank"/>'s shard.</summary>
    /// <exception cref="ArgumentOutOfRangeException">a rank outside [0, Ranks).</exception>
    public ZeroShard Shard(int rank)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(rank);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(rank, _shards.Length);
        return _shards[rank];
    }

    private static long[] ElementCounts(ParameterStore store)
    {
        ArgumentNullException.ThrowIfNull(store);
        return [.. store.Infos.Select(i => i.ElementCount)];
    }
}
