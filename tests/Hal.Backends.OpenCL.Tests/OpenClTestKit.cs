using Hal.Backends.Cpu;

namespace Hal.Backends.OpenCL.Tests;

/// <summary>
/// A fact that runs only where an OpenCL device exists. The documented skip condition: the OpenCL probe reports no
/// device (no ICD loader, no platform, or no device); the skip message is the probe's reason. The bootstrap
/// installs PoCL, so on the project's machines and in CI these tests run.
/// </summary>
public sealed class OpenClFactAttribute : FactAttribute
{
    public OpenClFactAttribute()
    {
        if (OpenClTestKit.UnavailableReason is { } reason)
        {
            Skip = "no OpenCL device: " + reason;
        }
    }
}

/// <summary>The theory counterpart of <see cref="OpenClFactAttribute"/> (same skip condition).</summary>
public sealed class OpenClTheoryAttribute : TheoryAttribute
{
    public OpenClTheoryAttribute()
    {
        if (OpenClTestKit.UnavailableReason is { } reason)
        {
            Skip = "no OpenCL device: " + reason;
        }
    }
}

/// <summary>Shared devices (opencl:0 and the CPU reference) and helpers for the tests.</summary>
public static class OpenClTestKit
{
    private static readonly Lazy<BackendProbe> Probe = new(() => new OpenClBackend().Probe());
    private static readonly Lazy<IDevice> ClDevice = new(() => new OpenClBackend().Open(0));
    private static readonly Lazy<IDevice> CpuDevice = new(() => new CpuBackend().Open(0));

    /// <summary>Null when an OpenCL device exists, else the probe's reason.</summary>
    public static string? UnavailableReason => Probe.Value.Available ? null : Probe.Value.Reason ?? "unavailable";

    /// <summary>The validating entry of opencl:0 (shared by every test; tests do not dispose it).</summary>
    public static Ops ClOps => new(ClDevice.Value);

    /// <summary>The CPU backend's entry, used as a reference on the same inputs.</summary>
    public static Ops CpuOps => new(CpuDevice.Value);

    /// <summary>Whether opencl:0 runs F64 kernels.</summary>
    public static bool HasF64 => ClDevice.Value.Capabilities.DTypes.Contains(DType.F64);

    /// <summary>Deterministic values in [lo, hi) from <paramref name="seed"/>.</summary>
    public static double[] RandomValues(int seed, long n, double lo = -2, double hi = 2)
    {
        var rng = new Random(seed);
        var v = new double[n];
        for (long i = 0; i < n; i++)
        {
            v[i] = lo + ((hi - lo) * rng.NextDouble());
        }
        return v;
    }

    /// <summary>Uploads <paramref name="values"/> to both devices.</summary>
    public static (Tensor Cl, Tensor Cpu) Both(double[] values, Shape shape, DType dtype) =>
        (ClOps.FromArray(values, shape, dtype), CpuOps.FromArray(values, shape, dtype));

    /// <summary>Asserts |a − b| ≤ atol + rtol·|b| elementwise (NaN matches NaN, infinities match exactly).</summary>
    public static void Close(double[] expected, double[] actual, double rtol, double atol, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
        {
            double e = expected[i], a = actual[i];
            if (double.IsNaN(e) || double.IsNaN(a) || double.IsInfinity(e) || double.IsInfinity(a))
            {
                Assert.True(e.Equals(a), $"{what}: element {i} expected {e}, got {a}");
                continue;
            }
            Assert.True(Math.Abs(e - a) <= atol + (rtol * Math.Abs(e)), $"{what}: element {i} expected {e}, got {a} (rtol {rtol}, atol {atol})");
        }
    }

    /// <summary>The relative tolerance of one rounding to <paramref name="dtype"/> plus a few ULPs of compute (F32 for 16-bit).</summary>
    public static double Tol(DType dtype, double ulps = 8) => dtype switch
    {
        DType.F64 => ulps * Math.Pow(2, -52),
        DType.F32 => ulps * Math.Pow(2, -23),
        DType.F16 => Math.Pow(2, -10) + (ulps * Math.Pow(2, -23)),
        DType.BF16 => Math.Pow(2, -7) + (ulps * Math.Pow(2, -23)),
        _ => 0,
    };

    /// <summary>The float dtypes this device runs.</summary>
    public static IEnumerable<DType> FloatDTypes()
    {
        yield return DType.F32;
        if (HasF64)
        {
            yield return DType.F64;
        }
        yield return DType.F16;
        yield return DType.BF16;
    }
}
