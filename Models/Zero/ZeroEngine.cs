using Hal.Memory;
using Hal.Models.Nn;
using Hal.Models.Optim;
using Hal.Models.Training;

namespace Hal.Models.Zero;

// Legend: a chunk k covers store elements [Start, Start + Count): the whole parameters of one layer, or a row tile of a
// [V, C] vocabulary matrix. Padded = ⌈Count/dp⌉·dp; rank r owns chunk elements [r·Shard, (r+1)·Shard), Shard = Padded/dp.
// Per rank and chunk one state chunk [master | grad | exp_avg | exp_avg_sq], fp32, Shard elements each, on the device,
// in host memory or in an NVMe file. On the device, while in use or cached: the gathered parameters [Padded] and the
// gradient being accumulated [Padded], both in the compute dtype.

/// <summary>
/// ZeRO stages 2 and 3 with heterogeneous placement, chunk by chunk: each rank keeps the fp32 master weights,
/// gradients and AdamW moments of its shard of every chunk (on the device, in host memory or on NVMe); a layer's
/// parameter chunk is gathered onto the device before it computes and released after (stage 3) or kept (stage 2); its
/// gradient chunk is reduce-scattered into the owners' shards when the layer's backward is done; the update runs where
/// each shard lives (the device's fused AdamW, or <see cref="HostOptimizer"/> in host memory). A device budget is kept
/// by evicting the cached chunk whose next use is furthest away (from the order recorded in a warm-up step).
/// </summary>
public sealed partial class ZeroEngine : IParameterBacking, IDisposable
{
    private const int MasterSlot = 0;
    private const int GradSlot = 1;
    private const int FirstMomentSlot = 2;
    private const int SecondMomentSlot = 3;
    private const int Slots = 4;

    private readonly Ops _ops;
    private readonly IDevice _device;
    private readonly ParameterStore _store;
    private readonly ICommunicator? _comm;
    private readonly int _dp;
    private readonly int _rank;
    private readonly DType _compute;
    private readonly int _computeBytes;
    private readonly ChunkStore _states;
    private readonly ZChunk[] _chunks;
    private readonly List<ZChunk>[] _layerChunks;
    private readonly ZChunk?[] _chunkOfParam;
    private readonly TileSet?[] _tilesOfParam;
    private int _backwardLayer = -1;
    private ChunkTraffic _trafficAtStart;
    private bool _disposed;

    /// <summary>
    /// Lays the store's declared parameters out in chunks and creates this rank's state chunks (masters zero until
    /// <see cref="Initialize"/>). Collective over <paramref name="dpGroup"/> when given.
    /// </summary>
    /// <param name="ops">This rank's device.</param>
    /// <param name="store">The declared (not allocated) parameters; attach the engine to it (the model does).</param>
    /// <param name="tiledParameters">Names of [V, C] parameters reached by row tiles (the token embedding, an untied LM head).</param>
    /// <param name="extraUsers">For a parameter used by more layers than its own (a tied embedding): name → the other layers.</param>
    /// <param name="dpGroup">The data-parallel ranks that shard the states; null: one rank.</param>
    /// <param name="computeDType">F32 or BF16 (the states are fp32).</param>
    /// <param name="options">Stage, placement and optimizer.</param>
    /// <exception cref="ArgumentException">an optimizer other than AdamW, or an unsupported dtype.</exception>
    /// <exception cref="OffloadSpaceException">the states meant for host memory exceed its limit and no NVMe directory was given.</exception>
    /// <exception cref="NvmeDiskFullException">the disk under the NVMe directory is full.</exception>
    public ZeroEngine(Ops ops, ParameterStore store, IReadOnlyCollection<string> tiledParameters, IReadOnlyDictionary<string, int[]> extraUsers,
        ICommunicator? dpGroup, DType computeDType, ZeroEngineOptions options)
    {
        ArgumentNullException.ThrowIfNull(ops);
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(tiledParameters);
        ArgumentNullException.ThrowIfNull(extraUsers);
        ArgumentNullException.ThrowIfNull(options);
        if (options.Optimizer.Kind != OptimizerKind.AdamW)
        {
            throw new ArgumentException($"ZeRO stages 2/3 and offload update with AdamW (the hybrid device/host optimizer); {options.Optimizer.Kind} needs --zero 0 or 1", nameof(options));
        }
        if (computeDType is not (DType.F32 or DType.BF16))
        {
            throw new ArgumentException($"ZeRO stages 2/3 and offload compute in fp32 or bf16, not {computeDType.Name()}", nameof(computeDType));
        }
        _ops = ops;
        _device = ops.Device;
        _store = store;
        _comm = dpGroup;
        _dp = dpGroup?.Size ?? 1;
        _rank = dpGroup?.Rank ?? 0;
        _compute = computeDType;
        _computeBytes = computeDType.SizeInBytes();
        Options = options;
        int layers = store.Infos.Max(i => i.Layer) + 1;
        _layerChunks = [.. Enumerable.Range(0, layers).Select(_ => new List<ZChunk>())];
        _chunkOfParam = new ZChunk?[store.Infos.Count];
        _tilesOfParam = new TileSet?[store.Infos.Count];
        _chunks = [.. Plan(store, tiledParameters, extraUsers)];
        _states = new ChunkStore(new ChunkStoreOptions
        {
            Device = _device,
            HostLimitBytes = options.HostLimitBytes,
            NvmeDirectory = options.NvmeDirectory,
            NvmeFileOpener = options.NvmeFileOpener,
        });
        try
        {
            PlaceStates();
            // Creating the state chunks (zero-filled) is not traffic between tiers.
            _trafficAtStart = _states.Traffic;
            ChoosePinned();
            _capacity = InitialCapacity();
        }
        catch
        {
            _states.Dispose();
            throw;
        }
    }

