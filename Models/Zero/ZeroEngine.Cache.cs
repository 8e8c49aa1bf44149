using System.Runtime.InteropServices;
using Hal.Memory;

namespace Hal.Models.Zero;

// The device cache of gathered parameter chunks and of gradient chunks being accumulated, the warm-up trace and the
// placement plan. Shapes as in ZeroEngine.cs.
public sealed partial class ZeroEngine
{
    /// <summary>Head-room left in the device budget for the allocator's rounding and small temporaries (at most a 32nd of the budget), plus 2% of it.</summary>
    private const long BudgetMarginBytes = 1L << 20;

    private long _capacity;
    private bool _releaseAfterUse;
    private long _peakSeen;
    private long _cacheBytes;
    private long _peakCacheBytes;
    private long _hostToDevice;
    private long _deviceToHost;
    private long _nvmeRead;
    private long _nvmeWritten;
    private long _gathers;
    private long _prefetched;
    private long _clock;
    private bool _tracing;
    private bool _planned;
    private readonly List<(int Chunk, bool Grad)> _trace = [];
    private Dictionary<(int Chunk, bool Grad), List<int>>? _positions;
    private int _cursor;
    private long _nonModelPeak;
    private long _maxInUseBytes;

    /// <summary>What the auto policy decided after the warm-up step (null before, or for other policies).</summary>
    public string? PlanDescription { get; private set; }

    /// <summary>
    /// The device allocator's peak over the run: the warm-up step restarts the allocator's peak counter to measure
    /// intervals, so reports take the larger of this and the allocator's own.
    /// </summary>
    public long PeakDeviceBytes => Math.Max(_peakSeen, _device.Allocator.Stats.PeakBytesInUse);

    private void StartPass()
    {
        _cursor = 0;
        foreach (var c in _chunks)
        {
            c.ReducedThisPass = false;
        }
    }

    /// <summary>Moves every tensor of the chunk to <paramref name="to"/> (nothing when already there); an illegal move throws.</summary>
    private static void MoveUsage(ZChunk c, TensorState to)
    {
        if (c.UsageState == to)
        {
            return;
        }
        foreach (var t in c.Usage.Tensors)
        {
            t.MoveTo(to);
        }
    }

    /// <summary>A use begins: free or held tensors (or, in backward, tensors waiting for their other uses) compute.</summary>
    private static void BeginUse(ZChunk c) => MoveUsage(c, TensorState.Compute);

    /// <summary>A use ends: held (forward) or held after backward until the gradient is reduced.</summary>
    private void EndUse(ZChunk c)
    {
        if (c.ParamUsers == 0 && c.GradUsers == 0 && c.UsageState == TensorState.Compute)
        {
            MoveUsage(c, _backwardLayer >= 0 ? TensorState.HoldAfterBackward : TensorState.Hold);
        }
    }

    private void AcquireParam(ZChunk c)
    {
        BeginEvent(c, grad: false);
        BeginUse(c);
        c.ParamUsers++;
        if (c.Param is null || !c.ParamFresh)
        {
            Fetch(c);
        }
        EndEvent();
    }

    private void ReleaseParam(ZChunk c)
    {
        if (c.ParamUsers <= 0)
        {
            throw new InvalidOperationException($"chunk {c.Index}: parameters released more often than acquired");
        }
        c.ParamUsers--;
        EndUse(c);
        if (c.ParamUsers == 0 && !c.Pinned && (_capacity == 0 || _releaseAfterUse))
        {
            MeasureNonModel();
            FreeParam(c);
            EndEvent();
        }
    }

    private void AcquireGrad(ZChunk c)
    {
        BeginEvent(c, grad: true);
        BeginUse(c);
        c.GradUsers++;
        MaterializeGrad(c);
        EndEvent();
    }

    private void ReleaseGrad(ZChunk c)
    {
        if (c.GradUsers <= 0)
        {
            throw new InvalidOperationException($"chunk {c.Index}: gradients released more often than acquired");
        }
        c.GradUsers--;
        EndUse(c);
        // A tile's gradient is final after its last user's contribution: reduce it now rather than at the layer's
        // end, so that only one gradient tile is resident at a time.
        if (c.GradUsers == 0 && c.TileParam >= 0 && _backwardLayer == c.FinalLayer && !c.ReducedThisPass)
        {
            MeasureNonModel();
            Reduce(c);
            EndEvent();
        }
        else if (c.GradUsers == 0 && c.TileParam >= 0 && _backwardLayer > c.FinalLayer && Options.Offload.Policy != OffloadPolicy.None)
        {
            // Under offload, a tied embedding's tile does not wait on the device for its last contribution: the
            // head's part is reduced into the owners' fp32 shards now and the embedding's part adds to it later.
            // Twice the reduction of this tile instead of holding (or evicting and restoring) its partial gradient.
            MeasureNonModel();
            Reduce(c, final: false);
            EndEvent();
        }
    }

