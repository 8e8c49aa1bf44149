using Hal.Backends.Cpu;

namespace Hal.Backends.Cpu.Tests;

/// <summary>A cpu device and its ops for one test class; helpers for references and ULP distances.</summary>
public sealed class CpuFixture : IDisposable
{
    public CpuFixture()
    {
        Device = new CpuBackend(new CpuBackendOptions { Threads = 2 }).Open(0);
        Ops = new Ops(Device);
    }

    public IDevice Device { get; }

    public Ops Ops { get; }

    public void Dispose() => Device.Dispose();
}

internal static class Kit
{
    /// <summary>Sizes around the vector widths (8 F32 lanes, 4×8 unrolled) plus one past the parallel threshold.</summary>
    public static readonly int[] Sizes = [0, 1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 40_000];

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

    /// <summary>The value rounded to the dtype (one element).</summary>
    public static double Round(double v, DType dtype) => Representable([v], dtype)[0];

    /// <summary>Distance in units of the dtype's last place at the reference, |got − want| / ulp(want).</summary>
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
        return Math.Abs(got - want) / Ulp(want, dtype);
    }

    /// <summary>The spacing of the dtype's values at |v| (subnormal spacing below the normal range).</summary>
    public static double Ulp(double v, DType dtype)
    {
        (int mant, int minExp) = dtype switch
        {
            DType.F64 => (52, -1022),
            DType.F32 => (23, -126),
            DType.F16 => (10, -14),
            _ => (7, -126),
        };
        double a = Math.Abs(v);
        int e = a == 0 ? minExp : Math.Max(minExp, Math.ILogB(a));
        return Math.ScaleB(1.0, e - mant);
    }

    public static bool SameValue(double a, double b) => (double.IsNaN(a) && double.IsNaN(b)) || a == b;
}
