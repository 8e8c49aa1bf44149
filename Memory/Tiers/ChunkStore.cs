namespace Hal.Memory;

// Legend: one payload of chunk.SizeInBytes bytes per chunk, in exactly one tier at a time:
// Device (a DeviceBuffer), Host (native aligned bytes) or Nvme (the file <dir>/chunk-<serial>.bin).

/// <summary>
/// Owns the payloads of chunks and moves them between the device, host memory and NVMe files. Each tier has an
/// optional byte limit; moves of different chunks run concurrently, moves of one chunk one at a time. Disposing the
/// store frees every payload and removes its NVMe directory.
/// </summary>
public sealed partial class ChunkStore : IDisposable
{
    /// <summary>Bytes copied per piece: spans and file writes stay below 2 GiB whatever the chunk size.</summary>
    private const int PieceBytes = 1 << 30;

    private readonly Lock _lock = new();
    private readonly Dictionary<Chunk, Entry> _entries = [];
    private readonly long[] _inUse = new long[3];
    private readonly long?[] _limits;
    private readonly ChunkStoreOptions _options;
    private readonly string _nvmeDirectory;
    private long _nextSerial;
    private long _deviceToHost;
    private long _hostToDevice;
    private long _hostToNvme;
    private long _nvmeToHost;
    private bool _disposed;

    /// <summary>Creates an empty store.</summary>
    public ChunkStore(ChunkStoreOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options;
        _limits = [options.DeviceLimitBytes, options.HostLimitBytes, options.NvmeLimitBytes];
        string parent = options.NvmeDirectory ?? Path.GetTempPath();
        _nvmeDirectory = Path.Combine(parent, $"hal-chunks-{Environment.ProcessId}-{Guid.NewGuid():N}");
    }

    /// <summary>The directory that holds this store's NVMe files (created on first use, removed on dispose).</summary>
    public string NvmeDirectory => _nvmeDirectory;

    /// <summary>Bytes moved per direction so far.</summary>
    public ChunkTraffic Traffic => new(
        Interlocked.Read(ref _deviceToHost), Interlocked.Read(ref _hostToDevice),
        Interlocked.Read(ref _hostToNvme), Interlocked.Read(ref _nvmeToHost));

    /// <summary>Bytes of chunk payloads held in <paramref name="tier"/> (including moves under way into it).</summary>
    public long BytesInUse(Tier tier)
    {
        lock (_lock)
        {
            return _inUse[(int)tier];
        }
    }

    /// <summary>The byte limit of <paramref name="tier"/>, or null for none.</summary>
    public long? LimitBytes(Tier tier) => _limits[(int)tier];

    /// <summary>The tier that holds <paramref name="chunk"/>'s payload now.</summary>
    /// <exception cref="KeyNotFoundException">the chunk is not in this store.</exception>
    public Tier TierOf(Chunk chunk) => Get(chunk).Tier;

    /// <summary>True when <paramref name="chunk"/> is in this store.</summary>
    public bool Contains(Chunk chunk)
    {
        lock (_lock)
        {
            return _entries.ContainsKey(chunk);
        }
    }

    /// <summary>The device buffer that holds <paramref name="chunk"/>'s payload, for kernels to use.</summary>
    /// <exception cref="InvalidOperationException">the chunk is not on the device tier.</exception>
    public DeviceBuffer DeviceBufferOf(Chunk chunk)
    {
        var e = Get(chunk);
        return e.Tier == Tier.Device && e.Device is not null
            ? e.Device
            : throw new InvalidOperationException($"{chunk} is on the {e.Tier} tier, not on the device; move it first");
    }