    private void MaterializeGrad(ZChunk c)
    {
        if (c.Grad is not null)
        {
            return;
        }
        c.Grad = Allocate(c.Padded);
        if (c.GradStaged is { } staged)
        {
            _device.CopyFromHost(staged, c.Grad.Buffer, c.Grad.OffsetBytes);
            _hostToDevice += staged.LongLength;
            c.GradStaged = null;
        }
        else
        {
            _ops.Fill(c.Grad, 0);
        }
    }

    /// <summary>Materialises the chunk's parameters on the device: this rank's shard from its master, then all-gather.</summary>
    private void Fetch(ZChunk c)
    {
        c.Param ??= Allocate(c.Padded);
        var shape = new Shape(checked((int)c.Shard));
        if (_dp == 1)
        {
            WriteShardFromMaster(c, c.Param.View(0, shape));
        }
        else
        {
            using var send = _ops.Empty(shape, _compute);
            WriteShardFromMaster(c, send);
            _comm!.AllGather(send, c.Param);
        }
        c.ParamFresh = true;
        _gathers++;
    }

    /// <summary>dst [Shard] (compute dtype, device) = this rank's master shard, rounded.</summary>
    private void WriteShardFromMaster(ZChunk c, Tensor dst)
    {
        var tier = _states.TierOf(c.State);
        if (tier == Tier.Device)
        {
            var master = StateView(c, MasterSlot);
            if (_compute == DType.F32)
            {
                _ops.Copy(master, dst);
            }
            else
            {
                _ops.Cast(master, dst);
            }
            return;
        }
        ReadOnlySpan<float> values = tier == Tier.Host ? HostSlot(c, MasterSlot) : TakeMasterRead(c);
        var bytes = ToComputeBytes(values);
        _device.CopyFromHost(bytes, dst.Buffer, dst.OffsetBytes);
        _hostToDevice += bytes.Length;
    }

    /// <summary>Allocates a cache buffer of <paramref name="elements"/>, evicting what the policy allows first.</summary>
    private Tensor Allocate(long elements)
    {
        long bytes = elements * _computeBytes;
        while (_cacheBytes + bytes > _capacity && EvictOne())
        {
        }
        while (true)
        {
            try
            {
                var t = _ops.Empty(new Shape(checked((int)elements)), _compute);
                _cacheBytes += bytes;
                _peakCacheBytes = Math.Max(_peakCacheBytes, _cacheBytes);
                return t;
            }
            catch (OutOfDeviceMemoryException) when (EvictOne())
            {
                // Evicted one more cached chunk; try again.
            }
        }
    }

    private void FreeParam(ZChunk c)
    {
        if (c.Param is null)
        {
            return;
        }
        c.Param.Dispose();
        c.Param = null;
        c.ParamFresh = false;
        _cacheBytes -= c.ParamBytes(_computeBytes);
        // Without its parameters a held chunk is free; one waiting for the reduction keeps waiting.
        if (c.UsageState == TensorState.Hold)
        {
            MoveUsage(c, TensorState.Free);
        }
    }

    private void FreeGrad(ZChunk c)
    {
        if (c.Grad is null)
        {
            return;
        }
        c.Grad.Dispose();
        c.Grad = null;
        _cacheBytes -= c.ParamBytes(_computeBytes);
    }

    /// <summary>Forgets any gradient contributions (a new step).</summary>
    private void DropGrad(ZChunk c)
    {
        FreeGrad(c);
        c.GradStaged = null;
    }

    /// <summary>
    /// Frees one cached chunk nobody uses now: a stale parameter copy first, else the one whose next use is furthest
    /// away (the warm-up order; least recently used before it exists). A partial gradient is copied to host memory.
    /// </summary>
    private bool EvictOne()
    {
        ZChunk? victim = null;
        bool victimGrad = false;
        long best = long.MinValue;
        foreach (var c in _chunks)
        {
            if (c.Param is not null && c.ParamUsers == 0 && (!c.Pinned || !c.ParamFresh))
            {
                long score = !c.ParamFresh ? long.MaxValue : NextUse(c, grad: false);
                if (score > best)
                {
                    (best, victim, victimGrad) = (score, c, false);
                }
            }
            if (c.Grad is not null && c.GradUsers == 0)
            {
                long score = NextUse(c, grad: true);
                if (score > best)
                {
                    (best, victim, victimGrad) = (score, c, true);
                }
            }
        }
        if (victim is null)
        {
            return false;
        }
        if (victimGrad)
        {
            var staged = new byte[victim.Padded * _computeBytes];
            _device.CopyToHost(victim.Grad!.Buffer, victim.Grad.OffsetBytes, staged);
            _deviceToHost += staged.LongLength;
            victim.GradStaged = staged;
            FreeGrad(victim);
        }
        else
        {
            FreeParam(victim);
        }
        return true;
    }

