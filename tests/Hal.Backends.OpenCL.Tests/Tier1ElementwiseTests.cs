using static Hal.Backends.OpenCL.Tests.OpenClTestKit;

namespace Hal.Backends.OpenCL.Tests;

// Element-wise tier-1 kernels on opencl:0 against the CPU backend on the same inputs (sizes around the 128-wide
// work-groups, special values where the op allows).
public class Tier1ElementwiseTests
{
    private static readonly double[] Specials = [double.NaN, double.PositiveInfinity, double.NegativeInfinity, 0.0, -0.0, 1e-40, -1e-40, 0.5, 1.5, 2.5, -2.5];

    [OpenClFact]
    public void UnaryMatchesCpuForEveryOpAndFloatDType()
    {
        const int seed = 11;
        foreach (var dtype in FloatDTypes())
        {
            foreach (var op in Enum.GetValues<UnaryOp>())
            {
                foreach (int n in new[] { 0, 1, 7, 129 })
                {
                    var values = RandomValues(seed, n, -4, 4).Concat(n > 100 ? Specials : []).ToArray();
                    var (cl, cpu) = Both(values, new Shape(values.Length), dtype);
                    using (cl)
                    using (cpu)
                    {
                        var y1 = ClOps.Empty(cl.Shape, dtype);
                        var y2 = CpuOps.Empty(cpu.Shape, dtype);
                        ClOps.Unary(op, cl, y1);
                        CpuOps.Unary(op, cpu, y2);
                        // Tolerance: the OpenCL C built-ins are within 4 ULP (exp, log, tanh, erf, sin, cos) and the
                        // composed ops (sigmoid, GELU, SiLU) add a few roundings: 32 ULP of the dtype, or one 16-bit rounding.
                        // Denormal inputs may be flushed by the device, so the absolute floor is the smallest normal F32.
                        Close(CpuOps.ToDoubleArray(y2), ClOps.ToDoubleArray(y1), Tol(dtype, 32), 1.2e-38, $"{op} {dtype.Name()} n={n} seed={seed}");
                        y1.Dispose();
                        y2.Dispose();
                    }
                }
            }
        }
    }

    [OpenClFact]
    public void IntegerUnaryOpsMatchCpu()
    {
        foreach (var dtype in new[] { DType.I32, DType.I64, DType.I8 })
        {
            foreach (var op in new[] { UnaryOp.Neg, UnaryOp.Abs, UnaryOp.Relu, UnaryOp.Square })
            {
                double[] values = [0, 1, -1, 5, -7, 100, -100, 11];
                var (cl, cpu) = Both(values, new Shape(values.Length), dtype);
                var y1 = ClOps.Empty(cl.Shape, dtype);
                var y2 = CpuOps.Empty(cpu.Shape, dtype);
                ClOps.Unary(op, cl, y1);
                CpuOps.Unary(op, cpu, y2);
                // Integers are exact.
                Assert.Equal(CpuOps.ToDoubleArray(y2), ClOps.ToDoubleArray(y1));
            }
        }
    }