    /// <summary>The options the engine was built with.</summary>
    public ZeroEngineOptions Options { get; }

    /// <summary>Number of chunks (per rank: one shard of each).</summary>
    public int ChunkCount => _chunks.Length;

    /// <summary>The usage state of each chunk's tensors, in chunk order.</summary>
    public IReadOnlyList<TensorState> ChunkStates => [.. _chunks.Select(c => c.UsageState)];

    /// <inheritdoc/>
    public Tensor Param(int index)
    {
        var c = _chunkOfParam[index] ?? throw new InvalidOperationException($"parameter '{_store.Infos[index].Name}' is reached by row tiles, not whole");
        if (c.Param is null || !c.ParamFresh || c.ParamUsers == 0)
        {
            throw new InvalidOperationException($"parameter '{_store.Infos[index].Name}' is used outside a Begin/End of its layer {_store.Infos[index].Layer}");
        }
        var info = _store.Infos[index];
        return c.Param.View(info.Offset - c.Start, info.Shape);
    }

    /// <inheritdoc/>
    public Tensor Grad(int index)
    {
        var c = _chunkOfParam[index] ?? throw new InvalidOperationException($"parameter '{_store.Infos[index].Name}' is reached by row tiles, not whole");
        if (c.Grad is null || c.GradUsers == 0)
        {
            throw new InvalidOperationException($"gradient of '{_store.Infos[index].Name}' is used outside BeginBackward/EndBackward of its layer {_store.Infos[index].Layer}");
        }
        var info = _store.Infos[index];
        return c.Grad.View(info.Offset - c.Start, info.Shape);
    }

    /// <inheritdoc/>
    public Tensor ParamRange(long offset, Shape shape)
    {
        var c = ChunkAt(offset, shape);
        if (c.Param is null || !c.ParamFresh || c.ParamUsers == 0)
        {
            throw new InvalidOperationException($"parameters at slab element {offset} are used outside a Begin/End of their layer {c.Users[0]}");
        }
        return c.Param.View(offset - c.Start, shape);
    }

    /// <inheritdoc/>
    public Tensor GradRange(long offset, Shape shape)
    {
        var c = ChunkAt(offset, shape);
        if (c.Grad is null || c.GradUsers == 0)
        {
            throw new InvalidOperationException($"gradients at slab element {offset} are used outside BeginBackward/EndBackward of their layer {c.Users[0]}");
        }
        return c.Grad.View(offset - c.Start, shape);
    }

