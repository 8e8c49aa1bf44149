namespace Hal.Abstractions.Tests;

// Shapes: activations element-wise on [n]; embedding weight [V, C], ids [N], y [N, C]; int8 x/q [R, C], scale [R] (F32).
public sealed class CompositeElementwiseTests : CompositeTestBase
{
    public static readonly UnaryOp[] Activations = [UnaryOp.Relu, UnaryOp.Tanh, UnaryOp.Sigmoid, UnaryOp.GeluErf, UnaryOp.GeluTanh, UnaryOp.Silu];

    /// <summary>erf by its Maclaurin series; converges to double precision for |x| ≤ 3 (the test inputs).</summary>
    private static double Erf(double x)
    {
        double term = x, sum = x;
        for (int n = 1; n < 200; n++)
        {
            term *= -x * x / n;
            sum += term / ((2 * n) + 1);
        }
        return 2 / Math.Sqrt(Math.PI) * sum;
    }

    private static double Sigmoid(double x) => 1 / (1 + Math.Exp(-x));

    private static double DerivativeReference(UnaryOp op, double x)
    {
        const double a = 0.044715;
        double c = Math.Sqrt(2 / Math.PI);
        switch (op)
        {
            case UnaryOp.Relu:
                return x > 0 ? 1 : 0;
            case UnaryOp.Tanh:
                return 1 - (Math.Tanh(x) * Math.Tanh(x));
            case UnaryOp.Sigmoid:
                return Sigmoid(x) * (1 - Sigmoid(x));
            case UnaryOp.Silu:
                return Sigmoid(x) + (x * Sigmoid(x) * (1 - Sigmoid(x)));
            case UnaryOp.GeluErf:
                return (0.5 * (1 + Erf(x / Math.Sqrt(2)))) + (x * Math.Exp(-x * x / 2) / Math.Sqrt(2 * Math.PI));
            case UnaryOp.GeluTanh:
            {
                double t = Math.Tanh(c * (x + (a * x * x * x)));
                return (0.5 * (1 + t)) + (0.5 * x * (1 - (t * t)) * c * (1 + (3 * a * x * x)));
            }
            default:
                throw new ArgumentOutOfRangeException(nameof(op));
        }
    }

    public static TheoryData<UnaryOp, int, DType> ActivationCases()
    {
        var data = new TheoryData<UnaryOp, int, DType>();
        foreach (var op in Activations)
        {
            foreach (int n in new[] { 1, 7, 33 })
            {
                data.Add(op, n, DType.F32);
                data.Add(op, n, DType.F64);
            }
            data.Add(op, 17, DType.BF16);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(ActivationCases))]
    public void ActivationBackwardMatchesReference(UnaryOp op, int n, DType dtype)
    {
        int seed = (int)op * 100 + n;
        var xs = RandomValues(seed, n, 3);
        // Exact zero and a denormal exercise the x = 0 paths (Relu's step, GeluErf's Φ(0) = ½).
        xs[0] = 0;
        if (n > 1)
        {
            xs[1] = dtype == DType.F64 ? 4.9e-324 : 1e-45;
        }
        var x = Rounded(xs, dtype);
        var dy = Rounded(RandomValues(seed + 1, n), dtype);
        using var xT = Upload(x, dtype, n);
        using var dyT = Upload(dy, dtype, n);
        using var dx = Ops.Empty(new Shape(n), dtype);
        Ops.ActivationBackward(op, xT, dyT, dx);
        var expected = x.Select((xv, i) => dy[i] * DerivativeReference(op, xv)).ToArray();
        var (abs, rel) = ForwardTolerance(dtype);
        // F64 GeluErf goes through gelu(x)/x: the tier-1 erf's error (≈ 1e-15) divided by small x is still < 1e-12 here.
        AssertClose(expected, Download(dx), abs * 10, rel * 10, $"{op} backward {dtype} n={n} seed {seed}");
    }

    [Theory]
    [InlineData(UnaryOp.Tanh)]
    [InlineData(UnaryOp.Sigmoid)]
    [InlineData(UnaryOp.GeluErf)]
    [InlineData(UnaryOp.GeluTanh)]
    [InlineData(UnaryOp.Silu)]
    [InlineData(UnaryOp.Relu)]
    public void ActivationBackwardMatchesFiniteDifferencesOfTheForwardOp(UnaryOp op)
    {
        const int n = 9;
        int seed = 40 + (int)op;
        // Inputs kept away from Relu's kink at 0 (|x| ≥ 0.1) so that central differences are valid there.
        var x0 = RandomValues(seed, n, 3).Select(v => Math.Abs(v) < 0.1 ? v + 0.2 : v).ToArray();
        var w = RandomValues(seed + 1, n);
        double[] Forward(double[] xv)
        {
            using var x = Upload(xv, DType.F64, n);
            using var y = Ops.Empty(new Shape(n), DType.F64);
            Ops.Unary(op, x, y);
            return Download(y);
        }
        using var xT = Upload(x0, DType.F64, n);
        using var dy = Upload(w, DType.F64, n);
        using var dx = Ops.Empty(new Shape(n), DType.F64);
        Ops.ActivationBackward(op, xT, dy, dx);
        // h = 1e-6: rounding ≈ 2^-52·|y|/h ≈ 1e-9, truncation ≈ h²·|y'''| ≈ 1e-12.
        AssertClose(NumericGradient(x0, Forward, w), Download(dx), 1e-7, 1e-7, $"{op} backward vs finite differences seed {seed}");
    }

