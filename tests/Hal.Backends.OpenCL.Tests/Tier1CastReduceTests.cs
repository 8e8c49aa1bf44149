using Hal.Numerics;
using static Hal.Backends.OpenCL.Tests.OpenClTestKit;

namespace Hal.Backends.OpenCL.Tests;

// Cast (every dtype pair), Reduce, ArgMax and Random on opencl:0 against the CPU backend and the Philox spec.
public class Tier1CastReduceTests
{
    // Values that exercise rounding ties, saturation, NaN, infinities, F16/BF16 subnormals and large integers.
    private static readonly double[] CastValues =
    [
        0, -0.0, 1, -1, 0.5, 1.5, 2.5, -2.5, 127.5, 128, 255.9, 256, -129, 300, -300, 65504, 65520, 1e6, -1e6,
        3.4e38, 1e39, -1e39, double.NaN, double.PositiveInfinity, double.NegativeInfinity, 6e-8, 1e-5, 1e-40,
        2147483647, -2147483648, 4294967296.0, 9.3e18, -9.3e18, 16777217, 33554435, 1.00390625, 1.005859375,
    ];

    [OpenClFact]
    public void CastMatchesCpuBitForBitForEveryPair()
    {
        var dtypes = ClOps.Device.Capabilities.DTypes;
        foreach (var from in dtypes)
        {
            var (s1, s2) = Both(CastValues, new Shape(CastValues.Length), from);
            foreach (var to in dtypes)
            {
                var d1 = ClOps.Empty(s1.Shape, to);
                var d2 = CpuOps.Empty(s2.Shape, to);
                ClOps.Cast(s1, d1);
                CpuOps.Cast(s2, d2);
                // The contract fixes every cast's rounding and saturation, so the results are identical.
                var expected = CpuOps.ToDoubleArray(d2);
                var actual = ClOps.ToDoubleArray(d1);
                for (int i = 0; i < expected.Length; i++)
                {
                    Assert.True(expected[i].Equals(actual[i]), $"cast {from.Name()}→{to.Name()} of {CastValues[i]}: expected {expected[i]}, got {actual[i]}");
                }
                d1.Dispose();
                d2.Dispose();
            }
        }
    }

    [OpenClFact]
    public void ReduceMatchesCpuOnEveryAxisAndOp()
    {
        const int seed = 21;
        Shape[] shapes = [new(0), new(1), new(33), new(3, 65), new(4, 7, 5), new(2, 0, 3), new(257)];
        foreach (var dtype in FloatDTypes().Concat([DType.I32, DType.I64, DType.I8, DType.U8]))
        {
            foreach (var shape in shapes)
            {
                var values = RandomValues(seed, shape.ElementCount, -3, 3);
                if (!dtype.IsFloatingPoint())
                {
                    values = values.Select(v => Math.Round(v)).ToArray();
                }
                var (x1, x2) = Both(values, shape, dtype);
                for (int axis = 0; axis < shape.Rank; axis++)
                {
                    foreach (var op in Enum.GetValues<ReduceOp>())
                    {
                        if (op == ReduceOp.Mean && !dtype.IsFloatingPoint())
                        {
                            continue;
                        }
                        var yShape = shape.With(axis, 1);
                        var y1 = ClOps.Empty(yShape, dtype);
                        var y2 = CpuOps.Empty(yShape, dtype);
                        ClOps.Reduce(op, x1, axis, y1);
                        CpuOps.Reduce(op, x2, axis, y2);
                        // Sums differ only in summation order: n·eps relative to the sum of |x| (values in [−3, 3], n ≤ 257).
                        double atol = dtype.IsFloatingPoint() ? 257 * 3 * Tol(dtype, 1) : 0;
                        Close(CpuOps.ToDoubleArray(y2), ClOps.ToDoubleArray(y1), Tol(dtype, 4), atol, $"{op} {dtype.Name()} {shape} axis {axis} seed={seed}");
                    }
                }
            }
        }
    }

    [OpenClFact]
    public void ReduceOfEmptyAxisGivesTheIdentities()
    {
        var x = ClOps.Empty(new Shape(2, 0));
        var y = ClOps.Empty(new Shape(2, 1));
        ClOps.Reduce(ReduceOp.Mean, x, 1, y);
        Assert.True(ClOps.ToDoubleArray(y).All(double.IsNaN));
        ClOps.Reduce(ReduceOp.Max, x, 1, y);
        Assert.Equal([double.NegativeInfinity, double.NegativeInfinity], ClOps.ToDoubleArray(y));
        ClOps.Reduce(ReduceOp.Min, x, 1, y);
        Assert.Equal([double.PositiveInfinity, double.PositiveInfinity], ClOps.ToDoubleArray(y));
        ClOps.Reduce(ReduceOp.Sum, x, 1, y);
        Assert.Equal([0.0, 0.0], ClOps.ToDoubleArray(y));
    }

