using Hal.Backends.Cpu;
using Hal.Memory;
using Microsoft.Win32.SafeHandles;

namespace Hal.Memory.Tests;

// Legend: a chunk of N elements of F32 has a payload of 4·N bytes; tests fill payloads with seeded random bytes
// and check them byte for byte after moves (every assertion on contents is exact).
public sealed class TierStoreTests : IDisposable
{
    private readonly IDevice _device = new CpuBackend().Open(0);
    private readonly string _root = Directory.CreateTempSubdirectory("hal-memory-tests-").FullName;

    public void Dispose()
    {
        _device.Dispose();
        Directory.Delete(_root, recursive: true);
    }

    private ChunkStore NewStore(long? deviceLimit = null, long? hostLimit = null, long? nvmeLimit = null,
        IDevice? device = null, Func<string, SafeFileHandle>? opener = null) =>
        new(new ChunkStoreOptions
        {
            Device = device ?? _device,
            DeviceLimitBytes = deviceLimit,
            HostLimitBytes = hostLimit,
            NvmeLimitBytes = nvmeLimit,
            NvmeDirectory = _root,
            NvmeFileOpener = opener,
        });

    private static Chunk NewChunk(int index, long elements) =>
        new(index, elements, DType.F32, [new TensorPlacement($"w{index}", index, 0, elements)]);

