using Hal.Backends.Cpu;

namespace Hal.Backends.Cuda.Tests;

/// <summary>
/// The CUDA backend's kernels on ILGPU's CPU emulator (one device for a whole test collection: kernels compile once),
/// plus the CPU backend as a peer for agreement checks. Emulator cases stay tiny: it runs each thread as host code.
/// </summary>
public sealed class EmulatorFixture : IDisposable
{
    public EmulatorFixture()
    {
        Device = (CudaDevice)new CudaBackend(new CudaBackendOptions { UseCpuEmulator = true }).Open(0);
        Ops = new Ops(Device);
        Cpu = new CpuBackend(new CpuBackendOptions { Threads = 1 }).Open(0);
        CpuOps = new Ops(Cpu);
    }

    public CudaDevice Device { get; }

    public Ops Ops { get; }

    public IDevice Cpu { get; }

    public Ops CpuOps { get; }

    public void Dispose()
    {
        Device.Dispose();
        Cpu.Dispose();
    }
}

/// <summary>All emulator tests share one device.</summary>
[CollectionDefinition(Name)]
public sealed class EmulatorCollection : ICollectionFixture<EmulatorFixture>
{
    public const string Name = "cuda emulator";
}

internal static class Kit
{
    /// <summary>Sizes around a warp (32) and the row kernels' group sizes, kept tiny for the emulator.</summary>
    public static readonly int[] Sizes = [0, 1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65];

    public static double[] Random(int seed, int n, double lo, double hi)
    {
        var rng = new Random(seed);
        var v = new double[n];
        for (int i = 0; i < n; i++)
        {
            v[i] = lo + ((hi - lo) * rng.NextDouble());
        }
        return v;
    }

    /// <summary>Values rounded to what <paramref name="dtype"/> stores, so references start from the same inputs.</summary>
    public static double[] Representable(double[] v, DType dtype)
    {
        var bytes = new byte[v.Length * dtype.SizeInBytes()];
        Numerics.HostConvert.FromDoubles(v, dtype, bytes);
        var r = new double[v.Length];
        Numerics.HostConvert.ToDoubles(bytes, dtype, r);
        return r;
    }

    /// <summary>|got − want| in units of the dtype's last place at want (NaN matches NaN, infinities must be equal).</summary>
    public static double Ulps(double got, double want, DType dtype)
    {
        if (double.IsNaN(want))
        {
            return double.IsNaN(got) ? 0 : double.PositiveInfinity;
        }
        if (double.IsInfinity(want) || double.IsInfinity(got))
        {
            return got == want ? 0 : double.PositiveInfinity;
        }
        (int mant, int minExp) = dtype switch
        {
            DType.F64 => (52, -1022),
            DType.F32 => (23, -126),
            DType.F16 => (10, -14),
            _ => (7, -126),
        };
        double a = Math.Abs(want);
        int e = a == 0 ? minExp : Math.Max(minExp, Math.ILogB(a));
        return Math.Abs(got - want) / Math.ScaleB(1.0, e - mant);
    }

    /// <summary>Bitwise-equal doubles, NaN equal to NaN, −0 distinct from +0.</summary>
    public static bool Same(double a, double b) => (double.IsNaN(a) && double.IsNaN(b)) || BitConverter.DoubleToInt64Bits(a) == BitConverter.DoubleToInt64Bits(b);

    public static readonly DType[] FloatTypes = [DType.F32, DType.F64, DType.F16, DType.BF16];
}
