using static Hal.Backends.Cpu.Tests.FusedTestSupport;

namespace Hal.Backends.Cpu.Tests;

// ActivationBackward (dx = dy · op'(x)) against finite differences of the forward written in double, and special values.
public sealed class FusedActivationTests(FusedFixture fx) : IClassFixture<FusedFixture>
{
    public static TheoryData<UnaryOp, DType> Ops()
    {
        var data = new TheoryData<UnaryOp, DType>();
        foreach (var op in new[] { UnaryOp.Relu, UnaryOp.Tanh, UnaryOp.Sigmoid, UnaryOp.GeluErf, UnaryOp.GeluTanh, UnaryOp.Silu })
        {
            data.Add(op, DType.F32);
            data.Add(op, DType.F64);
        }
        data.Add(UnaryOp.GeluErf, DType.BF16);
        data.Add(UnaryOp.Silu, DType.F16);
        return data;
    }

    /// <summary>erf from its Maclaurin series in 28-digit decimal (accurate to ~1e-20 for |x| ≤ 4), ±1 beyond 5.9.</summary>
    private static double ErfReference(double x)
    {
        if (Math.Abs(x) > 5.9)
        {
            return Math.Sign(x);
        }
        decimal dx = (decimal)x, x2 = dx * dx, term = dx, sum = dx;
        for (int n = 1; n < 600; n++)
        {
            term *= -x2 / n;
            decimal contribution = term / ((2 * n) + 1);
            sum += contribution;
            if (Math.Abs(contribution) < 1e-26m && n > 2)
            {
                break;
            }
        }
        return (double)(sum * 1.1283791670955125738961589031m);
    }

    /// <summary>The forward activations, written from their definitions.</summary>
    private static double Forward(UnaryOp op, double x) => op switch
    {
        UnaryOp.Relu => Math.Max(x, 0),
        UnaryOp.Tanh => Math.Tanh(x),
        UnaryOp.Sigmoid => 1 / (1 + Math.Exp(-x)),
        UnaryOp.GeluErf => 0.5 * x * (1 + ErfReference(x / Math.Sqrt(2))),
        UnaryOp.GeluTanh => 0.5 * x * (1 + Math.Tanh(Math.Sqrt(2 / Math.PI) * (x + (0.044715 * x * x * x)))),
        _ => x / (1 + Math.Exp(-x)),
    };

    [Theory]
    [MemberData(nameof(Ops))]
    public void BackwardMatchesFiniteDifferencesOfTheForward(UnaryOp op, DType dtype)
    {
        const int seed = 700;
        // 65 elements (a vector tail), |x| ≤ 4 where the decimal erf is exact; relu avoids the kink at 0 by construction.
        var x = Quantize(RandomArray(seed, 65, -4, 4), dtype);
        var dy = Quantize(RandomArray(seed + 1, 65), dtype);
        using var tx = fx.Ops.FromArray(x, new Shape(5, 13), dtype);
        using var tdy = fx.Ops.FromArray(dy, new Shape(5, 13), dtype);
        using var tdx = fx.Ops.Empty(new Shape(5, 13), dtype);
        fx.Kernels.ActivationBackward(op, tx, tdy, tdx);
        var got = fx.Ops.ToDoubleArray(tdx);
        var expected = new double[x.Length];
        const double h = 1e-5;
        for (int i = 0; i < x.Length; i++)
        {
            expected[i] = dy[i] * (Forward(op, x[i] + h) - Forward(op, x[i] - h)) / (2 * h);
        }
        // Central differences with h = 1e-5: truncation h²·|f'''|/6 < 1e-10, rounding ε·|f|/h < 1e-10. The kernel's
        // derivative costs a few ULP of the compute dtype (exp, tanh, erf ≤ 1e-8 in F32) times |dy| ≤ 2 and |x| ≤ 4.
        double atol = 1e-9 + (64 * ComputeEpsilon(dtype));
        AssertClose(expected, got, 2 * StorageRounding(dtype), atol, $"{op} backward {dtype} seed={seed}");
    }

    [Theory]
    [InlineData(UnaryOp.Relu)]
    [InlineData(UnaryOp.Tanh)]
    [InlineData(UnaryOp.Sigmoid)]
    [InlineData(UnaryOp.GeluErf)]
    [InlineData(UnaryOp.GeluTanh)]
    [InlineData(UnaryOp.Silu)]
    public void SpecialValues(UnaryOp op)
    {
        double[] x = [double.NaN, double.PositiveInfinity, double.NegativeInfinity, 0, 1e30, -1e30, 1e-40];
        bool oneAtPlusInf = op is UnaryOp.Relu or UnaryOp.GeluErf or UnaryOp.GeluTanh or UnaryOp.Silu;
        foreach (var dtype in new[] { DType.F32, DType.F64 })
        {
            using var tx = fx.Ops.FromArray(x, new Shape(x.Length), dtype);
            using var tdy = fx.Ops.FromArray(Enumerable.Repeat(1.0, x.Length).ToArray(), new Shape(x.Length), dtype);
            using var tdx = fx.Ops.Empty(new Shape(x.Length), dtype);
            fx.Kernels.ActivationBackward(op, tx, tdy, tdx);
            var d = fx.Ops.ToDoubleArray(tdx);
            Assert.True(double.IsNaN(d[0]), $"{op} {dtype} at NaN: {d[0]}");
            Assert.Equal(oneAtPlusInf ? 1.0 : 0.0, d[1]);
            Assert.Equal(0.0, d[2]);
            Assert.Equal(oneAtPlusInf ? 1.0 : 0.0, d[4]);
            Assert.Equal(0.0, d[5]);
            // op'(0): relu 0 (x > 0 is false), tanh 1, sigmoid 1/4, the GELUs and SiLU 1/2.
            double atZero = op switch { UnaryOp.Relu => 0, UnaryOp.Tanh => 1, UnaryOp.Sigmoid => 0.25, _ => 0.5 };
            Assert.Equal(atZero, d[3], 1e-15);
        }
    }

    /// <summary>
    /// Sigmoid and SiLU derivatives at x = −95 in F32: e^95 overflows F32, yet σ'(−95) ≈ e^−95 ≈ 5.5e−42 is a
    /// representable subnormal and SiLU'(−95) ≈ −94·e^−95 ≈ −5.2e−40; neither may flush to 0.
    /// </summary>
    [Theory]
    [InlineData(UnaryOp.Sigmoid)]
    [InlineData(UnaryOp.Silu)]
    public void DeepNegativeInputsDoNotFlushToZero(UnaryOp op)
    {
        const double x = -95;
        double e = Math.Exp(x);
        double s = e / (1 + e);
        double expected = op == UnaryOp.Sigmoid ? s * (1 - s) : s * (1 + x * (1 - s));
        using var tx = fx.Ops.FromArray([x], new Shape(1), DType.F32);
        using var tdy = fx.Ops.FromArray([1.0], new Shape(1), DType.F32);
        using var tdx = fx.Ops.Empty(new Shape(1), DType.F32);
        fx.Kernels.ActivationBackward(op, tx, tdy, tdx);
        double d = fx.Ops.ToDoubleArray(tdx)[0];
        // e^−95 is an F32 subnormal (spacing 2^−149 ≈ 1.4e−45): its rounding, times |1 + x| ≤ 94 for SiLU, stays
        // within 1e−3 relative of 5e−40; a flush to 0 misses by 100 %.
        Assert.True(Math.Abs(d - expected) <= 1e-3 * Math.Abs(expected), $"{op}'({x}) = {d}, expected {expected}");
    }
}
