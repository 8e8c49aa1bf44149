namespace Hal.Conformance.Kernels;

/// <summary>
/// What a case runs with: the validating entry (routed through the runner's kernel recorder), a deterministic
/// value source seeded by the case, and upload/download helpers that dispose every tensor when the case ends.
/// Values are produced as doubles and rounded to the tensor's dtype by <see cref="FloatFormat.Round"/> before
/// upload, so the oracle sees exactly what the device sees.
/// </summary>
public sealed class CaseContext : IDisposable
{
    private readonly List<IDisposable> _owned = [];

    /// <summary>Creates a context over <paramref name="ops"/> with the case's seed.</summary>
    public CaseContext(Ops ops, ulong seed)
    {
        Ops = ops ?? throw new ArgumentNullException(nameof(ops));
        Values = new CaseValues(seed);
    }

    /// <summary>The validating entry to the device under test.</summary>
    public Ops Ops { get; }

    /// <summary>The device's capabilities.</summary>
    public DeviceCapabilities Capabilities => Ops.Device.Capabilities;

    /// <summary>The case's deterministic value source.</summary>
    public CaseValues Values { get; }

    /// <summary>Rounds every value to <paramref name="dtype"/> in place and returns the array (what the device will hold).</summary>
    public static double[] Quantize(double[] values, DType dtype)
    {
        ArgumentNullException.ThrowIfNull(values);
        for (int i = 0; i < values.Length; i++)
        {
            values[i] = FloatFormat.Round(dtype, values[i]);
        }
        return values;
    }

    /// <summary>Uploads <paramref name="values"/> (rounded to <paramref name="dtype"/> in place first) as a new tensor owned by the case.</summary>
    public Tensor Upload(double[] values, Shape shape, DType dtype)
    {
        ArgumentNullException.ThrowIfNull(values);
        Quantize(values, dtype);
        return Own(Ops.FromArray(values, shape, dtype));
    }

    /// <summary>A new tensor owned by the case, filled with a sentinel (NaN for floats, 77 for integers) so that an element the kernel forgot to write shows.</summary>
    public Tensor Output(Shape shape, DType dtype)
    {
        var t = Own(Ops.Empty(shape, dtype));
        Ops.Fill(t, dtype.IsFloatingPoint() ? double.NaN : 77);
        return t;
    }

    /// <summary>A new tensor owned by the case, with unspecified contents.</summary>
    public Tensor Empty(Shape shape, DType dtype) => Own(Ops.Empty(shape, dtype));

    /// <summary>The tensor's values as doubles (waits for queued work).</summary>
    public double[] Download(Tensor t) => Ops.ToDoubleArray(t);

    /// <summary>Disposes <paramref name="resource"/> when the case ends.</summary>
    public T Own<T>(T resource)
        where T : IDisposable
    {
        _owned.Add(resource);
        return resource;
    }

    /// <summary>Disposes what the case owns, last first.</summary>
    public void Dispose()
    {
        for (int i = _owned.Count - 1; i >= 0; i--)
        {
            _owned[i].Dispose();
        }
        _owned.Clear();
    }
}

/// <summary>The kinds of values a case asks for.</summary>
public enum ValueKind
{
    /// <summary>Standard normal.</summary>
    Normal,

    /// <summary>Uniform in [−1, 1).</summary>
    Uniform,

    /// <summary>Uniform in [0.01, 4): for log, sqrt, rsqrt, reciprocal.</summary>
    Positive,

    /// <summary>Normal values with edge values mixed in at a few positions: ±0, ±Inf, NaN, subnormals, the largest and smallest normal magnitudes, values near 1.</summary>
    Edge,

    /// <summary>Normal values times 1e4 (times 64 for 16-bit dtypes): stresses overflow handling in exp-based ops.</summary>
    Large,

    /// <summary>Normal values times the dtype's smallest normal: the subnormal and underflow range.</summary>
    Tiny,
}

/// <summary>
/// A deterministic value source (SplitMix64, Steele et al. 2014) seeded by the case: the same seed gives the
/// same values on every machine and backend.
/// </summary>
public sealed class CaseValues(ulong seed)
{
    private ulong _state = seed;

    /// <summary>The next 64 random bits.</summary>
    public ulong NextBits()
    {
        ulong z = _state += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>Uniform in [0, 1) with 53 random bits.</summary>
    public double NextUniform() => (NextBits() >> 11) * (1.0 / (1UL << 53));

    /// <summary>Uniform integer in [0, n).</summary>
    public long NextInt(long n) => n <= 0 ? 0 : (long)(NextBits() % (ulong)n);

    /// <summary>Standard normal (Box–Muller).</summary>
    public double NextNormal()
    {
        double u1 = 1.0 - NextUniform();
        double u2 = NextUniform();
        return Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2);
    }

    /// <summary><paramref name="count"/> values of <paramref name="kind"/> for <paramref name="dtype"/> (not yet rounded to it).</summary>
    public double[] Floats(long count, ValueKind kind, DType dtype = DType.F32)
    {
        var v = new double[count];
        for (long i = 0; i < count; i++)
        {
            v[i] = kind switch
            {
                ValueKind.Uniform => 2 * NextUniform() - 1,
                ValueKind.Positive => 0.01 + 3.99 * NextUniform(),
                ValueKind.Large => NextNormal() * (dtype.Is16Bit() ? 64 : 1e4),
                ValueKind.Tiny => NextNormal() * (dtype.IsFloatingPoint() ? FloatFormat.MinNormal(dtype) : 1),
                _ => NextNormal(),
            };
        }
        if (kind == ValueKind.Edge && dtype.IsFloatingPoint())
        {
            double[] edges = EdgeValues(dtype);
            // Spread the edge values over the array (every 3rd position from a random start) so that vector
            // bodies and tails both meet them.
            long start = NextInt(3);
            int e = 0;
            for (long i = start; i < count && e < edges.Length * 4; i += 3, e++)
            {
                v[i] = edges[e % edges.Length];
            }
        }
        return v;
    }

    /// <summary>Integers uniform in [lo, hi].</summary>
    public double[] Integers(long count, long lo, long hi)
    {
        var v = new double[count];
        for (long i = 0; i < count; i++)
        {
            v[i] = lo + NextInt(hi - lo + 1);
        }
        return v;
    }

    /// <summary>±0, ±Inf, NaN, ± smallest subnormal, ± smallest normal, ± largest finite, 1 ± ulp, −1, 0.5, 2.5 (ties for rounding).</summary>
    public static double[] EdgeValues(DType dtype)
    {
        double sub = FloatFormat.MinSubnormal(dtype);
        double nrm = FloatFormat.MinNormal(dtype);
        double max = FloatFormat.MaxFinite(dtype);
        double ulp1 = FloatFormat.Ulp(dtype, 1);
        return
        [
            0.0, -0.0, double.PositiveInfinity, double.NegativeInfinity, double.NaN,
            sub, -sub, nrm, -nrm, max, -max, 1 + ulp1, 1 - ulp1 / 2, -1, 0.5, 2.5, 3 * sub, -7 * sub,
        ];
    }
}
