using System.Runtime.Intrinsics;

namespace Hal.Backends.Cpu.Tests;

// The vector exp and the erf used by the fused kernels, against references computed independently.
public sealed class FusedMathTests
{
    private static long UlpDistance(float a, float b)
    {
        int ia = BitConverter.SingleToInt32Bits(a), ib = BitConverter.SingleToInt32Bits(b);
        // Map the sign-magnitude bit patterns onto a monotonic integer line.
        long la = ia < 0 ? int.MinValue - (long)ia : ia, lb = ib < 0 ? int.MinValue - (long)ib : ib;
        return Math.Abs(la - lb);
    }

    [Fact]
    public void VectorExpIsWithinTwoUlpOfTheCorrectlyRoundedValue()
    {
        const int seed = 5;
        var rng = new Random(seed);
        long worst = 0;
        float worstX = 0;
        for (int trial = 0; trial < 20000; trial++)
        {
            // Mostly the normal range, with a share of subnormal results (x < −87.3) and huge arguments.
            var lanes = new float[8];
            for (int l = 0; l < 8; l++)
            {
                lanes[l] = trial % 10 == 0 ? (float)((rng.NextDouble() * 20) - 110) : (float)((rng.NextDouble() * 176) - 87);
            }
            var e = CpuExp.Exp(Vector256.Create(lanes));
            for (int l = 0; l < 8; l++)
            {
                float expected = (float)Math.Exp(lanes[l]);
                long ulps = UlpDistance(expected, e[l]);
                if (expected >= 1.17549435e-38f && ulps > worst)
                {
                    worst = ulps;
                    worstX = lanes[l];
                }
                if (expected < 1.17549435e-38f)
                {
                    // Subnormal results: two roundings (the scale and the product) may cost one unit in the last place.
                    Assert.True(ulps <= 2, $"exp({lanes[l]:R}) = {e[l]:R}, expected {expected:R} (seed {seed})");
                }
            }
        }
        Assert.True(worst <= 2, $"exp worst error {worst} ULP at x = {worstX:R} (seed {seed})");
    }

    [Fact]
    public void VectorExpHandlesSpecialValues()
    {
        var x = Vector256.Create(float.NaN, float.NegativeInfinity, float.PositiveInfinity, 0f, -0f, 88.7f, 89f, -104f);
        var e = CpuExp.Exp(x);
        Assert.True(float.IsNaN(e[0]), $"exp(NaN) = {e[0]}");
        Assert.Equal(0f, e[1]);
        Assert.Equal(float.PositiveInfinity, e[2]);
        Assert.Equal(1f, e[3]);
        Assert.Equal(1f, e[4]);
        Assert.True(UlpDistance((float)Math.Exp(88.7f), e[5]) <= 2, $"exp(88.7) = {e[5]:R}");
        Assert.Equal(float.PositiveInfinity, e[6]);
        Assert.Equal(0f, e[7]);
    }

    /// <summary>erf by its Maclaurin series in 28-digit decimal arithmetic: for |x| ≤ 4 the largest term is under 1e8,
    /// so cancellation leaves about 20 correct digits.</summary>
    private static double ErfDecimal(decimal dx)
    {
        decimal x2 = dx * dx;
        decimal term = dx;
        decimal sum = dx;
        for (int n = 1; n < 400; n++)
        {
            term *= -x2 / n;
            decimal contribution = term / ((2 * n) + 1);
            sum += contribution;
            if (Math.Abs(contribution) < 1e-26m)
            {
                break;
            }
        }
        return (double)(sum * 1.1283791670955125738961589031m);
    }

    [Fact]
    public void ErfIsWithin1e15RelativeInDouble()
    {
        const int seed = 9;
        var rng = new Random(seed);
        double worst = 0, worstX = 0;
        for (int i = 0; i < 4000; i++)
        {
            // Arguments k/2^20 are exact both as double and as decimal, so both sides evaluate erf at the same point.
            int k = rng.Next(-4 << 20, 4 << 20);
            double x = k / 1048576.0;
            double expected = ErfDecimal(k / 1048576m);
            double err = Math.Abs(CpuMath.Erf(x) - expected) / Math.Abs(expected);
            if (err > worst)
            {
                worst = err;
                worstX = x;
            }
        }
        Assert.True(worst <= 1e-15, $"erf worst relative error {worst:E3} at x = {worstX:R} (seed {seed})");
        Assert.Equal(1.0, CpuMath.Erf(7.0));
        Assert.Equal(-1.0, CpuMath.Erf(double.NegativeInfinity));
        Assert.True(double.IsNaN(CpuMath.Erf(double.NaN)));
        Assert.Equal(0.0, CpuMath.Erf(0.0));
        // erf(1e-300) = 2/√π · 1e-300 to full precision.
        Assert.Equal(1.1283791670955126e-300, CpuMath.Erf(1e-300), 1e-315);
    }

    [Fact]
    public void ErfInFloatIsCorrectlyRoundedOrNextToIt()
    {
        const int seed = 13;
        var rng = new Random(seed);
        for (int i = 0; i < 4000; i++)
        {
            int k = rng.Next(-4 << 20, 4 << 20);
            float x = k / 1048576f;
            float expected = (float)ErfDecimal(k / 1048576m);
            float got = (float)CpuMath.Erf(x);
            // Computed in double (≈1e-16 relative) and rounded once: the float is the correctly rounded value or, at a near-tie, its neighbour.
            Assert.True(UlpDistance(expected, got) <= 1, $"erf({x:R}) = {got:R}, expected {expected:R} (seed {seed})");
        }
    }
}