    /// <summary>Adds <paramref name="chunk"/> with a zero-filled payload in <paramref name="tier"/>.</summary>
    /// <exception cref="ArgumentException">the chunk is already in the store.</exception>
    /// <exception cref="TierFullException">the tier's limit would be exceeded.</exception>
    /// <exception cref="OutOfDeviceMemoryException">the device's allocator refused the payload.</exception>
    /// <exception cref="NvmeDiskFullException">the disk under the NVMe tier is full.</exception>
    public async Task AddAsync(Chunk chunk, Tier tier)
    {
        ArgumentNullException.ThrowIfNull(chunk);
        Entry entry;
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_entries.ContainsKey(chunk))
            {
                throw new ArgumentException($"{chunk} is already in the store", nameof(chunk));
            }
            entry = new Entry(chunk, _nextSerial++) { Tier = tier };
            Reserve(tier, chunk.SizeInBytes);
            // Hold the new entry's gate before it is visible, so no move or read sees it without its payload.
            entry.Gate.Wait(0);
            _entries.Add(chunk, entry);
        }
        try
        {
            switch (tier)
            {
                case Tier.Device:
                    entry.Device = AllocateDevice(chunk.SizeInBytes);
                    FillDeviceWithZeros(entry.Device);
                    break;
                case Tier.Host:
                    entry.Host = AllocateHost(chunk.SizeInBytes);
                    ClearHost(entry.Host, chunk.SizeInBytes);
                    break;
                default:
                    await CreateZeroFileAsync(entry).ConfigureAwait(false);
                    break;
            }
        }
        catch
        {
            lock (_lock)
            {
                _entries.Remove(chunk);
                _inUse[(int)tier] -= chunk.SizeInBytes;
            }
            FreePayload(entry);
            throw;
        }
        finally
        {
            entry.Gate.Release();
        }
    }

    /// <summary>Frees <paramref name="chunk"/>'s payload and forgets it; unknown chunks are ignored.</summary>
    public void Remove(Chunk chunk)
    {
        ArgumentNullException.ThrowIfNull(chunk);
        Entry? entry;
        lock (_lock)
        {
            if (!_entries.Remove(chunk, out entry))
            {
                return;
            }
        }
        entry.Gate.Wait();
        try
        {
            lock (_lock)
            {
                _inUse[(int)entry.Tier] -= chunk.SizeInBytes;
            }
            FreePayload(entry);
        }
        finally
        {
            entry.Gate.Release();
        }
    }

    /// <summary>Frees every payload and removes the NVMe directory with its files.</summary>
    public void Dispose()
    {
        Entry[] entries;
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }
            _disposed = true;
            entries = [.. _entries.Values];
            _entries.Clear();
            Array.Clear(_inUse);
        }
        foreach (var e in entries)
        {
            e.Gate.Wait();
            FreePayload(e);
            e.Gate.Release();
        }
        if (Directory.Exists(_nvmeDirectory))
        {
            Directory.Delete(_nvmeDirectory, recursive: true);
        }
    }

    private Entry Get(Chunk chunk)
    {
        ArgumentNullException.ThrowIfNull(chunk);
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return _entries.TryGetValue(chunk, out var e) ? e : throw new KeyNotFoundException($"{chunk} is not in this store");
        }
    }

    /// <summary>Counts <paramref name="bytes"/> against <paramref name="tier"/>'s limit; the caller holds the lock.</summary>
    private void Reserve(Tier tier, long bytes)
    {
        if (tier == Tier.Device && _options.Device is null)
        {
            throw new InvalidOperationException("this store has no device tier: ChunkStoreOptions.Device was not set");
        }
        long limit = _limits[(int)tier] ?? long.MaxValue;
        long inUse = _inUse[(int)tier];
        if (bytes > limit - inUse)
        {
            throw new TierFullException(tier, bytes, inUse, limit);
        }
        _inUse[(int)tier] = inUse + bytes;
    }

    /// <summary>One chunk's payload and where it is; <see cref="Gate"/> serialises moves of this chunk.</summary>
    private sealed class Entry(Chunk chunk, long serial)
    {
        public Chunk Chunk { get; } = chunk;

        public long Serial { get; } = serial;

        public SemaphoreSlim Gate { get; } = new(1, 1);

        public Tier Tier { get; set; }

        public DeviceBuffer? Device { get; set; }

        public IntPtr Host { get; set; }

        public string? FilePath { get; set; }
    }
}
