using System.Runtime.InteropServices;

namespace Hal.Memory;

// Legend: moves go device <-> host <-> NVMe; device <-> NVMe passes through a staging host block that is not
// counted against the host tier (it lives only for the move) but is counted as traffic on both legs.

public sealed partial class ChunkStore
{
    /// <summary>
    /// Moves <paramref name="chunk"/>'s payload to <paramref name="tier"/> (nothing to do if it is there). The bytes
    /// arrive unchanged; the source payload is freed once the copy is complete. Only a chunk whose tensors are all
    /// <see cref="TensorState.Hold"/> or <see cref="TensorState.Free"/> may move (<see cref="Chunk.CanMove"/>).
    /// </summary>
    /// <exception cref="InvalidOperationException">a tensor of the chunk is in use, or the store has no device tier.</exception>
    /// <exception cref="TierFullException">the destination tier's limit would be exceeded; the chunk stays where it was.</exception>
    /// <exception cref="OutOfDeviceMemoryException">the device's allocator refused the payload; the chunk stays where it was.</exception>
    /// <exception cref="NvmeDiskFullException">the disk under the NVMe tier is full; the chunk stays where it was.</exception>
    public async Task MoveAsync(Chunk chunk, Tier tier)
    {
        var entry = Get(chunk);
        var busy = chunk.Tensors.FirstOrDefault(t => t.State is not (TensorState.Hold or TensorState.Free));
        if (busy is not null)
        {
            throw new InvalidOperationException(
                $"{chunk} cannot move to the {tier} tier: tensor '{busy.Name}' is in state {busy.State}; only Hold or Free tensors may move");
        }
        await entry.Gate.WaitAsync().ConfigureAwait(false);
        try
        {
            Tier from = entry.Tier;
            if (from == tier)
            {
                return;
            }
            long size = chunk.SizeInBytes;
            lock (_lock)
            {
                ObjectDisposedException.ThrowIf(_disposed, this);
                Reserve(tier, size);
            }
            try
            {
                await MoveCoreAsync(entry, from, tier).ConfigureAwait(false);
            }
            catch
            {
                lock (_lock)
                {
                    _inUse[(int)tier] -= size;
                }
                throw;
            }
            lock (_lock)
            {
                _inUse[(int)from] -= size;
            }
        }
        finally
        {
            entry.Gate.Release();
        }
    }

    /// <summary>Copies <paramref name="source"/> into <paramref name="chunk"/>'s payload at <paramref name="offsetBytes"/>, in whichever tier it is.</summary>
    /// <exception cref="ArgumentOutOfRangeException">the range lies outside the payload.</exception>
    public async Task WriteAsync(Chunk chunk, long offsetBytes, ReadOnlyMemory<byte> source)
    {
        var entry = Get(chunk);
        CheckRange(chunk, offsetBytes, source.Length);
        await entry.Gate.WaitAsync().ConfigureAwait(false);
        try
        {
            switch (entry.Tier)
            {
                case Tier.Device:
                    _options.Device!.CopyFromHost(source.Span, entry.Device!, offsetBytes);
                    break;
                case Tier.Host:
                    source.Span.CopyTo(HostSpan(entry.Host + (nint)offsetBytes, source.Length));
                    break;
                default:
                    using (var handle = File.OpenHandle(entry.FilePath!, FileMode.Open, FileAccess.Write, FileShare.None, FileOptions.Asynchronous))
                    {
                        await RandomAccess.WriteAsync(handle, source, offsetBytes).ConfigureAwait(false);
                    }
                    break;
            }
        }
        finally
        {
            entry.Gate.Release();
        }
    }

    /// <summary>
    /// The payload of a chunk on the host tier, for in-place work (an optimizer update on host memory). The span is
    /// valid until the chunk is moved or removed; the caller must not move it meanwhile.
    /// </summary>
    /// <exception cref="InvalidOperationException">the chunk is not on the host tier, or its payload is 2 GiB or more.</exception>
    public Span<byte> HostPayload(Chunk chunk)
    {
        var entry = Get(chunk);
        if (entry.Tier != Tier.Host)
        {
            throw new InvalidOperationException($"{chunk} is on the {entry.Tier} tier, not in host memory; move it first");
        }
        if (chunk.SizeInBytes > int.MaxValue)
        {
            throw new InvalidOperationException($"{chunk} is {chunk.SizeInBytes} bytes: a span reaches 2 GiB at most; use ReadAsync/WriteAsync");
        }
        return HostSpan(entry.Host, (int)chunk.SizeInBytes);
    }

    /// <summary>Copies <paramref name="destination"/>.Length bytes of <paramref name="chunk"/>'s payload from <paramref name="offsetBytes"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException">the range lies outside the payload.</exception>
    public async Task ReadAsync(Chunk chunk, long offsetBytes, Memory<byte> destination)
    {
        var entry = Get(chunk);
        CheckRange(chunk, offsetBytes, destination.Length);
        await entry.Gate.WaitAsync().ConfigureAwait(false);
        try
        {
            switch (entry.Tier)
            {
                case Tier.Device:
                    _options.Device!.CopyToHost(entry.Device!, offsetBytes, destination.Span);
                    break;
                case Tier.Host:
                    HostSpan(entry.Host + (nint)offsetBytes, destination.Length).CopyTo(destination.Span);
                    break;
                default:
                    using (var handle = File.OpenHandle(entry.FilePath!, FileMode.Open, FileAccess.Read, FileShare.Read, FileOptions.Asynchronous))
                    {
                        await ReadExactlyAsync(handle, entry.FilePath!, destination, offsetBytes).ConfigureAwait(false);
                    }
                    break;
            }
        }
        finally
        {
            entry.Gate.Release();
        }
    }

