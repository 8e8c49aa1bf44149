using static Hal.Backends.Cpu.Tests.FusedTestSupport;

namespace Hal.Backends.Cpu.Tests;

// Empty shapes, keys-less attention and infinities through the fused kernels.
public sealed class FusedEdgeCaseTests(FusedFixture fx) : IClassFixture<FusedFixture>
{
    [Theory]
    [InlineData(0, 5)]
    [InlineData(3, 0)]
    public void SoftmaxOfEmptyShapesWritesNothingAndDoesNotThrow(int n, int c)
    {
        using var x = fx.Ops.Empty(new Shape(n, c));
        using var y = fx.Ops.Empty(new Shape(n, c));
        fx.Kernels.Softmax(x, y);
        fx.Kernels.LogSoftmax(x, y);
        Assert.Empty(fx.Ops.ToDoubleArray(y));
    }

    [Fact]
    public void QuantizeOfEmptyRowsGivesScaleOne()
    {
        using var x = fx.Ops.Empty(new Shape(2, 0));
        using var q = fx.Ops.Empty(new Shape(2, 0), DType.I8);
        using var scale = fx.Ops.FromArray(new double[] { 7, 7 }, new Shape(2));
        fx.Kernels.QuantizeInt8(x, q, scale);
        Assert.Equal([1.0, 1.0], fx.Ops.ToDoubleArray(scale));
    }

    [Theory]
    [InlineData(DType.F32)]
    [InlineData(DType.F64)]
    public void AttentionWithNoKeysGivesZeroOutputAndMinusInfinityLse(DType dtype)
    {
        var qShape = new Shape(1, 2, 3, 8);
        var kShape = new Shape(1, 2, 0, 8);
        using var q = fx.Ops.FromArray(RandomArray(1500, qShape.ElementCount), qShape, dtype);
        using var k = fx.Ops.Empty(kShape, dtype);
        using var v = fx.Ops.Empty(kShape, dtype);
        using var output = fx.Ops.FromArray(RandomArray(1501, qShape.ElementCount), qShape, dtype);
        using var lse = fx.Ops.Empty(new Shape(1, 2, 3), DType.F32);
        fx.Kernels.Attention(q, k, v, causal: false, 0.5, output, lse);
        Assert.All(fx.Ops.ToDoubleArray(output), o => Assert.Equal(0.0, o));
        Assert.All(fx.Ops.ToDoubleArray(lse), l => Assert.Equal(double.NegativeInfinity, l));
        using var dOut = fx.Ops.FromArray(RandomArray(1502, qShape.ElementCount), qShape, dtype);
        using var dq = fx.Ops.FromArray(RandomArray(1503, qShape.ElementCount), qShape, dtype);
        using var dk = fx.Ops.Empty(kShape, dtype);
        using var dv = fx.Ops.Empty(kShape, dtype);
        fx.Kernels.AttentionBackward(q, k, v, output, lse, dOut, causal: false, 0.5, dq, dk, dv);
        Assert.All(fx.Ops.ToDoubleArray(dq), g => Assert.Equal(0.0, g));
    }

    [Fact]
    public void MinusInfinityLogitsGetZeroProbability()
    {
        // A masked logit (−Inf) contributes exp(−Inf) = 0 and keeps the rest of the row finite.
        double[] x = [double.NegativeInfinity, 0, Math.Log(3)];
        foreach (var dtype in new[] { DType.F32, DType.F64 })
        {
            using var tx = fx.Ops.FromArray(x, new Shape(1, 3), dtype);
            using var y = fx.Ops.Empty(new Shape(1, 3), dtype);
            fx.Kernels.Softmax(tx, y);
            // The ratio 1:3 is exact up to a few ULP of the compute dtype.
            AssertClose([0, 0.25, 0.75], fx.Ops.ToDoubleArray(y), 8 * ComputeEpsilon(dtype), 0, $"softmax with −Inf {dtype}");
        }
    }

    [Fact]
    public void OutOfRangeIndicesThrowBeforeAnyMemoryIsTouched()
    {
        using var weight = fx.Ops.FromArray(RandomArray(1600, 12), new Shape(4, 3));
        using var y = fx.Ops.Empty(new Shape(2, 3));
        using var tooBig = fx.Ops.FromArray(new long[] { 1, 4 }, new Shape(2), DType.I64);
        using var negative = fx.Ops.FromArray(new long[] { -1, 0 }, new Shape(2), DType.I32);
        Assert.Throws<ArgumentOutOfRangeException>(() => fx.Kernels.Embedding(weight, tooBig, y));
        Assert.Throws<ArgumentOutOfRangeException>(() => fx.Kernels.Embedding(weight, negative, y));
        Assert.Throws<ArgumentOutOfRangeException>(() => fx.Kernels.EmbeddingBackward(y, tooBig, weight));
        using var logits = fx.Ops.FromArray(RandomArray(1601, 8), new Shape(2, 4));
        using var targets = fx.Ops.FromArray(new long[] { -5, 4 }, new Shape(2), DType.I64);
        using var losses = fx.Ops.Empty(new Shape(2));
        using var lse = fx.Ops.Empty(new Shape(2));
        Assert.Throws<ArgumentOutOfRangeException>(() => fx.Kernels.CrossEntropy(logits, targets, losses, lse));
    }
}