    private static byte[] RandomBytes(int seed, long count)
    {
        var bytes = new byte[count];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    private static async Task<byte[]> ReadAll(ChunkStore store, Chunk chunk)
    {
        var bytes = new byte[chunk.SizeInBytes];
        await store.ReadAsync(chunk, 0, bytes);
        return bytes;
    }

    private static void AssertSameBytes(byte[] expected, byte[] actual, string context)
    {
        Assert.Equal(expected.Length, actual.Length);
        int at = expected.AsSpan().CommonPrefixLength(actual);
        Assert.True(at == expected.Length, $"{context}: first difference at byte {at} of {expected.Length}");
    }

    [Theory]
    [InlineData(Tier.Device)]
    [InlineData(Tier.Host)]
    [InlineData(Tier.Nvme)]
    public async Task Add_GivesAZeroFilledPayloadInTheTier(Tier tier)
    {
        using var store = NewStore();
        var chunk = NewChunk(0, 33);

        await store.AddAsync(chunk, tier);

        Assert.Equal(tier, store.TierOf(chunk));
        Assert.Equal(132, store.BytesInUse(tier));
        Assert.All(await ReadAll(store, chunk), b => Assert.Equal(0, b));
        Assert.Equal(default, store.Traffic);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(17)]
    [InlineData(1025)]
    [InlineData(65537)]
    public async Task Moves_InEveryDirection_KeepThePayloadExactly_AndCountTheTraffic(long elements)
    {
        int seed = 7000 + (int)elements;
        using var store = NewStore();
        var chunk = NewChunk(0, elements);
        byte[] payload = RandomBytes(seed, chunk.SizeInBytes);
        await store.AddAsync(chunk, Tier.Host);
        await store.WriteAsync(chunk, 0, payload);

        // Host→Device→Host→Nvme→Host→Nvme→Device→Nvme→Device→Host: each of the six directions at least once.
        Tier[] path = [Tier.Device, Tier.Host, Tier.Nvme, Tier.Host, Tier.Nvme, Tier.Device, Tier.Nvme, Tier.Device, Tier.Host];
        foreach (var tier in path)
        {
            await store.MoveAsync(chunk, tier);
            Assert.Equal(tier, store.TierOf(chunk));
            AssertSameBytes(payload, await ReadAll(store, chunk), $"seed {seed}, after the move to {tier}");
            foreach (var t in Enum.GetValues<Tier>())
            {
                Assert.Equal(t == tier ? chunk.SizeInBytes : 0, store.BytesInUse(t));
            }
        }

        // Device↔Nvme passes through the host and counts both legs. The moves, with what each counts:
        // H→D (h2d), D→H (d2h), H→N (h2n), N→H (n2h), H→N (h2n), N→D (n2h, h2d), D→N (d2h, h2n), N→D (n2h, h2d), D→H (d2h).
        long s = chunk.SizeInBytes;
        Assert.Equal(new ChunkTraffic(DeviceToHostBytes: 3 * s, HostToDeviceBytes: 3 * s, HostToNvmeBytes: 3 * s, NvmeToHostBytes: 3 * s), store.Traffic);
    }

    [Fact]
    public async Task ConcurrentMoves_OfDifferentChunks_KeepEveryPayloadExactly()
    {
        const int Seed = 4242;
        using var store = NewStore();
        var chunks = Enumerable.Range(0, 12).Select(i => NewChunk(i, 4096 + i * 17)).ToArray();
        var payloads = chunks.Select(c => RandomBytes(Seed + c.Index, c.SizeInBytes)).ToArray();
        Tier[] starts = [Tier.Device, Tier.Host, Tier.Nvme];
        for (int i = 0; i < chunks.Length; i++)
        {
            await store.AddAsync(chunks[i], starts[i % 3]);
            await store.WriteAsync(chunks[i], 0, payloads[i]);
        }

        for (int round = 0; round < 4; round++)
        {
            int r = round;
            await Task.WhenAll(chunks.Select(c => store.MoveAsync(c, starts[(c.Index + r + 1) % 3])));
            for (int i = 0; i < chunks.Length; i++)
            {
                Assert.Equal(starts[(i + r + 1) % 3], store.TierOf(chunks[i]));
                AssertSameBytes(payloads[i], await ReadAll(store, chunks[i]), $"seed {Seed + i}, round {round}");
            }
        }
        Assert.Equal(chunks.Sum(c => c.SizeInBytes), Enum.GetValues<Tier>().Sum(store.BytesInUse));
    }

    [Fact]
    public async Task ConcurrentMoves_OfOneChunk_RunOneAtATime_AndEndInOneTier()
    {
        const int Seed = 31;
        using var store = NewStore();
        var chunk = NewChunk(0, 10000);
        byte[] payload = RandomBytes(Seed, chunk.SizeInBytes);
        await store.AddAsync(chunk, Tier.Host);
        await store.WriteAsync(chunk, 0, payload);

        await Task.WhenAll(Enumerable.Range(0, 9).Select(i => store.MoveAsync(chunk, (Tier)(i % 3))));

        Assert.Equal(chunk.SizeInBytes, Enum.GetValues<Tier>().Sum(store.BytesInUse));
        Assert.Equal(chunk.SizeInBytes, store.BytesInUse(store.TierOf(chunk)));
        AssertSameBytes(payload, await ReadAll(store, chunk), $"seed {Seed}");
    }

    [Fact]
    public async Task AFullTier_RaisesWithTheNumbers_AndTheChunkStaysWhereItWas()
    {
        const int Seed = 5;
        using var store = NewStore(hostLimit: 1000, nvmeLimit: 800);
        var a = NewChunk(0, 200); // 800 bytes
        var b = NewChunk(1, 100); // 400 bytes
        await store.AddAsync(a, Tier.Host);
        byte[] payload = RandomBytes(Seed, b.SizeInBytes);
        await store.AddAsync(b, Tier.Device);
        await store.WriteAsync(b, 0, payload);

        var e = await Assert.ThrowsAsync<TierFullException>(() => store.MoveAsync(b, Tier.Host));
        Assert.Equal((Tier.Host, 400L, 800L, 1000L), (e.Tier, e.BytesRequested, e.BytesInUse, e.LimitBytes));
        Assert.Contains("Host", e.Message);
        Assert.Equal(Tier.Device, store.TierOf(b));
        Assert.Equal(800, store.BytesInUse(Tier.Host));
        AssertSameBytes(payload, await ReadAll(store, b), $"seed {Seed}");

        var add = await Assert.ThrowsAsync<TierFullException>(() => store.AddAsync(NewChunk(2, 51), Tier.Host));
        Assert.Equal((Tier.Host, 204L, 800L), (add.Tier, add.BytesRequested, add.BytesInUse));

        await store.MoveAsync(a, Tier.Nvme);
        var nvme = await Assert.ThrowsAsync<TierFullException>(() => store.MoveAsync(b, Tier.Nvme));
        Assert.Equal((Tier.Nvme, 400L, 800L, 800L), (nvme.Tier, nvme.BytesRequested, nvme.BytesInUse, nvme.LimitBytes));
        await store.MoveAsync(b, Tier.Host);
        Assert.Equal(400, store.BytesInUse(Tier.Host));
    }

    [Fact]
    public async Task ConcurrentMovesIntoATierWithRoomForSome_ExactlyThatManySucceed_AndTheCountsAgree()
    {
        const int Seed = 606;
        using var store = NewStore(deviceLimit: 3 * 4000);
        var chunks = Enumerable.Range(0, 8).Select(i => NewChunk(i, 1000)).ToArray(); // 4000 bytes each
        var payloads = chunks.Select(c => RandomBytes(Seed + c.Index, c.SizeInBytes)).ToArray();
        for (int i = 0; i < chunks.Length; i++)
        {
            await store.AddAsync(chunks[i], i % 2 == 0 ? Tier.Host : Tier.Nvme);
            await store.WriteAsync(chunks[i], 0, payloads[i]);
        }

        var moves = chunks.Select(c => store.MoveAsync(c, Tier.Device)).ToArray();
        try
        {
            await Task.WhenAll(moves);
        }
        catch (TierFullException)
        {
            // Expected for the chunks that found the tier full; each task is checked below.
        }

        Assert.Equal(3, moves.Count(m => m.IsCompletedSuccessfully));
        Assert.All(moves.Where(m => !m.IsCompletedSuccessfully), m => Assert.IsType<TierFullException>(m.Exception!.InnerException));
        Assert.Equal(12000, store.BytesInUse(Tier.Device));
        Assert.Equal(3, chunks.Count(c => store.TierOf(c) == Tier.Device));
        Assert.Equal(32000, Enum.GetValues<Tier>().Sum(store.BytesInUse));
        for (int i = 0; i < chunks.Length; i++)
        {
            AssertSameBytes(payloads[i], await ReadAll(store, chunks[i]), $"seed {Seed + i}, in {store.TierOf(chunks[i])}");
        }
    }

    [Fact]
    public async Task TheDeviceAllocatorsLimit_RaisesOutOfDeviceMemory_AndTheChunkStaysOnTheHost()
    {
        using var small = new CpuBackend(new CpuBackendOptions { DeviceMemoryBytes = 1024 }).Open(0);
        using var store = NewStore(device: small);
        var chunk = NewChunk(0, 300); // 1200 bytes
        await store.AddAsync(chunk, Tier.Host);

        var e = await Assert.ThrowsAsync<OutOfDeviceMemoryException>(() => store.MoveAsync(chunk, Tier.Device));

        Assert.Equal(1200, e.BytesRequested);
        Assert.Equal(Tier.Host, store.TierOf(chunk));
        Assert.Equal(0, store.BytesInUse(Tier.Device));
        Assert.Equal(0, small.Allocator.Stats.BytesInUse);
    }

    [Fact]
    public async Task AChunkInUse_CannotMove()
    {
        using var store = NewStore();
        var chunk = new Chunk(0, 8, DType.F32, [new("q", 0, 0, 4), new("k", 0, 4, 4)]);
        await store.AddAsync(chunk, Tier.Device);
        chunk["k"].MoveTo(TensorState.Compute);

        var e = await Assert.ThrowsAsync<InvalidOperationException>(() => store.MoveAsync(chunk, Tier.Host));

        Assert.Contains("'k'", e.Message);
        Assert.Contains("Compute", e.Message);
        Assert.Equal(Tier.Device, store.TierOf(chunk));
        chunk["k"].MoveTo(TensorState.Hold);
        await store.MoveAsync(chunk, Tier.Host);
        Assert.Equal(Tier.Host, store.TierOf(chunk));
    }

    [Fact]
    public async Task AFullDisk_RaisesNvmeDiskFull_LeavesNoFile_AndTheChunkStaysOnTheHost()
    {
        // /dev/full accepts opens and fails every write with ENOSPC: a disk that is full. Linux only.
        if (!File.Exists("/dev/full"))
        {
            Assert.True(ChunkStore.IsDiskFull(new IOException("no space", 28)));
            return;
        }
        const int Seed = 8;
        using var store = NewStore(opener: _ => File.OpenHandle("/dev/full", FileMode.Open, FileAccess.Write, FileShare.ReadWrite, FileOptions.Asynchronous));
        var chunk = NewChunk(0, 64);
        byte[] payload = RandomBytes(Seed, chunk.SizeInBytes);
        await store.AddAsync(chunk, Tier.Host);
        await store.WriteAsync(chunk, 0, payload);

        var e = await Assert.ThrowsAsync<NvmeDiskFullException>(() => store.MoveAsync(chunk, Tier.Nvme));

        Assert.Equal(256, e.BytesRequested);
        Assert.StartsWith(store.NvmeDirectory, e.Path);
        Assert.IsAssignableFrom<IOException>(e.InnerException);
        Assert.Equal(Tier.Host, store.TierOf(chunk));
        Assert.Equal(0, store.BytesInUse(Tier.Nvme));
        Assert.Empty(Directory.GetFiles(store.NvmeDirectory));
        AssertSameBytes(payload, await ReadAll(store, chunk), $"seed {Seed}");
    }

    [Fact]
    public void IsDiskFull_RecognisesEnospcAndWindowsDiskFull_Only()
    {
        Assert.True(ChunkStore.IsDiskFull(new IOException("x", 28)));
        Assert.True(ChunkStore.IsDiskFull(new IOException("x", unchecked((int)0x80070070))));
        Assert.False(ChunkStore.IsDiskFull(new IOException("x", 5)));
    }

    [Fact]
    public async Task Dispose_RemovesTheNvmeFiles_AndFreesDeviceMemory()
    {
        var store = NewStore();
        var chunks = Enumerable.Range(0, 3).Select(i => NewChunk(i, 1000)).ToArray();
        await store.AddAsync(chunks[0], Tier.Nvme);
        await store.AddAsync(chunks[1], Tier.Host);
        await store.MoveAsync(chunks[1], Tier.Nvme);
        await store.AddAsync(chunks[2], Tier.Device);
        Assert.Equal(2, Directory.GetFiles(store.NvmeDirectory).Length);
        Assert.Equal(4000, _device.Allocator.Stats.BytesInUse);

        store.Dispose();

        Assert.False(Directory.Exists(store.NvmeDirectory));
        Assert.Equal(0, _device.Allocator.Stats.BytesInUse);
        Assert.Throws<ObjectDisposedException>(() => store.TierOf(chunks[0]));
    }

    [Fact]
    public async Task Remove_FreesThePayloadAndItsFile()
    {
        using var store = NewStore();
        var chunk = NewChunk(0, 100);
        await store.AddAsync(chunk, Tier.Nvme);

        store.Remove(chunk);

        Assert.False(store.Contains(chunk));
        Assert.Equal(0, store.BytesInUse(Tier.Nvme));
        Assert.Empty(Directory.GetFiles(store.NvmeDirectory));
    }

    [Fact]
    public async Task ReadAndWrite_AtAnOffset_InEachTier_AndOutOfRangeRaises()
    {
        const int Seed = 77;
        using var store = NewStore();
        var chunk = NewChunk(0, 64);
        byte[] part = RandomBytes(Seed, 40);
        foreach (var tier in Enum.GetValues<Tier>())
        {
            await store.AddAsync(chunk, tier);
            await store.WriteAsync(chunk, 100, part);
            var back = new byte[40];
            await store.ReadAsync(chunk, 100, back);
            AssertSameBytes(part, back, $"seed {Seed}, tier {tier}");
            Assert.Equal(0, (await ReadAll(store, chunk))[99]);
            await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => store.WriteAsync(chunk, 250, part));
            await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => store.ReadAsync(chunk, -1, back));
            store.Remove(chunk);
        }
    }

    [Fact]
    public async Task AStoreWithoutADevice_RefusesTheDeviceTier_AndDeviceBufferOfNeedsTheDeviceTier()
    {
        using var hostOnly = new ChunkStore(new ChunkStoreOptions { NvmeDirectory = _root });
        var chunk = NewChunk(0, 8);
        await hostOnly.AddAsync(chunk, Tier.Host);

        await Assert.ThrowsAsync<InvalidOperationException>(() => hostOnly.MoveAsync(chunk, Tier.Device));
        Assert.Throws<InvalidOperationException>(() => hostOnly.DeviceBufferOf(chunk));
        Assert.Equal(Tier.Host, hostOnly.TierOf(chunk));

        using var store = NewStore();
        await store.AddAsync(chunk, Tier.Device);
        Assert.Equal(32, store.DeviceBufferOf(chunk).SizeInBytes);
        await Assert.ThrowsAsync<ArgumentException>(() => store.AddAsync(chunk, Tier.Host));
    }
}