    /// <summary>The layer chunk that holds slab elements [offset, offset + n).</summary>
    private ZChunk ChunkAt(long offset, Shape shape)
    {
        foreach (var c in _chunks)
        {
            if (c.TileParam < 0 && offset >= c.Start && offset + shape.ElementCount <= c.Start + c.Count)
            {
                return c;
            }
        }
        throw new ArgumentOutOfRangeException(nameof(offset), $"slab elements [{offset}, {offset + shape.ElementCount}) are not inside one layer's chunk");
    }

    /// <inheritdoc/>
    public IRowTileSource? RowTiles(int index) => _tilesOfParam[index];

    /// <inheritdoc/>
    public void BeginForward(int layer)
    {
        if (layer == 0)
        {
            StartPass();
        }
        foreach (var c in _layerChunks[layer])
        {
            AcquireParam(c);
        }
        PrefetchLayer(layer + 1);
    }

    /// <inheritdoc/>
    public void EndForward(int layer)
    {
        foreach (var c in _layerChunks[layer])
        {
            ReleaseParam(c);
        }
    }

    /// <inheritdoc/>
    public void BeginBackward(int layer)
    {
        _backwardLayer = layer;
        foreach (var c in _layerChunks[layer])
        {
            AcquireParam(c);
            AcquireGrad(c);
        }
        PrefetchLayer(layer - 1);
    }

    /// <inheritdoc/>
    public void EndBackward(int layer)
    {
        foreach (var c in _layerChunks[layer])
        {
            ReleaseParam(c);
            ReleaseGrad(c);
        }
        // Every chunk whose last user this layer was is reduced now, in chunk order on every rank (a rank whose batch
        // touched no row of a tile still joins that tile's reduce-scatter with zeros).
        foreach (var c in _chunks)
        {
            if (c.FinalLayer == layer && !c.ReducedThisPass)
            {
                MeasureNonModel();
                Reduce(c);
                EndEvent();
            }
        }
        _backwardLayer = -1;
    }

    /// <inheritdoc/>
    public void ZeroGrads()
    {
        foreach (var c in _chunks)
        {
            c.FirstReduce = true;
            DropGrad(c);
        }
    }

    /// <summary>Bytes per tier and traffic so far (this rank).</summary>
    public ZeroMemoryStats Stats
    {
        get
        {
            var now = _states.Traffic;
            var traffic = new ChunkTraffic(now.DeviceToHostBytes - _trafficAtStart.DeviceToHostBytes, now.HostToDeviceBytes - _trafficAtStart.HostToDeviceBytes,
                now.HostToNvmeBytes - _trafficAtStart.HostToNvmeBytes, now.NvmeToHostBytes - _trafficAtStart.NvmeToHostBytes);
            long staged = _chunks.Sum(c => c.GradStaged?.LongLength ?? 0);
            return new ZeroMemoryStats(_states.BytesInUse(Tier.Device), _states.BytesInUse(Tier.Host) + staged, _states.BytesInUse(Tier.Nvme),
                _peakCacheBytes, _hostToDevice + traffic.HostToDeviceBytes, _deviceToHost + traffic.DeviceToHostBytes,
                traffic.HostToNvmeBytes + traffic.NvmeToHostBytes + _nvmeRead + _nvmeWritten, _gathers);
        }
    }

    /// <summary>Parameter fetches whose NVMe read was started while the previous layer computed.</summary>
    public long PrefetchedReads => _prefetched;

    /// <summary>Bytes of every rank-local model state: state chunks on all tiers plus the device cache now.</summary>
    public long ModelStateBytes => _states.BytesInUse(Tier.Device) + _states.BytesInUse(Tier.Host) + _states.BytesInUse(Tier.Nvme) + _cacheBytes;

