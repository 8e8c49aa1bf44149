namespace Hal.Parallel.Mesh;

/// <summary>
/// The ranks of one communicator arranged as a four-axis grid: data parallel (dp), pipeline (pp), sequence (sp) and
/// tensor parallel (tp). Axis order, outermost first, is dp, pp, sp, tp, so
/// rank = ((dp·Pp + pp)·Sp + sp)·Tp + tp: the tp ranks of one group are neighbours (they exchange the most, every
/// layer) and the dp ranks are the farthest apart (they exchange once a step).
/// Each axis group holds the ranks that differ only in that axis' coordinate, ordered by it, so a group's rank is
/// this rank's coordinate on that axis. The world communicator owns the groups; disposing the mesh disposes them.
/// </summary>
public sealed class DeviceMesh : IDisposable
{
    /// <summary>
    /// Builds the mesh; collective over <paramref name="world"/>: every rank calls it with the same sizes, and it splits
    /// the world once per axis (in the order dp, tp, pp, sp), then once for the replica group.
    /// </summary>
    /// <exception cref="ArgumentNullException"><paramref name="world"/> is null.</exception>
    /// <exception cref="MeshException">An axis size is below 1, or dp·tp·pp·sp differs from the world's size.</exception>
    public DeviceMesh(ICommunicator world, int dp, int tp, int pp, int sp)
    {
        ArgumentNullException.ThrowIfNull(world);
        if (dp < 1 || tp < 1 || pp < 1 || sp < 1)
        {
            throw new MeshException($"mesh axis sizes must be at least 1, got dp {dp}, tp {tp}, pp {pp}, sp {sp}; use 1 for an axis that is not split");
        }
        long product = (long)dp * tp * pp * sp;
        if (product != world.Size)
        {
            throw new MeshException(
                $"mesh dp {dp} · tp {tp} · pp {pp} · sp {sp} = {product} ranks, but the communicator has {world.Size}; " +
                $"choose sizes whose product is {world.Size}");
        }
        World = world;
        Dp = dp;
        Tp = tp;
        Pp = pp;
        Sp = sp;
        int rank = world.Rank;
        TpRank = rank % tp;
        SpRank = rank / tp % sp;
        PpRank = rank / (tp * sp) % pp;
        DpRank = rank / (tp * sp * pp);

        // Color = the coordinates on the other three axes flattened (so each group is one line of the grid); key = the
        // coordinate on the axis, so the group's ranks are in axis order.
        DpGroup = SplitAxis(RankOf(0, PpRank, SpRank, TpRank), DpRank, "dp");
        TpGroup = SplitAxis(RankOf(DpRank, PpRank, SpRank, 0), TpRank, "tp");
        PpGroup = SplitAxis(RankOf(DpRank, 0, SpRank, TpRank), PpRank, "pp");
        SpGroup = SplitAxis(RankOf(DpRank, PpRank, 0, TpRank), SpRank, "sp");
        // The replicas of one parameter shard: every rank with this rank's pp and tp coordinates, ordered by (dp, sp).
        ReplicaGroup = SplitAxis(RankOf(0, PpRank, 0, TpRank), (DpRank * sp) + SpRank, "replica");
    }

    /// <summary>Number of data parallel replicas.</summary>
    public int Dp { get; }

    /// <summary>Number of tensor parallel ranks per group.</summary>
    public int Tp { get; }

    /// <summary>Number of pipeline stages.</summary>
    public int Pp { get; }

    /// <summary>Number of sequence parallel ranks per group.</summary>
    public int Sp { get; }

    /// <summary>This rank's coordinate on the dp axis, 0 ≤ DpRank &lt; Dp (its rank in <see cref="DpGroup"/>).</summary>
    public int DpRank { get; }

    /// <summary>This rank's coordinate on the tp axis (its rank in <see cref="TpGroup"/>).</summary>
    public int TpRank { get; }

    /// <summary>This rank's coordinate on the pp axis (its rank in <see cref="PpGroup"/>).</summary>
    public int PpRank { get; }

    /// <summary>This rank's coordinate on the sp axis (its rank in <see cref="SpGroup"/>).</summary>
    public int SpRank { get; }

    /// <summary>The communicator the mesh was built over.</summary>
    public ICommunicator World { get; }

    /// <summary>The Dp ranks that share this rank's pp, sp and tp coordinates.</summary>
    public ICommunicator DpGroup { get; }

    /// <summary>The Tp ranks that share this rank's dp, pp and sp coordinates.</summary>
    public ICommunicator TpGroup { get; }

    /// <summary>The Pp ranks that share this rank's dp, sp and tp coordinates.</summary>
    public ICommunicator PpGroup { get; }

    /// <summary>The Sp ranks that share this rank's dp, pp and tp coordinates.</summary>
    public ICommunicator SpGroup { get; }

    /// <summary>
    /// The Dp·Sp ranks that share this rank's pp and tp coordinates, ordered by (dp, sp): they hold the same parameters
    /// (the same pipeline stage and tensor shard), so their gradients are averaged over it and a ZeRO-1 partition of
    /// the optimizer state spans it.
    /// </summary>
    public ICommunicator ReplicaGroup { get; }

    /// <summary>World rank of the given coordinates: ((dp·Pp + pp)·Sp + sp)·Tp + tp.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A coordinate is outside its axis.</exception>
    public int RankOf(int dp, int pp, int sp, int tp)
    {
        CheckCoordinate(dp, Dp, nameof(dp));
        CheckCoordinate(pp, Pp, nameof(pp));
        CheckCoordinate(sp, Sp, nameof(sp));
        CheckCoordinate(tp, Tp, nameof(tp));
        return (((((dp * Pp) + pp) * Sp) + sp) * Tp) + tp;
    }

    /// <summary>Disposes the four axis groups and the replica group (the world stays open: the caller owns it).</summary>
    public void Dispose()
    {
        DpGroup.Dispose();
        TpGroup.Dispose();
        PpGroup.Dispose();
        SpGroup.Dispose();
        ReplicaGroup.Dispose();
    }

    /// <inheritdoc />
    public override string ToString() =>
        $"mesh dp {Dp} × pp {Pp} × sp {Sp} × tp {Tp}, rank {World.Rank} at (dp {DpRank}, pp {PpRank}, sp {SpRank}, tp {TpRank})";

    private ICommunicator SplitAxis(int color, int key, string axis) =>
        World.Split(color, key) ?? throw new MeshException($"splitting the {axis} group gave rank {World.Rank} no group");

    private static void CheckCoordinate(int value, int size, string axis)
    {
        if (value < 0 || value >= size)
        {
            throw new ArgumentOutOfRangeException(axis, value, $"{axis} coordinate must be in [0, {size})");
        }
    }
}
