using Hal.Models.Checkpoints;
using Hal.Models.Optim;
using Hal.Models.Transformer;

namespace Hal.Models.Training;

// Legend: a full tensor has the single-device (Hugging Face) shape, a local one this rank's grid blocks.

/// <summary>
/// The model and optimizer states of a grid rank as full tensors, for checkpoints that do not depend on the layout:
/// full-size temporaries named like a single-device run's (parameters, or their fp32 masters for a 16-bit store, and
/// every optimizer state tensor, each mapped like its parameter). <see cref="Gather"/> fills them from the ranks'
/// blocks (collective over the tp group); <see cref="Scatter"/> copies this rank's blocks out of them after a load.
/// </summary>
internal sealed class GridFullState : IDisposable
{
    private readonly Ops _ops;
    private readonly GridTransformerModel _model;
    private readonly List<(GridParameter Spec, Tensor Local, Tensor Full)> _entries = [];

    public GridFullState(Ops ops, GridTransformerModel model, Optimizer optimizer)
    {
        _ops = ops;
        _model = model;
        var specs = model.Layout.ToDictionary(p => p.Name, StringComparer.Ordinal);
        var states = optimizer.StateTensors.ToDictionary(s => s.Name, s => s.Tensor, StringComparer.Ordinal);
        try
        {
            for (int i = 0; i < model.Layout.Count; i++)
            {
                var spec = model.Layout[i];
                var local = states.TryGetValue(spec.Name + ".master", out var master) ? master : model.Parameters.Param(i);
                ModelTensors.Add(new NamedTensor(spec.Name, Add(spec, local)));
            }
            foreach (var (name, local) in optimizer.StateTensors)
            {
                if (name.EndsWith(".master", StringComparison.Ordinal))
                {
                    continue;
                }
                OptimizerTensors.Add(new NamedTensor(name, Add(specs[name[..name.LastIndexOf('.')]], local)));
            }
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public List<NamedTensor> ModelTensors { get; } = [];

    public List<NamedTensor> OptimizerTensors { get; } = [];

    /// <summary>Every full tensor = the grid ranks' blocks put together. Collective over <paramref name="tp"/>.</summary>
    public void Gather(ICommunicator tp)
    {
        foreach (var (spec, local, full) in _entries)
        {
            GridParameterLayout.Gather(_ops, spec, _model.Geometry, tp, local, full);
        }
    }

    /// <summary>Every local block = this rank's blocks of its full tensor.</summary>
    public void Scatter()
    {
        foreach (var (spec, local, full) in _entries)
        {
            GridParameterLayout.Split(_ops, spec, _model.Geometry, _model.TpRank, full, local);
        }
    }

    public void Dispose()
    {
        foreach (var (_, _, full) in _entries)
        {
            full.Dispose();
        }
        _entries.Clear();
    }

    private Tensor Add(GridParameter spec, Tensor local)
    {
        var full = _ops.Empty(spec.FullShape, local.DType);
        _entries.Add((spec, local, full));
        return full;
    }
}
