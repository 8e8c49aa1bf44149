namespace Hal.Conformance.Collectives;

/// <summary>
/// Every collective case for a rank count: each collective × dtype × reduction (where it reduces) × size × in/out of
/// place. Sizes: 0, 1, an odd size, a size not divisible by the rank count, and a large one (about 1 M elements in
/// all, 16 K with <c>quick</c>; the block collectives divide it by the rank count so their tensors stay that size).
/// </summary>
public static class CollectiveCatalogue
{
    /// <summary>The dtypes checked.</summary>
    public static IReadOnlyList<DType> DTypes { get; } = [DType.F32, DType.F64, DType.F16, DType.BF16, DType.I32, DType.I64];

    /// <summary>The reductions checked.</summary>
    public static IReadOnlyList<ReduceOp> Ops { get; } = [ReduceOp.Sum, ReduceOp.Mean, ReduceOp.Max, ReduceOp.Min];

    /// <summary>Elements of the large case.</summary>
    public static long LargeCount(bool quick) => quick ? 1 << 14 : 1 << 20;

    /// <summary>The per-rank-unit sizes for <paramref name="kind"/> at <paramref name="ranks"/> ranks.</summary>
    public static IReadOnlyList<long> Sizes(CollectiveKind kind, int ranks, bool quick)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(ranks, 1);
        bool blocks = kind is CollectiveKind.AllGather or CollectiveKind.ReduceScatter or CollectiveKind.AllToAll;
        long large = blocks ? LargeCount(quick) / ranks : LargeCount(quick);
        // 37·ranks + 1 leaves a remainder of 1 for every rank count above one, so chunked algorithms get a ragged tail.
        return new SortedSet<long> { 0, 1, 1023, (37L * ranks) + 1, large }.ToList();
    }

    /// <summary>Every case at <paramref name="ranks"/> ranks, in a fixed order (every rank must run the same list).</summary>
    public static IReadOnlyList<CollectiveCase> Cases(int ranks, bool quick)
    {
        var cases = new List<CollectiveCase>();
        foreach (var dtype in DTypes)
        {
            string dt = dtype.Name();
            foreach (var op in Ops)
            {
                foreach (long n in Sizes(CollectiveKind.AllReduce, ranks, quick))
                {
                    foreach (bool inPlace in new[] { true, false })
                    {
                        cases.Add(new($"allreduce/{dt}/{CollectiveCase.NameOf(op)}/n={n}/{Placement(inPlace)}", CollectiveKind.AllReduce, dtype, op, n, inPlace, 0));
                    }
                }
            }
        }
        foreach (var dtype in DTypes)
        {
            foreach (int root in ranks > 1 ? new[] { 0, ranks - 1 } : [0])
            {
                foreach (long n in Sizes(CollectiveKind.Broadcast, ranks, quick))
                {
                    cases.Add(new($"broadcast/{dtype.Name()}/root={root}/n={n}/inplace", CollectiveKind.Broadcast, dtype, null, n, true, root));
                }
            }
        }
        foreach (var dtype in DTypes)
        {
            foreach (long n in Sizes(CollectiveKind.AllGather, ranks, quick))
            {
                foreach (bool inPlace in new[] { true, false })
                {
                    cases.Add(new($"allgather/{dtype.Name()}/n={n}/{Placement(inPlace)}", CollectiveKind.AllGather, dtype, null, n, inPlace, 0));
                }
            }
        }
        foreach (var dtype in DTypes)
        {
            foreach (var op in Ops)
            {
                foreach (long n in Sizes(CollectiveKind.ReduceScatter, ranks, quick))
                {
                    foreach (bool inPlace in new[] { true, false })
                    {
                        cases.Add(new($"reducescatter/{dtype.Name()}/{CollectiveCase.NameOf(op)}/n={n}/{Placement(inPlace)}", CollectiveKind.ReduceScatter, dtype, op, n, inPlace, 0));
                    }
                }
            }
        }
        foreach (var dtype in DTypes)
        {
            foreach (long n in Sizes(CollectiveKind.AllToAll, ranks, quick))
            {
                cases.Add(new($"alltoall/{dtype.Name()}/n={n}/outofplace", CollectiveKind.AllToAll, dtype, null, n, false, 0));
            }
        }
        if (ranks > 1)
        {
            // A rank cannot send to itself, so the ring needs two ranks.
            foreach (var dtype in DTypes)
            {
                foreach (long n in Sizes(CollectiveKind.SendRecv, ranks, quick))
                {
                    cases.Add(new($"sendrecv/{dtype.Name()}/n={n}/outofplace", CollectiveKind.SendRecv, dtype, null, n, false, 0));
                }
            }
        }
        cases.Add(new("barrier", CollectiveKind.Barrier, DType.F32, null, 0, false, 0));
        return cases;
    }

    private static string Placement(bool inPlace) => inPlace ? "inplace" : "outofplace";
}
