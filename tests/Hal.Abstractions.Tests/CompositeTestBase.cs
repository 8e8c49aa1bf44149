using Hal.Backends.Cpu;

namespace Hal.Abstractions.Tests;

/// <summary>
/// Shared plumbing of the composite tests: a CPU device whose Ops entry forces the composite path, seeded inputs,
/// element-wise comparison, and central finite differences for backward ops.
/// </summary>
public abstract class CompositeTestBase : IDisposable
{
    protected CompositeTestBase()
    {
        Device = new CpuBackend().Open(0);
        Ops = new Ops(Device) { ForceComposite = true };
    }

    protected IDevice Device { get; }

    protected Ops Ops { get; }

    /// <summary>Uniform values in [−scale, scale) from <paramref name="seed"/>.</summary>
    protected static double[] RandomValues(int seed, int count, double scale = 1)
    {
        var rng = new Random(seed);
        var v = new double[count];
        for (int i = 0; i < count; i++)
        {
            v[i] = ((2 * rng.NextDouble()) - 1) * scale;
        }
        return v;
    }

    protected Tensor Upload(double[] values, DType dtype, params int[] shape) => Ops.FromArray(values, new Shape(shape), dtype);

    protected Tensor UploadIndices(long[] values, DType dtype, params int[] shape) => Ops.FromArray(values, new Shape(shape), dtype);

    protected double[] Download(Tensor t) => Ops.ToDoubleArray(t);

    /// <summary>The values as the dtype stores them (what a reference must start from).</summary>
    protected double[] Rounded(double[] values, DType dtype)
    {
        using var t = Ops.FromArray(values, new Shape(values.Length), dtype);
        return Ops.ToDoubleArray(t);
    }

    /// <summary>|actual − expected| ≤ abs + rel·|expected| for every element; NaN matches NaN, ±Inf match exactly.</summary>
    protected static void AssertClose(double[] expected, double[] actual, double abs, double rel, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
        {
            double e = expected[i], a = actual[i];
            bool ok = double.IsNaN(e) ? double.IsNaN(a)
                : double.IsInfinity(e) ? e == a
                : Math.Abs(a - e) <= abs + (rel * Math.Abs(e));
            Assert.True(ok, $"{what}: element {i}: expected {e:R}, got {a:R} (abs {abs}, rel {rel})");
        }
    }

    /// <summary>Tolerances of a forward result against a double reference computed from the stored inputs.</summary>
    protected static (double Abs, double Rel) ForwardTolerance(DType dtype) => dtype switch
    {
        // F64 computes in F64: a few ulps of exp/log/sqrt and short sums stay below 1e-12.
        DType.F64 => (1e-12, 1e-12),
        // F32 arithmetic over rows of ≤ 100 elements: a few hundred ulps (2^-23 ≈ 1.2e-7) at most.
        DType.F32 => (2e-5, 2e-5),
        // 16-bit outputs are rounded to 8 significant bits (2^-8 relative) after F32 compute; allow two roundings.
        _ => (2e-2, 2 * Math.Pow(2, -8)),
    };

    /// <summary>
    /// Central differences of L(x) = Σ weights ⊙ forward(x) at x0 with step h, for comparison with the backward pass.
    /// </summary>
    protected static double[] NumericGradient(double[] x0, Func<double[], double[]> forward, double[] weights, double h = 1e-6)
    {
        var grad = new double[x0.Length];
        var x = (double[])x0.Clone();
        for (int i = 0; i < x.Length; i++)
        {
            x[i] = x0[i] + h;
            double plus = Dot(forward(x), weights);
            x[i] = x0[i] - h;
            double minus = Dot(forward(x), weights);
            x[i] = x0[i];
            grad[i] = (plus - minus) / (2 * h);
        }
        return grad;
    }

    protected static double Dot(double[] a, double[] b)
    {
        double s = 0;
        for (int i = 0; i < a.Length; i++)
        {
            s += a[i] * b[i];
        }
        return s;
    }

    public void Dispose()
    {
        Device.Dispose();
        GC.SuppressFinalize(this);
    }
}