    [OpenClFact]
    public void ReduceMaxPropagatesNaNAndArgMaxTakesTheFirstNaN()
    {
        var x = ClOps.FromArray(new double[] { 1, double.NaN, 5, double.NaN, 2, 7, 7, 1 }, new Shape(2, 4));
        var y = ClOps.Empty(new Shape(2, 1));
        ClOps.Reduce(ReduceOp.Max, x, 1, y);
        var max = ClOps.ToDoubleArray(y);
        Assert.True(double.IsNaN(max[0]) && max[1] == 7, string.Join(",", max));
        var idx = ClOps.Empty(new Shape(2, 1), DType.I64);
        ClOps.ArgMax(x, 1, idx);
        Assert.Equal([1.0, 1.0], ClOps.ToDoubleArray(idx));
    }

    [OpenClFact]
    public void ArgMaxMatchesCpu()
    {
        const int seed = 8;
        foreach (var dtype in FloatDTypes().Concat([DType.I32, DType.I8]))
        {
            var shape = new Shape(3, 17, 5);
            var values = RandomValues(seed, shape.ElementCount, -4, 4).Select(v => Math.Round(v)).ToArray();
            var (x1, x2) = Both(values, shape, dtype);
            for (int axis = 0; axis < 3; axis++)
            {
                var i1 = ClOps.Empty(shape.With(axis, 1), DType.I64);
                var i2 = CpuOps.Empty(shape.With(axis, 1), DType.I64);
                ClOps.ArgMax(x1, axis, i1);
                CpuOps.ArgMax(x2, axis, i2);
                // Rounded values make ties common: both must pick the first maximum.
                Assert.Equal(CpuOps.ToDoubleArray(i2), ClOps.ToDoubleArray(i1));
            }
        }
    }

    [OpenClFact]
    public void UniformIsBitExactWithThePhiloxSpec()
    {
        foreach (ulong offset in new ulong[] { 0, 1, 3, 4, 1UL << 33 })
        {
            const ulong seed = 0x1234_5678_9ABC_DEF0;
            const int n = 67;
            var t = ClOps.Empty(new Shape(n));
            ClOps.RandomUniform(t, seed, offset, -2, 3);
            var actual = ClOps.ToFloatArray(t);
            for (int i = 0; i < n; i++)
            {
                float expected = Philox.Uniform(seed, offset + (ulong)i, -2, 3);
                Assert.True(BitConverter.SingleToInt32Bits(expected) == BitConverter.SingleToInt32Bits(actual[i]),
                    $"uniform seed {seed} offset {offset} element {i}: expected {expected}, got {actual[i]}");
            }
        }
    }

    [OpenClFact]
    public void RandomMatchesCpuForEveryFloatDType()
    {
        const ulong seed = 42;
        foreach (var dtype in FloatDTypes())
        {
            foreach (var dist in Enum.GetValues<RandomDistribution>())
            {
                var t1 = ClOps.Empty(new Shape(131), dtype);
                var t2 = CpuOps.Empty(new Shape(131), dtype);
                if (dist == RandomDistribution.Uniform)
                {
                    ClOps.RandomUniform(t1, seed, 5, -1, 2);
                    CpuOps.RandomUniform(t2, seed, 5, -1, 2);
                    // Uniforms are bit-exact by the spec.
                    Assert.Equal(CpuOps.ToDoubleArray(t2), ClOps.ToDoubleArray(t1));
                }
                else
                {
                    ClOps.RandomNormal(t1, seed, 5, 0.5, 2);
                    CpuOps.RandomNormal(t2, seed, 5, 0.5, 2);
                    // Normals go through log, sqrt, sin and cos: within a few ULP of the transcendentals (≤ 4 ULP each in
                    // OpenCL C), relative to the magnitude 2·|z| ≤ 2·6 of the samples.
                    Close(CpuOps.ToDoubleArray(t2), ClOps.ToDoubleArray(t1), Tol(dtype, 64), Tol(dtype, 64) * 12, $"normal {dtype.Name()} seed={seed}");
                }
            }
        }
    }
}
