namespace Hal.Backends.Cpu.Tests;

public sealed class CpuDeviceTests
{
    [Fact]
    public void ExceedingTheDeviceLimitRaisesWithItsNumbers()
    {
        using var device = new CpuBackend(new CpuBackendOptions { DeviceMemoryBytes = 1 << 20 }).Open(0);
        var ops = new Ops(device);
        using var held = ops.Empty(new Shape(200_000)); // 800 000 bytes
        var e = Assert.Throws<OutOfDeviceMemoryException>(() => ops.Empty(new Shape(100_000)));
        Assert.Equal(400_000, e.BytesRequested);
        Assert.Equal(800_000, e.BytesInUse);
        Assert.Equal(1 << 20, e.LimitBytes);
        Assert.Equal("cpu:0", e.Device.ToString());
        Assert.Contains("400000", e.Message);
    }

    [Fact]
    public void AllocatorCountsBytesInUsePeakAndAllocations()
    {
        using var device = new CpuBackend().Open(0);
        var ops = new Ops(device);
        var a = ops.Empty(new Shape(100));
        var b = ops.Empty(new Shape(50), DType.F64);
        var s = device.Allocator.Stats;
        Assert.Equal(800, s.BytesInUse);
        Assert.Equal(800, s.PeakBytesInUse);
        Assert.Equal(2, s.AllocationCount);
        a.Dispose();
        a.Dispose();
        s = device.Allocator.Stats;
        Assert.Equal(400, s.BytesInUse);
        Assert.Equal(800, s.PeakBytesInUse);
        device.Allocator.ResetPeak();
        Assert.Equal(400, device.Allocator.Stats.PeakBytesInUse);
        b.Dispose();
        Assert.Equal(0, device.Allocator.Stats.BytesInUse);
    }

    [Fact]
    public void DisposingTheDeviceFreesEveryLiveBuffer()
    {
        var device = new CpuBackend().Open(0);
        var ops = new Ops(device);
        var tensors = Enumerable.Range(1, 5).Select(i => ops.Empty(new Shape(i * 10))).ToArray();
        Assert.Equal(5 * 6 / 2 * 40, device.Allocator.Stats.BytesInUse);
        device.Dispose();
        Assert.Equal(0, device.Allocator.Stats.BytesInUse);
        Assert.All(tensors, t => Assert.True(t.Buffer.IsDisposed));
    }

    [Fact]
    public void KernelsGiveTheSameResultsSingleThreaded()
    {
        using var one = new CpuBackend(new CpuBackendOptions { Threads = 1 }).Open(0);
        using var two = new CpuBackend(new CpuBackendOptions { Threads = 2 }).Open(0);
        double[] Run(IDevice d)
        {
            var ops = new Ops(d);
            using var x = ops.FromArray(Kit.Random(3, 100_000, -1, 1), new Shape(100_000));
            using var y = ops.Empty(new Shape(100_000));
            using var s = ops.Empty(new Shape(1));
            ops.Unary(UnaryOp.Tanh, x, y);
            ops.Binary(BinaryOp.Mul, y, x, y);
            ops.Reduce(ReduceOp.Max, y, 0, s);
            return [.. ops.ToDoubleArray(y).Take(1000), .. ops.ToDoubleArray(s)];
        }
        Assert.Equal(Run(one), Run(two));
    }
}
