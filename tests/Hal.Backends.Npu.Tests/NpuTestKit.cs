using Hal.Backends.Cpu;
using Hal.Numerics;

namespace Hal.Backends.Npu.Tests;

/// <summary>
/// One npu:0 (CPU provider) device and one cpu:0 device shared by every test, so that each kernel graph is compiled
/// once for the whole run. The ONNX Runtime package ships its CPU provider, so these tests always run.
/// </summary>
public sealed class NpuFixture : IDisposable
{
    public NpuFixture()
    {
        Npu = (NpuDevice)new NpuBackend().Open(0);
        Cpu = new CpuBackend().Open(0);
        NpuOps = new Ops(Npu);
        CpuOps = new Ops(Cpu);
    }

    public NpuDevice Npu { get; }

    public IDevice Cpu { get; }

    public Ops NpuOps { get; }

    public Ops CpuOps { get; }

    public void Dispose()
    {
        Npu.Dispose();
        Cpu.Dispose();
    }
}

[CollectionDefinition("npu")]
public sealed class NpuCollection : ICollectionFixture<NpuFixture>
{
}

/// <summary>Inputs and comparisons shared by the tests.</summary>
internal static class Kit
{
    /// <summary>Sizes around vector widths and tiles.</summary>
    public static readonly int[] Sizes = [0, 1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65];

    /// <summary>Uniform values in [lo, hi) from Philox with <paramref name="seed"/>.</summary>
    public static double[] Random(int count, ulong seed, double lo = -2, double hi = 2)
    {
        var f = new float[count];
        Philox.FillUniform(f, seed, 0, (float)lo, (float)hi);
        return Array.ConvertAll(f, v => (double)v);
    }

    /// <summary>Random values with NaN, ±Inf, ±0 and a denormal planted at fixed places.</summary>
    public static double[] WithSpecials(int count, ulong seed)
    {
        var v = Random(count, seed);
        double[] specials = [double.NaN, double.PositiveInfinity, double.NegativeInfinity, 0.0, -0.0, 1e-40];
        for (int i = 0; i < specials.Length && (i * 5) < count; i++)
        {
            v[i * 5] = specials[i];
        }
        return v;
    }

    /// <summary>Asserts element-wise closeness (NaN matches NaN, infinities match exactly).</summary>
    public static void Close(double[] expected, double[] actual, double rel, double abs, string what)
    {
        Assert.True(expected.Length == actual.Length, $"{what}: {expected.Length} vs {actual.Length} elements");
        for (int i = 0; i < expected.Length; i++)
        {
            double e = expected[i];
            double a = actual[i];
            if (double.IsNaN(e) || double.IsNaN(a))
            {
                Assert.True(double.IsNaN(e) && double.IsNaN(a), $"{what}: element {i}: expected {e}, got {a}");
                continue;
            }
            if (double.IsInfinity(e) || double.IsInfinity(a))
            {
                Assert.True(e == a, $"{what}: element {i}: expected {e}, got {a}");
                continue;
            }
            Assert.True(Math.Abs(e - a) <= abs + (rel * Math.Abs(e)), $"{what}: element {i}: expected {e}, got {a}");
        }
    }

    /// <summary>Uploads the same values to both devices.</summary>
    public static (Tensor Npu, Tensor Cpu) Both(NpuFixture f, double[] values, Shape shape, DType dtype) =>
        (f.NpuOps.FromArray(values, shape, dtype), f.CpuOps.FromArray(values, shape, dtype));
}
