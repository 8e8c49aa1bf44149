using Hal.Models.Transformer;
using Hal.Parallel;
using Hal.Parallel.Sequence;

namespace Hal.Models.Nn;

// Legend: B batch, T full sequence length, sp ranks, Tl = T/sp tokens of this rank, C channels, H query heads,
// Hkv key/value heads, D head size.

/// <summary>
/// What a model needs to run on T/sp tokens of every sequence: the global position of each local token (zig-zag for
/// ring attention, contiguous for Ulysses), rotary tables gathered at those positions, the sequence-parallel
/// attention in place of the fused kernel, and the sum of the loss over the group.
/// </summary>
public sealed class SequenceParallelContext : IDisposable
{
    private readonly Workspace _ws;
    private readonly RingAttention? _ring;
    private readonly UlyssesAttention? _ulysses;

    /// <summary>A context over <paramref name="options"/>' group on the workspace's device.</summary>
    public SequenceParallelContext(Workspace ws, SequenceParallelOptions options)
    {
        ArgumentNullException.ThrowIfNull(ws);
        ArgumentNullException.ThrowIfNull(options);
        _ws = ws;
        Group = options.Group;
        Mode = options.Mode;
        if (Mode == SequenceParallelMode.Ring)
        {
            _ring = new RingAttention(ws.Ops, Group);
        }
        else
        {
            _ulysses = new UlyssesAttention(ws.Ops, Group);
        }
    }

    /// <summary>The sequence-parallel group.</summary>
    public ICommunicator Group { get; }

    /// <summary>Ring or Ulysses.</summary>
    public SequenceParallelMode Mode { get; }

    /// <summary>Ranks in the group.</summary>
    public int Size => Group.Size;

    /// <summary>This rank in the group.</summary>
    public int Rank => Group.Rank;

    /// <summary>Bytes the attention has sent to other ranks so far.</summary>
    public long AttentionBytesSent => _ring?.BytesSent ?? _ulysses!.BytesSent;

    /// <summary>Global positions of this rank's <paramref name="localTime"/> tokens, in local order.</summary>
    public int[] Positions(int localTime) => Positions(localTime * Size, Size, Rank, Mode);

    /// <summary>Global positions of rank <paramref name="rank"/>'s tokens of a <paramref name="time"/>-token sequence: zig-zag chunks (ring) or one contiguous run (Ulysses).</summary>
    public static int[] Positions(int time, int sp, int rank, SequenceParallelMode mode)
    {
        if (mode == SequenceParallelMode.Ring)
        {
            return ZigZag.Positions(time, sp, rank);
        }
        int local = time / sp;
        return [.. Enumerable.Range(rank * local, local)];
    }

    /// <summary>The positions as an I32 index [B·Tl] (row-major over [B, Tl]), built once per shape.</summary>
    public Tensor PositionIndex(int batch, int localTime) =>
        _ws.Constant($"sp.positions:{batch}:{localTime}", () =>
        {
            var positions = Positions(localTime);
            var values = new double[batch * localTime];
            for (int i = 0; i < values.Length; i++)
            {
                values[i] = positions[i % localTime];
            }
            return _ws.Ops.FromArray(values, new Shape(values.Length), DType.I32);
        });

    /// <summary>cos and sin [Tl, D/2] F32: the rows of <paramref name="tables"/> at this rank's positions, built once per length.</summary>
    public (Tensor Cos, Tensor Sin) RotaryRows(RotaryTables tables, int localTime)
    {
        ArgumentNullException.ThrowIfNull(tables);
        var index = PositionIndex(1, localTime);
        var cos = _ws.Constant($"sp.cos:{localTime}", () => Gather(tables.Cos, index));
        var sin = _ws.Constant($"sp.sin:{localTime}", () => Gather(tables.Sin, index));
        return (cos, sin);
    }

    /// <summary>Causal attention of the local q [B, H, Tl, D] against every rank's k, v [B, Hkv, Tl, D]. Collective over the group.</summary>
    public void Attention(Tensor q, Tensor k, Tensor v, double scale, Tensor output, Tensor lse)
    {
        if (_ring is not null)
        {
            _ring.Forward(q, k, v, causal: true, scale, output, lse);
        }
        else
        {
            _ulysses!.Forward(q, k, v, causal: true, scale, output, lse);
        }
    }

    /// <summary>dq, dk, dv of the local tokens from <see cref="Attention"/>'s output and lse. Collective over the group.</summary>
    public void AttentionBackward(Tensor q, Tensor k, Tensor v, Tensor output, Tensor lse, Tensor dOutput, double scale, Tensor dq, Tensor dk, Tensor dv)
    {
        if (_ring is not null)
        {
            _ring.Backward(q, k, v, output, lse, dOutput, causal: true, scale, dq, dk, dv);
        }
        else
        {
            _ulysses!.Backward(q, k, v, output, lse, dOutput, causal: true, scale, dq, dk, dv);
        }
    }

    /// <summary>The sum of <paramref name="value"/> over the group (every rank gets it). Collective over the group.</summary>
    public double Sum(double value) => DataParallel.SumScalar(Group, _ws.Ops, value);

    /// <summary>Frees the attention's state (the gathered tables belong to the workspace).</summary>
    public void Dispose()
    {
        _ring?.Dispose();
        _ulysses?.Dispose();
    }

    private Tensor Gather(Tensor table, Tensor index)
    {
        var rows = _ws.Ops.Empty(new Shape(index.Shape[0], table.Shape[1]), table.DType);
        _ws.Ops.IndexSelect(table, 0, index, rows);
        return rows;
    }
}
