using Hal.Numerics;

namespace Hal.Backends.Cpu.Tests;

/// <summary>A CPU device, its Ops entry and its fused kernels, plus helpers shared by the Fused*Tests.</summary>
public sealed class FusedFixture : IDisposable
{
    public FusedFixture()
    {
        // Three workers on a 2-core machine: chunks of unequal size and more chunks than cores both get exercised.
        Device = new CpuBackend(new CpuBackendOptions { Threads = 3 }).Open(0);
        Ops = new Ops(Device);
        Kernels = (IFusedKernels)Device.Kernels;
    }

    public IDevice Device { get; }

    public Ops Ops { get; }

    public IFusedKernels Kernels { get; }

    public void Dispose() => Device.Dispose();
}

internal static class FusedTestSupport
{
    /// <summary>Uniform values in [lo, hi) from a seeded generator.</summary>
    internal static double[] RandomArray(int seed, long count, double lo = -2, double hi = 2)
    {
        var rng = new Random(seed);
        var a = new double[count];
        for (long i = 0; i < count; i++)
        {
            a[i] = lo + ((hi - lo) * rng.NextDouble());
        }
        return a;
    }

    /// <summary>The values as they are after a round trip through <paramref name="dtype"/> (what the kernel sees).</summary>
    internal static double[] Quantize(double[] values, DType dtype) => dtype switch
    {
        DType.F32 => Array.ConvertAll(values, v => (double)(float)v),
        DType.BF16 => Array.ConvertAll(values, v => (double)HalfConvert.RoundToBf16((float)v)),
        DType.F16 => Array.ConvertAll(values, v => (double)HalfConvert.RoundToF16((float)v)),
        _ => (double[])values.Clone(),
    };

    /// <summary>Asserts |actual − expected| ≤ atol + rtol·|expected| element-wise (NaN must match NaN).</summary>
    internal static void AssertClose(double[] expected, double[] actual, double rtol, double atol, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
        {
            double e = expected[i], a = actual[i];
            if (double.IsNaN(e) || double.IsNaN(a))
            {
                Assert.True(double.IsNaN(e) && double.IsNaN(a), $"{what}: element {i}: expected {e}, got {a}");
                continue;
            }
            if (double.IsInfinity(e))
            {
                Assert.True(e == a, $"{what}: element {i}: expected {e}, got {a}");
                continue;
            }
            double err = Math.Abs(a - e);
            Assert.True(err <= atol + (rtol * Math.Abs(e)), $"{what}: element {i}: expected {e:R}, got {a:R}, error {err:E3} > {atol:E1} + {rtol:E1}·|e|");
        }
    }

    /// <summary>Central finite-difference gradient of a scalar function.</summary>
    internal static double[] NumericGradient(Func<double[], double> f, double[] x, double h)
    {
        var g = new double[x.Length];
        for (int i = 0; i < x.Length; i++)
        {
            double keep = x[i];
            x[i] = keep + h;
            double up = f(x);
            x[i] = keep - h;
            double down = f(x);
            x[i] = keep;
            g[i] = (up - down) / (2 * h);
        }
        return g;
    }

    /// <summary>Σ w·y.</summary>
    internal static double Weighted(double[] w, double[] y)
    {
        double s = 0;
        for (int i = 0; i < y.Length; i++)
        {
            s += w[i] * y[i];
        }
        return s;
    }

    /// <summary>Machine epsilon of the dtype the kernel computes in (F32 for 16-bit) plus the output rounding.</summary>
    internal static double ComputeEpsilon(DType dtype) => dtype == DType.F64 ? Math.Pow(2, -52) : Math.Pow(2, -23);

    /// <summary>Half an ULP of the storage dtype: the rounding of the stored result.</summary>
    internal static double StorageRounding(DType dtype) => dtype.Epsilon() / 2;
}