    /// <summary>A larger number = used later: the next position in the warm-up trace, or how long ago it was last used.</summary>
    private long NextUse(ZChunk c, bool grad)
    {
        if (_positions is not null && _positions.TryGetValue((c.Index, grad), out var at))
        {
            foreach (int p in at)
            {
                if (p >= _cursor)
                {
                    return p - _cursor;
                }
            }
            return at[0] + _trace.Count - _cursor;
        }
        return _clock - c.LastUse;
    }

    private void BeginEvent(ZChunk c, bool grad)
    {
        c.LastUse = ++_clock;
        _cursor++;
        if (_tracing)
        {
            _trace.Add((c.Index, grad));
        }
        MeasureNonModel();
    }

    /// <summary>
    /// Called before the engine changes what it holds: what the allocator peaked at since the engine last changed it,
    /// minus the model states held meanwhile, is what the rest of the step (activations, workspace) needed.
    /// <see cref="EndEvent"/> restarts the peak after the change.
    /// </summary>
    private void MeasureNonModel()
    {
        if (_tracing)
        {
            var stats = _device.Allocator.Stats;
            _nonModelPeak = Math.Max(_nonModelPeak, stats.PeakBytesInUse - _cacheBytes - _states.BytesInUse(Tier.Device));
        }
    }

    private void EndEvent()
    {
        if (_tracing)
        {
            long inUse = _chunks.Sum(c => (c.ParamUsers > 0 && c.Param is not null ? c.ParamBytes(_computeBytes) : 0)
                + (c.GradUsers > 0 && c.Grad is not null ? c.ParamBytes(_computeBytes) : 0));
            _maxInUseBytes = Math.Max(_maxInUseBytes, inUse);
            // The allocator's peak restarts for the next interval; keep the highest one for reports.
            _peakSeen = Math.Max(_peakSeen, _device.Allocator.Stats.PeakBytesInUse);
            _device.Allocator.ResetPeak();
        }
    }

    /// <summary>Initial state placement: none → device; static → the first (1 − O) of the bytes on the device; auto → host until planned.</summary>
    private void PlaceStates()
    {
        var offload = Options.Offload;
        long total = _chunks.Sum(c => c.StateBytes);
        long deviceShare = offload.Policy switch
        {
            OffloadPolicy.None => long.MaxValue,
            OffloadPolicy.Static => (long)((1 - offload.OptimizerFraction) * total),
            _ => 0,
        };
        long offDevice = deviceShare == long.MaxValue ? 0 : total - Math.Min(total, deviceShare);
        if (Options.HostLimitBytes is { } hostLimit && Options.NvmeDirectory is null && offDevice > hostLimit)
        {
            throw new OffloadSpaceException(Tier.Host, offDevice, hostLimit,
                "give --nvme-dir DIR for the states beyond it, raise --host-memory, or keep more on the device (a smaller OPTIM fraction)");
        }
        long placed = 0;
        foreach (var c in _chunks)
        {
            c.State = new Chunk(c.Index, Slots * c.Shard, DType.F32,
            [
                new("master", c.Index, MasterSlot * c.Shard, c.Shard),
                new("grad", c.Index, GradSlot * c.Shard, c.Shard),
                new("exp_avg", c.Index, FirstMomentSlot * c.Shard, c.Shard),
                new("exp_avg_sq", c.Index, SecondMomentSlot * c.Shard, c.Shard),
            ]);
            bool device = placed + c.StateBytes <= deviceShare;
            if (device)
            {
                placed += c.StateBytes;
                _states.AddAsync(c.State, Tier.Device).GetAwaiter().GetResult();
            }
            else
            {
                AddOffDevice(c.State);
            }
        }
        _tracing = offload.Policy == OffloadPolicy.Auto;
    }

    /// <summary>Host memory, or the NVMe directory when the host limit is reached and one was given.</summary>
    private void AddOffDevice(Chunk state)
    {
        try
        {
            _states.AddAsync(state, Tier.Host).GetAwaiter().GetResult();
        }
        catch (TierFullException) when (Options.NvmeDirectory is not null)
        {
            _states.AddAsync(state, Tier.Nvme).GetAwaiter().GetResult();
        }
    }