    [OpenClFact]
    public void BinarySameShapeAndBroadcastMatchCpu()
    {
        const int seed = 5;
        Shape[][] cases =
        [
            [new(33), new(33)],
            [new(4, 17), new(17)],
            [new(4, 1), new(1, 9)],
            [new(2, 3, 1, 5), new(3, 4, 1)],
            [new(65), new(1)],
            [new(0, 3), new(3)],
            [new(), new(2, 2)],
        ];
        var dtypes = FloatDTypes().Concat([DType.I32, DType.I64, DType.I8, DType.U8]);
        foreach (var dtype in dtypes)
        {
            foreach (var op in Enum.GetValues<BinaryOp>())
            {
                if (op == BinaryOp.Pow && !dtype.IsFloatingPoint())
                {
                    continue;
                }
                foreach (var c in cases)
                {
                    var av = RandomValues(seed, c[0].ElementCount, -5, 5);
                    var bv = RandomValues(seed + 1, c[1].ElementCount, -5, 5);
                    if (!dtype.IsFloatingPoint())
                    {
                        av = av.Select(v => Math.Round(v)).ToArray();
                        bv = bv.Select(v => Math.Round(v)).ToArray();
                    }
                    if (op == BinaryOp.Pow)
                    {
                        av = av.Select(v => Math.Abs(v)).ToArray();
                    }
                    var (a1, a2) = Both(av, c[0], dtype);
                    var (b1, b2) = Both(bv, c[1], dtype);
                    var shape = Shape.Broadcast(c[0], c[1])!;
                    var y1 = ClOps.Empty(shape, dtype);
                    var y2 = CpuOps.Empty(shape, dtype);
                    ClOps.Binary(op, a1, b1, y1);
                    CpuOps.Binary(op, a2, b2, y2);
                    // Add/Sub/Mul/Div/Max/Min are correctly rounded in both; Pow is within 16 ULP (OpenCL pow ≤ 16 ULP).
                    Close(CpuOps.ToDoubleArray(y2), ClOps.ToDoubleArray(y1), Tol(dtype, 16), 0, $"{op} {dtype.Name()} {c[0]}·{c[1]} seed={seed}");
                }
            }
        }
    }

    [OpenClFact]
    public void IntegerDivisionTruncatesAndDivisionByZeroIsZero()
    {
        var a = ClOps.FromArray(new double[] { 7, -7, 7, -7, 5, int.MinValue }, new Shape(6), DType.I32);
        var b = ClOps.FromArray(new double[] { 2, 2, -2, -2, 0, -1 }, new Shape(6), DType.I32);
        var y = ClOps.Empty(new Shape(6), DType.I32);
        ClOps.Binary(BinaryOp.Div, a, b, y);
        Assert.Equal(new double[] { 3, -3, -3, 3, 0, int.MinValue }, ClOps.ToDoubleArray(y));
    }

    [OpenClFact]
    public void NanPropagatesThroughMaxAndMin()
    {
        var a = ClOps.FromArray(new double[] { double.NaN, 1, 2 }, new Shape(3));
        var b = ClOps.FromArray(new double[] { 0, double.NaN, 3 }, new Shape(3));
        var y = ClOps.Empty(new Shape(3));
        ClOps.Binary(BinaryOp.Max, a, b, y);
        var max = ClOps.ToDoubleArray(y);
        ClOps.Binary(BinaryOp.Min, a, b, y);
        var min = ClOps.ToDoubleArray(y);
        Assert.True(double.IsNaN(max[0]) && double.IsNaN(max[1]) && max[2] == 3, string.Join(",", max));
        Assert.True(double.IsNaN(min[0]) && double.IsNaN(min[1]) && min[2] == 2, string.Join(",", min));
    }

    [OpenClFact]
    public void FillWritesTheCastValueForEveryDType()
    {
        foreach (var dtype in ClOps.Device.Capabilities.DTypes)
        {
            foreach (double value in new[] { 0.0, 1.5, -3.75, 300.0, double.NaN })
            {
                var t1 = ClOps.Empty(new Shape(17), dtype);
                var t2 = CpuOps.Empty(new Shape(17), dtype);
                ClOps.Fill(t1, value);
                CpuOps.Fill(t2, value);
                // Both apply the contract's cast rules to one value: bit-identical.
                Assert.Equal(CpuOps.ToDoubleArray(t2), ClOps.ToDoubleArray(t1));
            }
        }
    }

    [OpenClFact]
    public void CopyHandlesViewsAndOverlap()
    {
        var t = ClOps.FromArray(Enumerable.Range(0, 10).Select(i => (double)i).ToArray(), new Shape(10));
        ClOps.Copy(t.View(0, new Shape(6)), t.View(3, new Shape(6)));
        Assert.Equal(new double[] { 0, 1, 2, 0, 1, 2, 3, 4, 5, 9 }, ClOps.ToDoubleArray(t));
    }
}