    /// <summary>Frees the device cache and every state chunk (and its NVMe files).</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }
        _disposed = true;
        DropPrefetches();
        foreach (var c in _chunks)
        {
            c.Param?.Dispose();
            c.Param = null;
            c.Grad?.Dispose();
            c.Grad = null;
        }
        _states.Dispose();
    }

    /// <summary>Per-chunk bookkeeping.</summary>
    private sealed class ZChunk(int index, long start, long count, int dp)
    {
        public int Index { get; } = index;

        public long Start { get; } = start;

        public long Count { get; } = count;

        public long Shard { get; } = (count + dp - 1) / dp;

        public long Padded => Shard * _ranks;

        private readonly int _ranks = dp;

        /// <summary>Layers that use the chunk, lowest first; the lowest is the last one in backward.</summary>
        public List<int> Users { get; } = [];

        public int FinalLayer => Users.Min();

        /// <summary>Parameter index of a row tile (−1 for a layer chunk), its first row and rows.</summary>
        public int TileParam { get; init; } = -1;

        public int TileRowStart { get; init; }

        public int TileRows { get; init; }

        /// <summary>Runs of this rank's shard that share a decay setting: (offset in the shard, length, decay).</summary>
        public List<(long Offset, long Length, bool Decay)> Runs { get; } = [];

        public Chunk State { get; set; } = null!;

        /// <summary>The chunk's parameters as Memory tensors whose states (free, compute, hold, hold-after-backward, ready-for-reduce) follow the legal transitions.</summary>
        public Chunk Usage { get; set; } = null!;

        /// <summary>The state every tensor of <see cref="Usage"/> is in (they move together: a chunk is gathered, used and reduced whole).</summary>
        public TensorState UsageState => Usage.Tensors[0].State;

        public Tensor? Param { get; set; }

        public bool ParamFresh { get; set; }

        public int ParamUsers { get; set; }

        public bool Pinned { get; set; }

        public Tensor? Grad { get; set; }

        public byte[]? GradStaged { get; set; }

        public int GradUsers { get; set; }

        public bool FirstReduce { get; set; } = true;

        public bool ReducedThisPass { get; set; }

        public long LastUse { get; set; }

        public long ParamBytes(int computeBytes) => Padded * computeBytes;

        public long StateBytes => Slots * Shard * sizeof(float);
    }

    /// <summary>The row tiles of one [V, C] parameter, each tile a chunk.</summary>
    private sealed class TileSet(ZeroEngine engine, ParameterInfo info, ZChunk[] tiles) : IRowTileSource
    {
        public int Rows => info.Shape[0];

        public int Columns => info.Shape[1];

        public int TileCount => tiles.Length;

        public (int Start, int Count) TileRows(int tile) => (tiles[tile].TileRowStart, tiles[tile].TileRows);

        public Tensor AcquireParam(int tile)
        {
            var c = tiles[tile];
            engine.AcquireParam(c);
            return c.Param!.View(0, new Shape(c.TileRows, Columns));
        }

        public void ReleaseParam(int tile) => engine.ReleaseParam(tiles[tile]);

        public Tensor AcquireGrad(int tile)
        {
            var c = tiles[tile];
            engine.AcquireGrad(c);
            return c.Grad!.View(0, new Shape(c.TileRows, Columns));
        }

        public void ReleaseGrad(int tile) => engine.ReleaseGrad(tiles[tile]);
    }

    /// <summary>
    /// Chunks in declaration order: the non-tiled parameters of each layer form one chunk (a layer gathers once);
    /// a tiled [V, C] parameter is cut into row tiles of about <see cref="ZeroEngineOptions.DefaultTileBytes"/>.
    /// </summary>
    private IEnumerable<ZChunk> Plan(ParameterStore store, IReadOnlyCollection<string> tiled, IReadOnlyDictionary<string, int[]> extraUsers)
    {
        var chunks = new List<ZChunk>();
        ZChunk? open = null;
        var openParams = new List<int>();
        void Close()
        {
            if (open is null)
            {
                return;
            }
            foreach (int i in openParams)
            {
                _chunkOfParam[i] = open;
            }
            BuildRuns(open, [.. openParams.Select(i => (store.Infos[i].Offset - open.Start, store.Infos[i].ElementCount, store.Infos[i].Decay))]);
            open.Usage = new Chunk(open.Index, open.Padded, _compute,
                openParams.Select(i => new TensorPlacement(store.Infos[i].Name, open.Index, store.Infos[i].Offset - open.Start, store.Infos[i].ElementCount)));
            foreach (int layer in open.Users)
            {
                _layerChunks[layer].Add(open);
            }
            chunks.Add(open);
            open = null;
            openParams.Clear();
        }
        for (int i = 0; i < store.Infos.Count; i++)
        {
            var info = store.Infos[i];
            // Vocabulary tiles exist to fit a device budget beside offloaded states; without offload the matrix is an
            // ordinary chunk of its layer (shared with the head's layer when tied), and the whole-matrix head needs
            // no logits recomputed in backward.
            if (tiled.Contains(info.Name) && Options.Offload.Policy != OffloadPolicy.None)
            {
                Close();
                if (info.Shape.Rank != 2)
                {
                    throw new ArgumentException($"parameter '{info.Name}' is tiled by rows but is not a matrix ({info.Shape})", nameof(tiled));
                }
                int rows = info.Shape[0], columns = info.Shape[1];
                long tileBytes = ZeroEngineOptions.DefaultTileBytes;
                if (_device.Allocator.Stats.LimitBytes is { } limit)
                {
                    tileBytes = Math.Min(tileBytes, limit / 16);
                }
                int tileRows = Options.TileRows > 0 ? Options.TileRows : (int)Math.Clamp(tileBytes / ((long)columns * _computeBytes), 1, rows);
                var tiles = new List<ZChunk>();
                for (int r = 0; r < rows; r += tileRows)
                {
                    int n = Math.Min(tileRows, rows - r);
                    var tile = new ZChunk(chunks.Count, info.Offset + ((long)r * columns), (long)n * columns, _dp)
                    {
                        TileParam = i,
                        TileRowStart = r,
                        TileRows = n,
                    };
                    tile.Users.Add(info.Layer);
                    if (extraUsers.TryGetValue(info.Name, out var more))
                    {
                        tile.Users.AddRange(more);
                    }
                    BuildRuns(tile, [(0, tile.Count, info.Decay)]);
                    tile.Usage = new Chunk(tile.Index, tile.Padded, _compute, [new TensorPlacement($"{info.Name}[{r}:{r + n}]", tile.Index, 0, tile.Count)]);
                    chunks.Add(tile);
                    tiles.Add(tile);
                }
                _tilesOfParam[i] = new TileSet(this, info, [.. tiles]);
                continue;
            }
            if (open is not null && open.Users[0] != info.Layer)
            {
                Close();
            }
            if (open is null)
            {
                bool Tiles(ParameterInfo x) => tiled.Contains(x.Name) && Options.Offload.Policy != OffloadPolicy.None;
                long count = store.Infos.Skip(i).TakeWhile(x => x.Layer == info.Layer && !Tiles(x)).Sum(x => x.ElementCount);
                open = new ZChunk(chunks.Count, info.Offset, count, _dp);
                open.Users.Add(info.Layer);
            }
            if (extraUsers.TryGetValue(info.Name, out var sharedWith))
            {
                // A tied embedding's layer chunk is also gathered for the head's layer and reduced after its last use.
                open.Users.AddRange(sharedWith.Where(l => !open.Users.Contains(l)));
            }
            openParams.Add(i);
        }
        Close();
        return chunks;
    }

    /// <summary>This rank's shard [r·Shard, (r+1)·Shard) of a chunk cut into runs of one decay setting (padding excluded).</summary>
    private void BuildRuns(ZChunk c, IEnumerable<(long Offset, long Length, bool Decay)> tensors)
    {
        long shardStart = _rank * c.Shard, shardEnd = shardStart + c.Shard;
        foreach (var (offset, length, decay) in tensors)
        {
            long from = Math.Max(offset, shardStart), to = Math.Min(offset + length, shardEnd);
            if (to <= from)
            {
                continue;
            }
            if (c.Runs.Count > 0 && c.Runs[^1].Decay == decay && c.Runs[^1].Offset + c.Runs[^1].Length == from - shardStart)
            {
                var last = c.Runs[^1];
                c.Runs[^1] = (last.Offset, last.Length + (to - from), decay);
            }
            else
            {
                c.Runs.Add((from - shardStart, to - from, decay));
            }
        }
    }
}
