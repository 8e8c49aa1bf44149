using static Hal.Backends.OpenCL.Tests.OpenClTestKit;

namespace Hal.Backends.OpenCL.Tests;

// Discovery, the allocator's bucketed cache and out-of-memory error, streams and events, error types.
public class DeviceTests
{
    [OpenClFact]
    public void ProbeListsDevicesWithIdsInOrder()
    {
        var probe = new OpenClBackend().Probe();
        Assert.True(probe.Available, probe.Reason);
        for (int i = 0; i < probe.Devices.Count; i++)
        {
            Assert.Equal(new DeviceId("opencl", i), probe.Devices[i].Id);
            Assert.Contains(DType.F32, probe.Devices[i].DTypes);
        }
        Assert.Throws<ArgumentOutOfRangeException>(() => new OpenClBackend().Open(probe.Devices.Count));
    }

    [Fact]
    public void BucketsRoundUpWithBoundedSlack()
    {
        Assert.Equal(256, OpenClAllocator.BucketBytes(0));
        Assert.Equal(256, OpenClAllocator.BucketBytes(256));
        Assert.Equal(512, OpenClAllocator.BucketBytes(257));
        Assert.Equal(1L << 20, OpenClAllocator.BucketBytes((1L << 20) - 1));
        foreach (long size in new long[] { (1L << 20) + 1, 3_000_000, 123_456_789, 1L << 33 })
        {
            long bucket = OpenClAllocator.BucketBytes(size);
            // Above 1 MiB buckets are eighths of the next power of two: at most 25% slack.
            Assert.True(bucket >= size && bucket <= size * 1.25 + 1, $"size {size} → bucket {bucket}");
        }
    }

    [OpenClFact]
    public void FreedBlocksAreReusedAndStatsCountRequestedBytes()
    {
        using var device = new OpenClBackend().Open(0);
        var cl = (OpenClDevice)device;
        var a = device.Allocator.Allocate(1000);
        Assert.Equal(1000, device.Allocator.Stats.BytesInUse);
        a.Dispose();
        Assert.Equal((1, 1024L), cl.CachedBlocks);
        var b = device.Allocator.Allocate(900);
        // 900 bytes fall in the same 1024-byte bucket: the cached block is taken.
        Assert.Equal((0, 0L), cl.CachedBlocks);
        Assert.Equal(900, device.Allocator.Stats.BytesInUse);
        b.Dispose();
        var empty = device.Allocator.Allocate(0);
        Assert.Equal(0, empty.SizeInBytes);
        empty.Dispose();
    }

    [OpenClFact]
    public void AllocationPastTheLimitIsTypedOutOfMemory()
    {
        using var device = new OpenClBackend(new OpenClBackendOptions { DeviceMemoryBytes = 1 << 20 }).Open(0);
        var e = Assert.Throws<OutOfDeviceMemoryException>(() => device.Allocator.Allocate(2 << 20));
        Assert.Equal(2 << 20, e.BytesRequested);
        Assert.Equal(1 << 20, e.LimitBytes);
        var e2 = Assert.Throws<OutOfDeviceMemoryException>(() => device.Allocator.Allocate(device.Capabilities.MemoryBytes + 1));
        Assert.Equal(device.Capabilities.MemoryBytes + 1, e2.BytesRequested);
    }

    [OpenClFact]
    public void EventsCompleteAndStreamsWaitOnThem()
    {
        var ops = ClOps;
        var x = ops.Empty(new Shape(4096));
        ops.RandomUniform(x, 1);
        using var evt = ops.Device.DefaultStream.RecordEvent();
        ops.Device.DefaultStream.Wait(evt);
        evt.Synchronize();
        Assert.True(evt.IsCompleted);
        Assert.True(ops.Device.Capabilities.IsAsync);
        Assert.InRange(ops.ToDoubleArray(x).Max(), 0.9, 1.0);
    }

    [OpenClFact]
    public void DisposedDeviceRejectsUseAndFreesBuffers()
    {
        var device = new OpenClBackend().Open(0);
        var ops = new Ops(device);
        var t = ops.Full(new Shape(16), 2);
        device.Dispose();
        Assert.True(t.Buffer.IsDisposed);
        Assert.Throws<ObjectDisposedException>(() => ops.Empty(new Shape(1)));
    }

    [Fact]
    public void StatusCodesHaveNamesAndOperations()
    {
        var e = new OpenClException(-5, "queuing kernel 'gemm'");
        Assert.Equal("CL_OUT_OF_RESOURCES", e.StatusName);
        Assert.Contains("CL_OUT_OF_RESOURCES (-5) while queuing kernel 'gemm'", e.Message);
        Assert.IsAssignableFrom<HalException>(e);
        Assert.Equal("CL_UNKNOWN_ERROR(-9999)", OpenClException.NameOf(-9999));
        Assert.Throws<OpenClException>(() => OpenClException.Check(-11, "building"));
    }

    [OpenClFact]
    public void BuildFailureCarriesTheCompilerLog()
    {
        var device = (OpenClDevice)new OpenClBackend().Open(0);
        using (device)
        {
            // A dtype macro the prelude does not know makes the prelude's #error fire.
            var e = Assert.Throws<OpenClException>(() => device.Programs.Kernel("elementwise.cl", "-DDT_NOPE", "unary"));
            Assert.Equal("CL_BUILD_PROGRAM_FAILURE", e.StatusName);
            Assert.Contains("build log", e.Message);
            Assert.Contains("-DDT_", e.Message);
        }
    }

    [OpenClFact]
    public void F32DenormalsAreKeptOrFlushedAsDocumented()
    {
        // PoCL on x86 keeps F32 subnormals (docs/backends/opencl.md); other devices may flush them to zero.
        var x = ClOps.FromArray(new double[] { 1e-39, 2e-40 }, new Shape(2));
        var y = ClOps.Empty(new Shape(2));
        ClOps.Binary(BinaryOp.Add, x, x, y);
        var r = ClOps.ToDoubleArray(y);
        bool kept = Math.Abs(r[0] - (float)2e-39) < 1e-45 && Math.Abs(r[1] - (float)4e-40) < 1e-45;
        bool flushed = r[0] == 0 && r[1] == 0;
        Assert.True(kept || flushed, $"subnormal sum gave {r[0]}, {r[1]}");
        if (ClOps.Device.Capabilities.Name.Contains("Portable Computing Language", StringComparison.Ordinal))
        {
            Assert.True(kept, $"PoCL flushed subnormals: {r[0]}, {r[1]}");
        }
    }
}

// The probe's reason when no ICD loader can be loaded (a library name that does not exist stands for a machine
// without ocl-icd-libopencl1). The no-platform and no-device reasons are checked through `hal devices` with
// OCL_ICD_VENDORS pointing at an empty folder and POCL_DEVICES=none (docs/backends/opencl.md).
public class LoaderTests
{
    [Fact]
    public void MissingLoaderGivesItsOwnReason()
    {
        var (api, reason) = OpenClRuntime.Load(["libHalNoSuchOpenCL.so.1"]);
        Assert.Null(api);
        Assert.Contains("no OpenCL ICD loader", reason);
        Assert.Contains("ocl-icd-libopencl1", reason);
    }
}
