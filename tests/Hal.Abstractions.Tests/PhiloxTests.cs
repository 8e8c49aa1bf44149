using Hal.Numerics;

namespace Hal.Abstractions.Tests;

public sealed class PhiloxTests
{
    [Fact]
    public void BlockZeroMatchesTheRandom123KnownAnswer()
    {
        // Philox4x32-10 with counter (0,0,0,0) and key (0,0), from Random123's published known-answer vectors.
        var (x0, x1, x2, x3) = Philox.Block(0, 0);
        Assert.Equal(0x6627e8d5u, x0);
        Assert.Equal(0xe169c58du, x1);
        Assert.Equal(0xbc57ac4cu, x2);
        Assert.Equal(0x9b00dbd8u, x3);
    }

    [Fact]
    public void RawWalksTheLanesOfEachBlock()
    {
        var (x0, x1, x2, x3) = Philox.Block(5, 2);
        Assert.Equal(new[] { x0, x1, x2, x3 }, Enumerable.Range(8, 4).Select(i => Philox.Raw(5, (ulong)i)));
        Assert.NotEqual(Philox.Block(5, 2), Philox.Block(6, 2));
        Assert.NotEqual(Philox.Block(5, 2), Philox.Block(5, 2 + (1UL << 32)));
    }

    [Theory]
    [InlineData(0UL, 1UL)]
    [InlineData(123UL, 7UL)]
    [InlineData(ulong.MaxValue, 1000UL)]
    public void AnOffsetDrawIsTheTailOfTheDrawFromZero(ulong seed, ulong offset)
    {
        var whole = new float[1100];
        var tail = new float[1100 - (int)offset];
        Philox.FillUniform(whole, seed, 0, -1, 1);
        Philox.FillUniform(tail, seed, offset, -1, 1);
        Assert.Equal(whole[(int)offset..], tail);
        Philox.FillNormal(whole, seed, 0, 0, 1);
        Philox.FillNormal(tail, seed, offset, 0, 1);
        Assert.Equal(whole[(int)offset..], tail);
    }

    [Fact]
    public void UniformStaysInTheHalfOpenRange()
    {
        Assert.Equal(0f, Philox.ToUnit(0));
        Assert.Equal(1f - Philox.UnitScale, Philox.ToUnit(uint.MaxValue));
        for (ulong i = 0; i < 20_000; i++)
        {
            float u = Philox.Uniform(99, i, 2f, 5f);
            Assert.True(u >= 2f && u < 5f, $"seed=99 index {i}: {u}");
        }
    }

    [Fact]
    public void UniformMomentsMatchTheDistribution()
    {
        const int n = 100_000;
        double sum = 0, sumSq = 0;
        for (ulong i = 0; i < n; i++)
        {
            double u = Philox.Uniform(3, i, 0, 1);
            sum += u;
            sumSq += u * u;
        }
        // Mean 1/2 and variance 1/12; standard errors ≈ 0.0009 and 0.0003, bounds are 5 sigma.
        Assert.InRange(sum / n, 0.5 - 0.0046, 0.5 + 0.0046);
        Assert.InRange((sumSq / n) - ((sum / n) * (sum / n)), (1.0 / 12) - 0.0015, (1.0 / 12) + 0.0015);
    }
}
