using Hal.Memory;
using Hal.Models.Checkpoints;

namespace Hal.Models.Zero;

// Whole-tensor views of the sharded states for checkpoints: the layout-independent format (one fp32 tensor per
// parameter and per moment, Hugging Face names) is assembled on rank 0 and read back by every rank.
// Shapes as in ZeroEngine.cs.
public sealed partial class ZeroEngine
{
    /// <summary>State-name suffixes of the optimizer file, in the order <see cref="GatherFullState"/> lists them.</summary>
    private static readonly (string Suffix, int Slot)[] MomentSlots = [("exp_avg", FirstMomentSlot), ("exp_avg_sq", SecondMomentSlot)];

    /// <summary>
    /// Collective over the dp ranks: every parameter's fp32 master weights and AdamW moments, whole, on rank 0 (in
    /// declaration order; moments as "{name}.exp_avg", "{name}.exp_avg_sq"); null on the other ranks.
    /// </summary>
    public (List<HostTensor> Model, List<HostTensor> Optimizer)? GatherFullState()
    {
        foreach (var c in _chunks)
        {
            // Between steps the cached parameter copies are only copies; the gather needs their room.
            if (c.ParamUsers == 0)
            {
                FreeParam(c);
            }
        }
        bool root = _rank == 0;
        var infos = _store.Infos;
        var masters = root ? infos.Select(i => new float[i.ElementCount]).ToArray() : null;
        var moments = root ? MomentSlots.Select(_ => infos.Select(i => new float[i.ElementCount]).ToArray()).ToArray() : null;
        foreach (var c in _chunks)
        {
            GatherSlot(c, MasterSlot, masters);
            for (int k = 0; k < MomentSlots.Length; k++)
            {
                GatherSlot(c, MomentSlots[k].Slot, moments?[k]);
            }
        }
        if (!root)
        {
            return null;
        }
        var model = infos.Select((info, i) => new HostTensor(info.Name, info.Shape, masters![i])).ToList();
        var optimizer = new List<HostTensor>();
        for (int i = 0; i < infos.Count; i++)
        {
            for (int k = 0; k < MomentSlots.Length; k++)
            {
                optimizer.Add(new HostTensor($"{infos[i].Name}.{MomentSlots[k].Suffix}", infos[i].Shape, moments![k][i]));
            }
        }
        return (model, optimizer);
    }

    /// <summary>The names and shapes a checkpoint of this engine holds: parameters, then per parameter its two moments.</summary>
    public (List<(string Name, Shape Shape)> Model, List<(string Name, Shape Shape)> Optimizer) CheckpointNames()
    {
        var model = _store.Infos.Select(i => (i.Name, i.Shape)).ToList();
        var optimizer = _store.Infos.SelectMany(i => MomentSlots.Select(m => ($"{i.Name}.{m.Suffix}", i.Shape))).ToList();
        return (model, optimizer);
    }

    /// <summary>
    /// Every rank: sets its shards of the masters and moments from whole tensors (<paramref name="read"/> fills a
    /// host array for a name); gathered parameters become stale. Not collective.
    /// </summary>
    public void LoadFullState(Action<string, Shape, float[]> read)
    {
        ArgumentNullException.ThrowIfNull(read);
        DropPrefetches();
        var infos = _store.Infos;
        var slots = new List<(int Slot, Func<int, string> Name)> { (MasterSlot, i => infos[i].Name) };
        slots.AddRange(MomentSlots.Select(m => (m.Slot, (Func<int, string>)(i => $"{infos[i].Name}.{m.Suffix}"))));
        foreach (var (slot, name) in slots)
        {
            var whole = infos.Select((info, i) =>
            {
                var values = new float[info.ElementCount];
                read(name(i), info.Shape, values);
                return values;
            }).ToArray();
            foreach (var c in _chunks)
            {
                var chunk = new float[c.Padded];
                CopyChunk(c, whole, chunk, toChunk: true);
                WriteSlot(c, slot, chunk.AsSpan(checked((int)(_rank * c.Shard)), checked((int)c.Shard)));
                c.ParamFresh = false;
            }
        }
    }

    /// <summary>One slot of one chunk: every rank's shard gathered, the chunk's elements copied into the parameters' arrays on rank 0.</summary>
    private void GatherSlot(ZChunk c, int slot, float[][]? whole)
    {
        var shard = ReadSlot(c, slot);
        float[] chunk;
        if (_dp == 1)
        {
            chunk = shard;
        }
        else
        {
            using var send = _ops.Empty(new Shape(shard.Length), DType.F32);
            using var recv = _ops.Empty(new Shape(checked((int)c.Padded)), DType.F32);
            _device.CopyFromHost(System.Runtime.InteropServices.MemoryMarshal.AsBytes(shard.AsSpan()), send.Buffer, send.OffsetBytes);
            _comm!.AllGather(send, recv);
            chunk = new float[c.Padded];
            if (whole is not null)
            {
                _device.CopyToHost(recv.Buffer, recv.OffsetBytes, System.Runtime.InteropServices.MemoryMarshal.AsBytes(chunk.AsSpan()));
            }
        }
        if (whole is not null)
        {
            CopyChunk(c, whole, chunk, toChunk: false);
        }
    }

    /// <summary>Copies between a chunk's elements [Padded] and the whole parameters' arrays it covers.</summary>
    private void CopyChunk(ZChunk c, float[][] whole, float[] chunk, bool toChunk)
    {
        if (c.TileParam >= 0)
        {
            int columns = _store.Infos[c.TileParam].Shape[1];
            int at = checked(c.TileRowStart * columns), n = checked(c.TileRows * columns);
            Copy(whole[c.TileParam].AsSpan(at, n), chunk.AsSpan(0, n), toChunk);
            return;
        }
        for (int i = 0; i < _store.Infos.Count; i++)
        {
            if (_chunkOfParam[i] == c)
            {
                var info = _store.Infos[i];
                Copy(whole[i].AsSpan(), chunk.AsSpan(checked((int)(info.Offset - c.Start)), checked((int)info.ElementCount)), toChunk);
            }
        }
    }

    private static void Copy(Span<float> param, Span<float> chunk, bool toChunk)
    {
        if (toChunk)
        {
            param.CopyTo(chunk);
        }
        else
        {
            chunk.CopyTo(param);
        }
    }

    /// <summary>This rank's shard of one slot as a new host array, wherever it lives.</summary>
    private float[] ReadSlot(ZChunk c, int slot)
    {
        var values = new float[c.Shard];
        switch (_states.TierOf(c.State))
        {
            case Tier.Device:
                var view = StateView(c, slot);
                _device.CopyToHost(view.Buffer, view.OffsetBytes, System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()));
                break;
            case Tier.Host:
                HostSlot(c, slot).CopyTo(values);
                break;
            default:
                ReadNvmeSlot(c, slot).CopyTo(values);
                break;
        }
        return values;
    }

    private void WriteSlot(ZChunk c, int slot, ReadOnlySpan<float> values)
    {
        switch (_states.TierOf(c.State))
        {
            case Tier.Device:
                var view = StateView(c, slot);
                _device.CopyFromHost(System.Runtime.InteropServices.MemoryMarshal.AsBytes(values), view.Buffer, view.OffsetBytes);
                break;
            case Tier.Host:
                values.CopyTo(HostSlot(c, slot));
                break;
            default:
                WriteNvmeSlot(c, slot, values);
                break;
        }
    }
}
