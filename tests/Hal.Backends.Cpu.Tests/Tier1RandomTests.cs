using Hal.Numerics;

namespace Hal.Backends.Cpu.Tests;

public sealed class Tier1RandomTests(CpuFixture fx) : IClassFixture<CpuFixture>
{
    [Theory]
    [InlineData(0UL, 0UL)]
    [InlineData(42UL, 3UL)]
    [InlineData(0xDEADBEEF_12345678UL, 1UL << 33)]
    public void F32UniformIsBitIdenticalToTheSpec(ulong seed, ulong offset)
    {
        foreach (int n in Kit.Sizes)
        {
            using var t = fx.Ops.Empty(new Shape(n));
            fx.Ops.RandomUniform(t, seed, offset, -2, 3);
            var got = fx.Ops.ToArray<float>(t);
            for (int i = 0; i < n; i++)
            {
                float want = Philox.Uniform(seed, offset + (ulong)i, -2f, 3f);
                Assert.True(BitConverter.SingleToInt32Bits(got[i]) == BitConverter.SingleToInt32Bits(want), $"seed={seed} offset={offset} n={n} i={i}: {got[i]:R} vs {want:R}");
                Assert.InRange(got[i], -2f, 3f);
                Assert.True(got[i] < 3f);
            }
        }
    }

    [Fact]
    public void F64UniformEvaluatesInDouble()
    {
        using var t = fx.Ops.Empty(new Shape(1000), DType.F64);
        fx.Ops.RandomUniform(t, 9, 5, 0.1, 0.7);
        var got = fx.Ops.ToDoubleArray(t);
        for (int i = 0; i < got.Length; i++)
        {
            double u = (Philox.Raw(9, 5 + (ulong)i) >> 8) / 16777216.0;
            Assert.Equal(0.1 + ((0.7 - 0.1) * u), got[i]);
        }
    }

    [Theory]
    [InlineData(DType.F16)]
    [InlineData(DType.BF16)]
    public void SixteenBitUniformAndNormalAreTheF32ValuesRounded(DType dtype)
    {
        using var t = fx.Ops.Empty(new Shape(333), dtype);
        using var f = fx.Ops.Empty(new Shape(333));
        fx.Ops.RandomUniform(t, 4, 0, -1, 1);
        fx.Ops.RandomUniform(f, 4, 0, -1, 1);
        Assert.Equal(Array.ConvertAll(fx.Ops.ToDoubleArray(f), v => Kit.Round(v, dtype)), fx.Ops.ToDoubleArray(t));
        fx.Ops.RandomNormal(t, 4, 0, 1, 2);
        fx.Ops.RandomNormal(f, 4, 0, 1, 2);
        Assert.Equal(Array.ConvertAll(fx.Ops.ToDoubleArray(f), v => Kit.Round(v, dtype)), fx.Ops.ToDoubleArray(t));
    }

    [Fact]
    public void NormalFollowsBoxMullerOfTheSpec()
    {
        const ulong seed = 77;
        using var t = fx.Ops.Empty(new Shape(40_001));
        fx.Ops.RandomNormal(t, seed, 2, 0.5, 2);
        var got = fx.Ops.ToArray<float>(t);
        double sum = 0, sumSq = 0;
        for (int i = 0; i < got.Length; i++)
        {
            ulong g = 2 + (ulong)i;
            var (x0, x1, x2, x3) = Philox.Block(seed, g / 4);
            (uint a, uint b) = g % 4 < 2 ? (x0, x1) : (x2, x3);
            double u1 = ((a >> 8) + 1) / 16777216.0, u2 = (b >> 8) / 16777216.0;
            double r = Math.Sqrt(-2 * Math.Log(u1)), th = 2 * Math.PI * u2;
            double want = 0.5 + (2 * (g % 2 == 0 ? r * Math.Cos(th) : r * Math.Sin(th)));
            // F32 log/cos/sin within a few ULPs, amplified by r ≤ 5.8 and std 2: 1e-5 absolute is ample and
            // far below the 2/2^24-wide spacing of inputs that would pick another value.
            Assert.True(Math.Abs(got[i] - want) <= 1e-5 * Math.Max(1, Math.Abs(want)), $"seed={seed} i={i}: {got[i]} vs {want}");
            sum += got[i];
            sumSq += got[i] * got[i];
        }
        double mean = sum / got.Length, std = Math.Sqrt((sumSq / got.Length) - (mean * mean));
        // 40 000 draws: the sample mean's standard error is 2/200 = 0.01; 5 sigma.
        Assert.InRange(mean, 0.45, 0.55);
        Assert.InRange(std, 1.95, 2.05);
    }

    [Fact]
    public void F32NormalIsBitIdenticalToTheSpecFunction()
    {
        using var t = fx.Ops.Empty(new Shape(1001));
        fx.Ops.RandomNormal(t, 21, 3, -1, 0.5);
        var got = fx.Ops.ToArray<float>(t);
        for (int i = 0; i < got.Length; i++)
        {
            Assert.Equal(Philox.Normal(21, 3 + (ulong)i, -1f, 0.5f), got[i]);
        }
    }

    [Fact]
    public void AnOffsetDrawIsTheTailOfTheDrawFromZero()
    {
        using var whole = fx.Ops.Empty(new Shape(100));
        using var tail = fx.Ops.Empty(new Shape(93));
        fx.Ops.RandomNormal(whole, 11, 0);
        fx.Ops.RandomNormal(tail, 11, 7);
        Assert.Equal(fx.Ops.ToArray<float>(whole)[7..], fx.Ops.ToArray<float>(tail));
    }
}
