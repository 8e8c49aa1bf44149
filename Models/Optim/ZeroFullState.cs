using Hal.Models.Nn;

namespace Hal.Models.Optim;

// Shapes: full slabs [N] in the working dtype W (F32, F64 for an F64 store), one per state kind (exp_avg, exp_avg_sq
// or momentum_buffer, master); rank r's optimizer slabs [n_r] are the elements [Start_r, End_r) of them.

/// <summary>
/// The whole optimizer state of a ZeRO-1 run in the layout of an unsharded optimizer, for checkpoints: full-size
/// temporaries that <see cref="Gather"/> fills from every rank's shard (each owner broadcasts its range) and that
/// <see cref="ScatterToOptimizer"/> copies back into this rank's shard after a load. Its <see cref="StateTensors"/>
/// carry the same names, order and shapes as <see cref="Optimizer.StateTensors"/> of an unsharded optimizer, so
/// checkpoints do not depend on the number of ranks or the ZeRO stage.
/// </summary>
public sealed class ZeroFullState : IDisposable
{
    private readonly Ops _ops;
    private readonly Optimizer _optimizer;
    private readonly List<(string Suffix, Tensor Full)> _slabs = [];
    private readonly List<(string Name, Tensor Tensor)> _stateTensors = [];

    /// <summary>Allocates full-size slabs for each of <paramref name="optimizer"/>'s state kinds (contents unspecified).</summary>
    /// <exception cref="ArgumentNullException">a null argument.</exception>
    public ZeroFullState(Ops ops, ParameterStore store, Optimizer optimizer)
    {
        ArgumentNullException.ThrowIfNull(ops);
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(optimizer);
        _ops = ops;
        _optimizer = optimizer;
        var shape = new Shape(checked((int)store.Count));
        try
        {
            foreach (var (suffix, slab) in optimizer.StateSlabs)
            {
                _slabs.Add((suffix, ops.Empty(shape, slab.DType)));
            }
        }
        catch
        {
            Dispose();
            throw;
        }
        foreach (var info in store.Infos)
        {
            foreach (var (suffix, full) in _slabs)
            {
                _stateTensors.Add(($"{info.Name}.{suffix}", full.View(info.Offset, info.Shape)));
            }
        }
    }

    /// <summary>Named views of the full slabs, as an unsharded optimizer's <see cref="Optimizer.StateTensors"/>.</summary>
    public IReadOnlyList<(string Name, Tensor Tensor)> StateTensors => _stateTensors;

    /// <summary>The full fp32 master slab [N] of a 16-bit store; null for an fp32 store.</summary>
    public Tensor? Master => _slabs.Where(s => s.Suffix == "master").Select(s => s.Full).FirstOrDefault();

    /// <summary>
    /// Fills the full slabs on every rank: each rank copies its shard in, then each shard is broadcast from its
    /// owner. All ranks must call it together. Without a communicator this rank's shard is the only one.
    /// </summary>
    /// <exception cref="ArgumentException">a partition that does not hold this optimizer's shard.</exception>
    public void Gather(ICommunicator? communicator, ZeroPartition partition)
    {
        ArgumentNullException.ThrowIfNull(partition);
        var own = _optimizer.Shard ?? partition.Shard(0);
        var owned = _optimizer.StateSlabs;
        for (int k = 0; k < _slabs.Count; k++)
        {
            var full = _slabs[k].Full;
            if (!own.IsEmpty)
            {
                _ops.Copy(owned[k].Slab, full.View(own.Start, new Shape(checked((int)own.ElementCount))));
            }
            if (communicator is null || communicator.Size == 1)
            {
                continue;
            }
            foreach (var shard in partition.Shards)
            {
                if (!shard.IsEmpty)
                {
                    communicator.Broadcast(full.View(shard.Start, new Shape(checked((int)shard.ElementCount))), root: shard.Rank);
                }
            }
        }
    }

    /// <summary>Copies this rank's range of the full slabs into the optimizer's shard (after a checkpoint was loaded into them).</summary>
    public void ScatterToOptimizer()
    {
        var owned = _optimizer.StateSlabs;
        long start = _optimizer.Shard?.Start ?? 0;
        for (int k = 0; k < _slabs.Count; k++)
        {
            var slab = owned[k].Slab;
            if (slab.ElementCount > 0)
            {
                _ops.Copy(_slabs[k].Full.View(start, slab.Shape), slab);
            }
        }
    }

    /// <summary>Frees the full slabs.</summary>
    public void Dispose()
    {
        foreach (var (_, full) in _slabs)
        {
            full.Dispose();
        }
        _slabs.Clear();
        _stateTensors.Clear();
    }
}
