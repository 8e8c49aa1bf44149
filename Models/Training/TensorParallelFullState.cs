using Hal.Models.Checkpoints;
using Hal.Models.Nn;
using Hal.Models.Optim;
using Hal.Models.Transformer;

namespace Hal.Models.Training;

// Legend: p tp ranks; a full tensor has the single-device (Hugging Face) shape, a local one this rank's shard shape.

/// <summary>
/// The model and optimizer states of a tensor-parallel rank as full tensors, for checkpoints that do not depend on
/// the layout: full-size temporaries named like a single-device run's (parameters, or their fp32 masters for a
/// 16-bit store, and every optimizer state tensor). <see cref="Gather"/> fills them from the ranks' shards
/// (collective over the tp group); <see cref="Scatter"/> copies this rank's shards out of them after a load.
/// </summary>
internal sealed class TensorParallelFullState : IDisposable
{
    private readonly Ops _ops;
    private readonly List<(TensorParallelSpec Spec, Tensor Local, Tensor Full)> _entries = [];

    /// <summary>Allocates the full temporaries for <paramref name="store"/> (the model's shards) and <paramref name="optimizer"/>'s state.</summary>
    public TensorParallelFullState(Ops ops, ModelConfig config, ParameterStore store, Optimizer optimizer)
    {
        _ops = ops;
        var full = new ParameterStore();
        TransformerModel.DeclareParameters(full, config);
        var states = optimizer.StateTensors.ToDictionary(s => s.Name, s => s.Tensor, StringComparer.Ordinal);
        try
        {
            for (int i = 0; i < store.Infos.Count; i++)
            {
                var info = full.Infos[i];
                var spec = TensorParallelLayout.SpecOf(config, info.Name);
                // A 16-bit store's checkpoint holds the fp32 master under the parameter's name.
                var local = states.TryGetValue(info.Name + ".master", out var master) ? master : store.Param(i);
                ModelTensors.Add(new NamedTensor(info.Name, Add(spec, local, info.Shape)));
            }
            foreach (var (name, local) in optimizer.StateTensors)
            {
                if (name.EndsWith(".master", StringComparison.Ordinal))
                {
                    continue;
                }
                var info = full.Info(name[..name.LastIndexOf('.')]);
                OptimizerTensors.Add(new NamedTensor(name, Add(TensorParallelLayout.SpecOf(config, info.Name), local, info.Shape)));
            }
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>The full model tensors by Hugging Face name, as a checkpoint holds them.</summary>
    public List<NamedTensor> ModelTensors { get; } = [];

    /// <summary>The full optimizer state tensors, named as a single-device optimizer's.</summary>
    public List<NamedTensor> OptimizerTensors { get; } = [];

    /// <summary>Every full tensor = the tp ranks' shards put together. Collective over <paramref name="tpGroup"/>.</summary>
    public void Gather(ICommunicator tpGroup)
    {
        foreach (var (spec, local, full) in _entries)
        {
            TensorParallelLayout.Gather(_ops, tpGroup, spec, local, full);
        }
    }

    /// <summary>Every local shard = rank <paramref name="rank"/>'s part of its full tensor.</summary>
    public void Scatter(int rank, int tp)
    {
        foreach (var (spec, local, full) in _entries)
        {
            TensorParallelLayout.Split(_ops, spec, full, local, rank, tp);
        }
    }

    /// <summary>Frees the temporaries.</summary>
    public void Dispose()
    {
        foreach (var (_, _, full) in _entries)
        {
            full.Dispose();
        }
        _entries.Clear();
    }

    private Tensor Add(TensorParallelSpec spec, Tensor local, Shape fullShape)
    {
        var full = _ops.Empty(fullShape, local.DType);
        _entries.Add((spec, local, full));
        return full;
    }
}
