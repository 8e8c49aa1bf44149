namespace Hal.Conformance.Collectives;

/// <summary>The collectives the catalogue checks.</summary>
public enum CollectiveKind
{
    /// <summary><see cref="ICommunicator.AllReduce"/>.</summary>
    AllReduce,

    /// <summary><see cref="ICommunicator.Broadcast"/>.</summary>
    Broadcast,

    /// <summary><see cref="ICommunicator.AllGather"/>.</summary>
    AllGather,

    /// <summary><see cref="ICommunicator.ReduceScatter"/>.</summary>
    ReduceScatter,

    /// <summary><see cref="ICommunicator.AllToAll"/>.</summary>
    AllToAll,

    /// <summary><see cref="ICommunicator.Send"/>/<see cref="ICommunicator.Recv"/> around a ring: rank r sends to r+1 and receives from r−1.</summary>
    SendRecv,

    /// <summary><see cref="ICommunicator.Barrier"/>.</summary>
    Barrier,
}

/// <summary>
/// One conformance case. <paramref name="Count"/> is the per-rank unit of the collective: the whole tensor for
/// all-reduce, broadcast and send/recv; the send of all-gather; the receive of reduce-scatter; one block of all-to-all
/// (whose tensors hold Size × Count elements).
/// </summary>
/// <param name="Id">stable name, e.g. <c>allreduce/f32/sum/n=1023/inplace</c>.</param>
/// <param name="Collective">which collective.</param>
/// <param name="DType">element type (unused by the barrier).</param>
/// <param name="Op">reduction, for all-reduce and reduce-scatter; null otherwise.</param>
/// <param name="Count">elements per rank unit, see above.</param>
/// <param name="InPlace">all-reduce: send is recv; all-gather: send is this rank's block of recv; reduce-scatter:
/// recv is this rank's block of send; broadcast is always in place; all-to-all and send/recv never are.</param>
/// <param name="Root">the root of a broadcast; 0 otherwise.</param>
public sealed record CollectiveCase(string Id, CollectiveKind Collective, DType DType, ReduceOp? Op, long Count, bool InPlace, int Root)
{
    /// <summary>The collective's name as written in case ids: <c>allreduce</c>, <c>broadcast</c>, …</summary>
    public static string NameOf(CollectiveKind kind) => kind switch
    {
        CollectiveKind.AllReduce => "allreduce",
        CollectiveKind.Broadcast => "broadcast",
        CollectiveKind.AllGather => "allgather",
        CollectiveKind.ReduceScatter => "reducescatter",
        CollectiveKind.AllToAll => "alltoall",
        CollectiveKind.SendRecv => "sendrecv",
        CollectiveKind.Barrier => "barrier",
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, null),
    };

    /// <summary>The reduction's name as written in case ids: <c>sum</c>, <c>mean</c>, <c>max</c>, <c>min</c>.</summary>
    public static string NameOf(ReduceOp op) => op switch
    {
        ReduceOp.Sum => "sum",
        ReduceOp.Mean => "mean",
        ReduceOp.Max => "max",
        ReduceOp.Min => "min",
        _ => throw new ArgumentOutOfRangeException(nameof(op), op, null),
    };
}

/// <summary>
/// The outcome of one case, combined over every rank (identical on every rank that ran it).
/// </summary>
/// <param name="Id">the case id.</param>
/// <param name="Collective">collective name (<c>allreduce</c>, …).</param>
/// <param name="Dtype">dtype name, or null for the barrier.</param>
/// <param name="Op">reduction name, or null where the collective does not reduce.</param>
/// <param name="Count">elements per rank unit (see <see cref="CollectiveCase"/>).</param>
/// <param name="InPlace">whether the case ran in place.</param>
/// <param name="Ranks">number of ranks.</param>
/// <param name="Comm">the communicator's <see cref="ICommunicator.Kind"/>.</param>
/// <param name="Passed">no wrong element and no error on any rank.</param>
/// <param name="WrongCount">wrong elements summed over ranks.</param>
/// <param name="FirstWrongRank">the lowest rank with a wrong element, or null.</param>
/// <param name="FirstWrongIndex">the first wrong element's index in that rank's output, or null.</param>
/// <param name="Expected">the expected value there (value and bit pattern), or null.</param>
/// <param name="Actual">the value found there, or null.</param>
/// <param name="Error">what went wrong when a rank raised instead of finishing the collective, or null.</param>
public sealed record CollectiveCaseResult(
    string Id,
    string Collective,
    string? Dtype,
    string? Op,
    long Count,
    bool InPlace,
    int Ranks,
    string Comm,
    bool Passed,
    long WrongCount,
    int? FirstWrongRank,
    long? FirstWrongIndex,
    string? Expected,
    string? Actual,
    string? Error);

/// <summary>How the catalogue runs. Every rank must pass equal options.</summary>
public sealed class CollectiveConformanceOptions
{
    /// <summary>Large cases of about 16 K elements instead of about 1 M.</summary>
    public bool Quick { get; init; }

    /// <summary>Seed of the inputs (with the case id, rank and element index).</summary>
    public ulong Seed { get; init; } = 0x4841_4C5F_434F_4C4CUL;

    /// <summary>Runs only the cases this accepts (null: every case).</summary>
    public Func<CollectiveCase, bool>? Filter { get; init; }

    /// <summary>Called on every rank after each case with its combined result (progress output).</summary>
    public Action<CollectiveCaseResult>? OnResult { get; init; }
}
