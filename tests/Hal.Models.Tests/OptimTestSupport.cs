using System.Runtime.CompilerServices;
using Hal.Backends.Cpu;
using Hal.Models.Nn;

namespace Hal.Models.Tests;

// Shapes: each parameter is a small tensor; the store holds them all in one flat slab [N] in declaration order.

/// <summary>A CPU device with a parameter store built from host values, and helpers the optimizer tests share.</summary>
internal sealed class OptimHarness : IDisposable
{
    public OptimHarness((string Name, int[] Shape)[] parameters, DType dtype = DType.F32)
    {
        Device = new CpuBackend().Open(0);
        Ops = new Ops(Device);
        Store = new ParameterStore();
        foreach (var (name, shape) in parameters)
        {
            Store.Declare(name, new Shape(shape), layer: 0);
        }
        Store.Allocate(Ops, dtype);
    }

    public IDevice Device { get; }

    public Ops Ops { get; }

    public ParameterStore Store { get; }

    public void SetParams(double[][] values)
    {
        for (int i = 0; i < values.Length; i++)
        {
            Ops.Upload(values[i], Store.Param(i));
        }
    }

    public void SetGrads(double[][] values)
    {
        for (int i = 0; i < values.Length; i++)
        {
            Ops.Upload(values[i], Store.Grad(i));
        }
    }

    public double[] Param(int index) => Ops.ToDoubleArray(Store.Param(index));

    public double[] AllParams() => Ops.ToDoubleArray(Store.Params);

    public void Dispose()
    {
        Store.Dispose();
        Device.Dispose();
    }
}

internal static class OptimTestData
{
    /// <summary>Standard normal values (Box–Muller on System.Random) times <paramref name="scale"/>.</summary>
    public static double[] Normal(Random random, int count, double scale = 1)
    {
        var values = new double[count];
        for (int i = 0; i < count; i++)
        {
            double u1 = 1 - random.NextDouble();
            double u2 = random.NextDouble();
            values[i] = scale * Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2);
        }
        return values;
    }

    /// <summary>Rounds each value to float, as uploading into an F32 tensor does, so references start from the stored inputs.</summary>
    public static double[] AsFloat(double[] values) => Array.ConvertAll(values, v => (double)(float)v);

    public static double Norm(double[] values)
    {
        double sum = 0;
        foreach (double v in values)
        {
            sum += v * v;
        }
        return Math.Sqrt(sum);
    }

    /// <summary>The fixtures folder beside this source file, or beside the test assembly.</summary>
    public static string FixturePath(string fileName, [CallerFilePath] string sourceFile = "")
    {
        string besideSource = Path.Combine(Path.GetDirectoryName(sourceFile) ?? ".", "fixtures", fileName);
        return File.Exists(besideSource) ? besideSource : Path.Combine(AppContext.BaseDirectory, "fixtures", fileName);
    }

    public static void AssertClose(double[] expected, double[] actual, double absolute, double relative, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
        {
            double tolerance = absolute + (relative * Math.Abs(expected[i]));
            Assert.True(Math.Abs(expected[i] - actual[i]) <= tolerance,
                $"{what}[{i}]: expected {expected[i]:R}, got {actual[i]:R} (tolerance {tolerance:E2})");
        }
    }
}