    private async Task MoveCoreAsync(Entry entry, Tier from, Tier to)
    {
        long size = entry.Chunk.SizeInBytes;
        switch (from, to)
        {
            case (Tier.Device, Tier.Host):
                entry.Host = AllocateHost(size);
                await CopyDeviceToHostAsync(entry.Device!, entry.Host, size).ConfigureAwait(false);
                break;
            case (Tier.Host, Tier.Device):
                entry.Device = await UploadAsync(entry.Host, size).ConfigureAwait(false);
                break;
            case (Tier.Host, Tier.Nvme):
                await WriteFileAsync(entry, entry.Host).ConfigureAwait(false);
                break;
            case (Tier.Nvme, Tier.Host):
                entry.Host = await ReadFileAsync(entry).ConfigureAwait(false);
                break;
            case (Tier.Device, Tier.Nvme):
                {
                    IntPtr staging = AllocateHost(size);
                    try
                    {
                        await CopyDeviceToHostAsync(entry.Device!, staging, size).ConfigureAwait(false);
                        await WriteFileAsync(entry, staging).ConfigureAwait(false);
                    }
                    finally
                    {
                        FreeHost(staging);
                    }
                    break;
                }
            default: // (Nvme, Device)
                {
                    IntPtr staging = await ReadFileAsync(entry).ConfigureAwait(false);
                    try
                    {
                        entry.Device = await UploadAsync(staging, size).ConfigureAwait(false);
                    }
                    finally
                    {
                        FreeHost(staging);
                    }
                    break;
                }
        }
        // The copy is complete: free the source payload and record the new tier.
        FreeTier(entry, from);
        entry.Tier = to;
    }

    private async Task CopyDeviceToHostAsync(DeviceBuffer buffer, IntPtr host, long size)
    {
        var device = _options.Device!;
        await Task.Run(() =>
        {
            for (long at = 0; at < size; at += PieceBytes)
            {
                int n = (int)Math.Min(PieceBytes, size - at);
                device.CopyToHost(buffer, at, HostSpan(host + (nint)at, n));
            }
        }).ConfigureAwait(false);
        Interlocked.Add(ref _deviceToHost, size);
    }

    /// <summary>Allocates a device buffer and copies the host bytes into it; frees the buffer if the copy fails.</summary>
    private async Task<DeviceBuffer> UploadAsync(IntPtr host, long size)
    {
        var device = _options.Device!;
        var buffer = AllocateDevice(size);
        try
        {
            await Task.Run(() =>
            {
                for (long at = 0; at < size; at += PieceBytes)
                {
                    int n = (int)Math.Min(PieceBytes, size - at);
                    device.CopyFromHost(HostSpan(host + (nint)at, n), buffer, at);
                }
            }).ConfigureAwait(false);
        }
        catch
        {
            buffer.Dispose();
            throw;
        }
        Interlocked.Add(ref _hostToDevice, size);
        return buffer;
    }

    private DeviceBuffer AllocateDevice(long size) =>
        (_options.Device ?? throw new InvalidOperationException("this store has no device tier: ChunkStoreOptions.Device was not set"))
            .Allocator.Allocate(size);

    private void FillDeviceWithZeros(DeviceBuffer buffer)
    {
        var zeros = new byte[(int)Math.Min(buffer.SizeInBytes, 1 << 20)];
        for (long at = 0; at < buffer.SizeInBytes; at += zeros.Length)
        {
            int n = (int)Math.Min(zeros.Length, buffer.SizeInBytes - at);
            _options.Device!.CopyFromHost(zeros.AsSpan(0, n), buffer, at);
        }
    }

    private static void CheckRange(Chunk chunk, long offsetBytes, int length)
    {
        if (offsetBytes < 0 || offsetBytes > chunk.SizeInBytes - length)
        {
            throw new ArgumentOutOfRangeException(nameof(offsetBytes),
                $"bytes [{offsetBytes}, {offsetBytes + length}) lie outside the {chunk.SizeInBytes}-byte payload of {chunk}");
        }
    }

    private static unsafe IntPtr AllocateHost(long size)
    {
        void* p = NativeMemory.AlignedAlloc((nuint)Math.Max(size, 1), 64);
        return p == null ? throw new OutOfMemoryException($"NativeMemory.AlignedAlloc({size}) returned null") : (IntPtr)p;
    }

    private static unsafe void FreeHost(IntPtr p) => NativeMemory.AlignedFree((void*)p);

    private static unsafe void ClearHost(IntPtr p, long size) => NativeMemory.Clear((void*)p, (nuint)size);

    private static unsafe Span<byte> HostSpan(IntPtr p, int length) => new((void*)p, length);

    /// <summary>Frees whatever payload <paramref name="entry"/> has in <paramref name="tier"/>.</summary>
    private static void FreeTier(Entry entry, Tier tier)
    {
        switch (tier)
        {
            case Tier.Device:
                entry.Device?.Dispose();
                entry.Device = null;
                break;
            case Tier.Host:
                if (entry.Host != IntPtr.Zero)
                {
                    FreeHost(entry.Host);
                    entry.Host = IntPtr.Zero;
                }
                break;
            default:
                if (entry.FilePath is not null)
                {
                    File.Delete(entry.FilePath);
                    entry.FilePath = null;
                }
                break;
        }
    }

    private static void FreePayload(Entry entry)
    {
        FreeTier(entry, Tier.Device);
        FreeTier(entry, Tier.Host);
        FreeTier(entry, Tier.Nvme);
    }
}