    /// <summary>Pinned parameter chunks stay on the device between uses: all under stage 2, the first (1 − P) of the bytes under static.</summary>
    private void ChoosePinned()
    {
        var offload = Options.Offload;
        long total = _chunks.Sum(c => c.ParamBytes(_computeBytes));
        long pinnedShare = offload.Policy switch
        {
            OffloadPolicy.None => Options.Stage == 2 ? long.MaxValue : 0,
            OffloadPolicy.Static => (long)((1 - offload.ParameterFraction) * total),
            _ => 0,
        };
        long pinned = 0;
        foreach (var c in _chunks)
        {
            if (pinned + c.ParamBytes(_computeBytes) <= pinnedShare)
            {
                c.Pinned = true;
                pinned += c.ParamBytes(_computeBytes);
            }
        }
    }

    /// <summary>
    /// None and static: no cache limit of the engine's own (the allocator's limit still evicts on demand); stage 3
    /// without offload releases each parameter chunk after its use instead, and gradients stay until reduced.
    /// Auto: nothing cached during the warm-up step, then what the plan leaves.
    /// </summary>
    private long InitialCapacity()
    {
        _releaseAfterUse = Options.Offload.Policy == OffloadPolicy.None && Options.Stage == 3;
        return Options.Offload.Policy == OffloadPolicy.Auto ? 0 : long.MaxValue;
    }

    /// <summary>
    /// After the warm-up step (auto): with the measured non-model peak, move as many state chunks to the device as fit
    /// beside the largest working set, and give the rest of the budget to the cache. Collective-free.
    /// </summary>
    private void PlanAfterWarmup()
    {
        _planned = true;
        if (Options.Offload.Policy != OffloadPolicy.Auto)
        {
            return;
        }
        _tracing = false;
        _positions = [];
        for (int i = 0; i < _trace.Count; i++)
        {
            if (!_positions.TryGetValue(_trace[i], out var list))
            {
                _positions[_trace[i]] = list = [];
            }
            list.Add(i);
        }
        long largest = _chunks.Max(c => c.ParamBytes(_computeBytes));
        if (_device.Allocator.Stats.LimitBytes is not { } limit)
        {
            foreach (var c in _chunks)
            {
                _states.MoveAsync(c.State, Tier.Device).GetAwaiter().GetResult();
            }
            _capacity = long.MaxValue;
            PlanDescription = "offload auto: no device budget, so every optimizer-state chunk moved to the device";
            return;
        }
        long margin = Math.Min(BudgetMarginBytes, limit / 32) + (limit / 50);
        long free = limit - _nonModelPeak - _maxInUseBytes - largest - margin;
        foreach (var c in _chunks)
        {
            if (c.StateBytes <= free && _states.TierOf(c.State) != Tier.Device)
            {
                FreeParam(c);
                _states.MoveAsync(c.State, Tier.Device).GetAwaiter().GetResult();
                free -= c.StateBytes;
            }
        }
        // The chunks one layer needs at once must fit whatever the arithmetic says (the warm-up step ran with them).
        _capacity = Math.Max(_maxInUseBytes, limit - _nonModelPeak - _states.BytesInUse(Tier.Device) - margin);
        int onDevice = _chunks.Count(c => _states.TierOf(c.State) == Tier.Device);
        PlanDescription = string.Create(System.Globalization.CultureInfo.InvariantCulture,
            $"offload auto: the warm-up step needed {Mib(_nonModelPeak)} besides model states and {Mib(_maxInUseBytes)} of chunks in use at once; " +
            $"{onDevice} of {_chunks.Length} optimizer-state chunks ({Mib(_states.BytesInUse(Tier.Device))}) now live on the device, the cache of gathered chunks may take {Mib(_capacity)} of the {Mib(limit)} budget");
    }

    private static string Mib(long bytes) => string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{bytes / (1024.0 * 1024.0):F1} MiB");

    private Tensor StateView(ZChunk c, int slot) =>
        new(_states.DeviceBufferOf(c.State), slot * c.Shard * sizeof(float), new Shape(checked((int)c.Shard)), DType.F32);

    private Span<float> HostSlot(ZChunk c, int slot) =>
        MemoryMarshal.Cast<byte, float>(_states.HostPayload(c.State)).Slice(checked((int)(slot * c.Shard)), checked((int)c.Shard));

    private float[] _nvmeScratch = [];
    private readonly Dictionary<int, Task<float[]>> _masterReads = [];