    [Theory]
    [InlineData(1, 1, 1, DType.F32, DType.I64)]
    [InlineData(5, 3, 7, DType.F32, DType.I32)]
    [InlineData(9, 4, 17, DType.F64, DType.I64)]
    [InlineData(6, 2, 8, DType.BF16, DType.I32)]
    public void EmbeddingAndBackwardMatchReference(int vocab, int n, int c, DType dtype, DType indexType)
    {
        int seed = (vocab * 100) + (n * 10) + c;
        var weight = Rounded(RandomValues(seed, vocab * c), dtype);
        var rng = new Random(seed);
        // Repeated ids make the backward accumulate.
        var ids = Enumerable.Range(0, n).Select(i => i == n - 1 && n > 1 ? 0L : rng.Next(vocab)).ToArray();
        ids[0] = 0;
        using var w = Upload(weight, dtype, vocab, c);
        using var idT = UploadIndices(ids, indexType, n);
        using var y = Ops.Empty(new Shape(n, c), dtype);
        Ops.Embedding(w, idT, y);
        var expected = new double[n * c];
        for (int i = 0; i < n; i++)
        {
            for (int j = 0; j < c; j++)
            {
                expected[(i * c) + j] = weight[(ids[i] * c) + j];
            }
        }
        Assert.Equal(expected, Download(y));

        var dyv = Rounded(RandomValues(seed + 1, n * c), dtype);
        using var dy = Upload(dyv, dtype, n, c);
        using var dw = Ops.Full(new Shape(vocab, c), 123, dtype);
        Ops.EmbeddingBackward(dy, idT, dw);
        var expectedDw = new double[vocab * c];
        for (int i = 0; i < n; i++)
        {
            for (int j = 0; j < c; j++)
            {
                expectedDw[(ids[i] * c) + j] += dyv[(i * c) + j];
            }
        }
        var (abs, rel) = ForwardTolerance(dtype);
        AssertClose(expectedDw, Download(dw), abs, rel, $"embedding backward {dtype}/{indexType} V={vocab} N={n} C={c} seed {seed}");
    }

    [Theory]
    [InlineData(1, 1, DType.F32)]
    [InlineData(3, 7, DType.F32)]
    [InlineData(4, 33, DType.F64)]
    [InlineData(2, 16, DType.BF16)]
    public void QuantizeAndDequantizeInt8MatchReference(int r, int c, DType dtype)
    {
        int seed = (r * 100) + c;
        var values = RandomValues(seed, r * c, 5);
        // Row 0 is all zeros when there are several rows (scale 1); a value lands on a .5 tie to test round-half-even.
        if (r > 1)
        {
            Array.Clear(values, 0, c);
        }
        var x = Rounded(values, dtype);
        using var xT = Upload(x, dtype, r, c);
        using var q = Ops.Empty(new Shape(r, c), DType.I8);
        using var scale = Ops.Empty(new Shape(r), DType.F32);
        Ops.QuantizeInt8(xT, q, scale);

        var expectedScale = new double[r];
        var expectedQ = new double[r * c];
        for (int row = 0; row < r; row++)
        {
            double amax = 0;
            for (int j = 0; j < c; j++)
            {
                amax = Math.Max(amax, Math.Abs(x[(row * c) + j]));
            }
            // The scale is stored in F32; q divides by the stored value in the compute dtype.
            float s = amax == 0 ? 1f : (float)(amax / 127);
            expectedScale[row] = s;
            for (int j = 0; j < c; j++)
            {
                double quotient = dtype == DType.F64 ? x[(row * c) + j] / s : (float)(x[(row * c) + j] / s);
                expectedQ[(row * c) + j] = Math.Clamp(Math.Round(quotient, MidpointRounding.ToEven), -127, 127);
            }
        }
        Assert.Equal(expectedScale, Download(scale));
        Assert.Equal(expectedQ, Download(q));

        using var y = Ops.Empty(new Shape(r, c), dtype);
        Ops.DequantizeInt8(q, scale, y);
        var expectedY = expectedQ.Select((qv, i) => qv * expectedScale[i / c]).ToArray();
        var (abs, rel) = ForwardTolerance(dtype);
        AssertClose(expectedY, Download(y), abs, rel, $"dequantize {dtype} [{r}, {c}] seed {seed}");
    }

    [Fact]
    public void QuantizeRoundsTiesToEven()
    {
        // amax 127 gives scale 1, so x / scale = x exactly: 2.5 → 2, 3.5 → 4, −0.5 → 0, and 300 clamps to 127.
        using var x = Upload([127, 2.5, 3.5, -0.5, -127, 1.5], DType.F32, 1, 6);
        using var q = Ops.Empty(new Shape(1, 6), DType.I8);
        using var scale = Ops.Empty(new Shape(1), DType.F32);
        Ops.QuantizeInt8(x, q, scale);
        Assert.Equal([1.0], Download(scale));
        Assert.Equal([127.0, 2, 4, 0, -127, 2], Download(q));
    }
}
