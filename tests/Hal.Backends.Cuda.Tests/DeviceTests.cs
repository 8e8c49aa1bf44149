using Hal.Backends.Cuda.Native;

namespace Hal.Backends.Cuda.Tests;

/// <summary>Probe, errors and the caching allocator.</summary>
[Collection(EmulatorCollection.Name)]
public sealed class DeviceTests(EmulatorFixture fx)
{
    [Fact]
    public void ProbeWithoutADriverSaysSoAndOpenRaisesTheReason()
    {
        var backend = new CudaBackend();
        var probe = backend.Probe();
        if (CudaDriver.Query().Problem is { } problem)
        {
            // This machine has no usable driver (the CI case): the probe must carry the driver's own reason.
            Assert.False(probe.Available);
            Assert.Equal(problem, probe.Reason);
            Assert.Empty(probe.Devices);
            var e = Assert.Throws<BackendUnavailableException>(() => backend.Open(0));
            Assert.Equal("cuda", e.Backend);
            Assert.Equal(problem, e.Reason);
        }
        else
        {
            Assert.True(probe.Available, probe.Reason);
            Assert.NotEmpty(probe.Devices);
            Assert.Equal("cuda:0", probe.Devices[0].Id.ToString());
        }
    }

    [Fact]
    public void LibraryDescriptionNamesEachMissingLibraryWithItsOwnReason()
    {
        string line = CudaBackend.DescribeLibraries();
        Assert.Contains(Cublas.TryLocate(out _) ? "cuBLAS /" : "cuBLAS not found", line);
        Assert.Contains(NcclNative.TryLocate(out _) ? "NCCL " : "NCCL not found", line);
    }

    [Fact]
    public void CudaExceptionCarriesTheStatusName()
    {
        var e = Assert.Throws<CudaException>(() => Cublas.Check(13, "cublasGemmEx"));
        Assert.Equal("CUBLAS_STATUS_EXECUTION_FAILED", e.StatusName);
        Assert.Equal(13, e.Status);
        Assert.Contains("CUBLAS_STATUS_EXECUTION_FAILED", e.Message);
        Assert.IsAssignableFrom<HalException>(e);
    }

    [Theory]
    [InlineData(0, 512)]
    [InlineData(1, 512)]
    [InlineData(513, 1024)]
    [InlineData(1 << 20, 1 << 20)]
    [InlineData((1 << 20) + 1, 2 << 20)]
    [InlineData((5 << 20) + 7, 6 << 20)]
    public void BucketsRoundUpToPowersOfTwoThenTo2MiB(long request, long bucket) => Assert.Equal(bucket, CudaAllocator.BucketBytes(request));

    [Fact]
    public void FreedBlocksAreReusedAndEmptyCacheReleasesThem()
    {
        var allocator = fx.Device.CachingAllocator;
        allocator.EmptyCache();
        var before = allocator.CacheStats;
        var a = allocator.Allocate(3000);
        a.Dispose();
        Assert.Equal(4096, allocator.CacheStats.BytesCached);
        var b = allocator.Allocate(4000);
        var after = allocator.CacheStats;
        Assert.Equal(before.CacheHits + 1, after.CacheHits);
        Assert.Equal(before.DeviceAllocations + 1, after.DeviceAllocations);
        Assert.Equal(0, after.BytesCached);
        b.Dispose();
        allocator.EmptyCache();
        Assert.Equal(0, allocator.CacheStats.BytesCached);
        Assert.Equal(0, allocator.CacheStats.BlocksCached);
    }

    [Fact]
    public void AllocationBeyondTheLimitRaisesTheTypedErrorWithNumbers()
    {
        var allocator = fx.Device.Allocator;
        long? old = allocator.LimitBytes;
        try
        {
            allocator.LimitBytes = allocator.Stats.BytesInUse + 1000;
            var e = Assert.Throws<OutOfDeviceMemoryException>(() => allocator.Allocate(5000));
            Assert.Equal(5000, e.BytesRequested);
            Assert.Equal("cuda:0", e.Device.ToString());
        }
        finally
        {
            allocator.LimitBytes = old;
        }
    }

    [Fact]
    public void CopiesRoundTripAtOffsets()
    {
        using var buffer = fx.Device.Allocator.Allocate(64);
        byte[] data = [.. Enumerable.Range(0, 40).Select(i => (byte)(i * 7))];
        fx.Device.CopyFromHost(data, buffer, 8);
        using var other = fx.Device.Allocator.Allocate(64);
        fx.Device.CopyDeviceToDevice(buffer, 8, other, 16, 40);
        var back = new byte[40];
        fx.Device.CopyToHost(other, 16, back);
        Assert.Equal(data, back);
    }
}

/// <summary>The library search honours HAL_CUDA_LIBRARY_PATH and the pip layout's folder names.</summary>
/// <remarks>In the emulator collection so that no other test of this assembly runs while the environment is changed.</remarks>
[Collection(EmulatorCollection.Name)]
public sealed class LibrarySearchTests
{
    [Fact]
    public void ExtraFoldersComeFirstAndPipFoldersAreSearchedForCublasAndNccl()
    {
        string? old = Environment.GetEnvironmentVariable(CudaLibraries.PathVariable);
        string? oldVenv = Environment.GetEnvironmentVariable("VIRTUAL_ENV");
        string venv = Path.Combine(Path.GetTempPath(), "hal-venv-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path.Combine(venv, "lib", "python3.12"));
        try
        {
            Environment.SetEnvironmentVariable(CudaLibraries.PathVariable, "/first/a:/first/b");
            Environment.SetEnvironmentVariable("VIRTUAL_ENV", venv);
            var cublas = CudaLibraries.SearchFolders("cublas").ToList();
            Assert.Equal(["/first/a", "/first/b"], cublas.Take(2));
            Assert.Contains(Path.Combine(venv, "lib", "python3.12", "site-packages", "nvidia", "cublas", "lib"), cublas);
            Assert.Contains(CudaLibraries.SearchFolders("nccl"), d => d.EndsWith("/nvidia/nccl/lib", StringComparison.Ordinal));
            // The driver comes with the kernel module, never from a wheel.
            Assert.DoesNotContain(CudaLibraries.SearchFolders("driver"), d => d.Contains("/nvidia/", StringComparison.Ordinal));
        }
        finally
        {
            Environment.SetEnvironmentVariable(CudaLibraries.PathVariable, old);
            Environment.SetEnvironmentVariable("VIRTUAL_ENV", oldVenv);
            Directory.Delete(venv, recursive: true);
        }
    }
}