    /// <summary>
    /// Starts reading the NVMe-resident masters of the chunks <paramref name="layer"/> uses, so the disk works while
    /// the current layer computes; the fetch at that layer's Begin then only waits for what is left.
    /// </summary>
    private void PrefetchLayer(int layer)
    {
        if (layer < 0 || layer >= _layerChunks.Length)
        {
            return;
        }
        foreach (var c in _layerChunks[layer])
        {
            if ((c.Param is null || !c.ParamFresh) && !_masterReads.ContainsKey(c.Index) && _states.TierOf(c.State) == Tier.Nvme)
            {
                _masterReads[c.Index] = ReadMasterAsync(c);
            }
        }
    }

    private async Task<float[]> ReadMasterAsync(ZChunk c)
    {
        var bytes = new byte[c.Shard * sizeof(float)];
        await _states.ReadAsync(c.State, MasterSlot * c.Shard * sizeof(float), bytes).ConfigureAwait(false);
        return [.. MemoryMarshal.Cast<byte, float>(bytes)];
    }

    /// <summary>The masters of an NVMe chunk: from a prefetch under way, or read now.</summary>
    private ReadOnlySpan<float> TakeMasterRead(ZChunk c)
    {
        if (_masterReads.Remove(c.Index, out var pending))
        {
            var values = pending.GetAwaiter().GetResult();
            _nvmeRead += values.LongLength * sizeof(float);
            _prefetched++;
            return values;
        }
        return ReadNvmeSlot(c, MasterSlot);
    }

    /// <summary>Waits for and drops every prefetch (the masters are about to change).</summary>
    private void DropPrefetches()
    {
        foreach (var pending in _masterReads.Values)
        {
            pending.GetAwaiter().GetResult();
        }
        _masterReads.Clear();
    }
    private byte[] _bytesScratch = [];

    /// <summary>Reads one slot of an NVMe state chunk into a scratch array (valid until the next read).</summary>
    private Span<float> ReadNvmeSlot(ZChunk c, int slot)
    {
        int n = checked((int)c.Shard);
        if (_nvmeScratch.Length < n)
        {
            _nvmeScratch = new float[n];
        }
        var bytes = MemoryMarshal.AsBytes(_nvmeScratch.AsSpan(0, n));
        var buffer = new byte[bytes.Length];
        _states.ReadAsync(c.State, slot * c.Shard * sizeof(float), buffer).GetAwaiter().GetResult();
        buffer.CopyTo(bytes);
        _nvmeRead += buffer.Length;
        return _nvmeScratch.AsSpan(0, n);
    }

    private void WriteNvmeSlot(ZChunk c, int slot, ReadOnlySpan<float> values)
    {
        var buffer = MemoryMarshal.AsBytes(values).ToArray();
        _states.WriteAsync(c.State, slot * c.Shard * sizeof(float), buffer).GetAwaiter().GetResult();
        _nvmeWritten += buffer.Length;
    }

    /// <summary>fp32 values as bytes of the compute dtype (a scratch array valid until the next call).</summary>
    private ReadOnlySpan<byte> ToComputeBytes(ReadOnlySpan<float> values)
    {
        if (_compute == DType.F32)
        {
            return MemoryMarshal.AsBytes(values);
        }
        int n = values.Length * _computeBytes;
        if (_bytesScratch.Length < n)
        {
            _bytesScratch = new byte[n];
        }
        var halves = MemoryMarshal.Cast<byte, ushort>(_bytesScratch.AsSpan(0, n));
        for (int i = 0; i < values.Length; i++)
        {
            halves[i] = Numerics.HalfConvert.FloatToBf16(values[i]);
        }
        return _bytesScratch.AsSpan(0, n);
    }

    /// <summary>A device [Shard] tensor of the compute dtype downloaded as fp32 values into <paramref name="dst"/>.</summary>
    private void DownloadAsFloat(Tensor src, Span<float> dst)
    {
        if (_compute == DType.F32)
        {
            _device.CopyToHost(src.Buffer, src.OffsetBytes, MemoryMarshal.AsBytes(dst));
        }
        else
        {
            var raw = new byte[src.SizeInBytes];
            _device.CopyToHost(src.Buffer, src.OffsetBytes, raw);
            var halves = MemoryMarshal.Cast<byte, ushort>(raw);
            for (int i = 0; i < dst.Length; i++)
            {
                dst[i] = Numerics.HalfConvert.Bf16ToFloat(halves[i]);
            }
        }
        _deviceToHost += src.SizeInBytes;
    }
}
