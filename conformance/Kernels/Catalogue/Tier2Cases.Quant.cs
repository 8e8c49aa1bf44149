using Hal.Conformance.Oracle;

namespace Hal.Conformance.Kernels.Catalogue;

// quantize_int8 and dequantize_int8. Shapes: x, q, y [r,c]; scale [r] F32; q I8.
public static partial class Tier2Cases
{
    private static IEnumerable<KernelCase> QuantCases()
    {
        foreach (var dtype in FloatDTypes)
        {
            foreach (int cols in RowLengths)
            {
                int rows = cols >= 1024 ? 2 : 4;
                string shape = Dims(rows, cols);
                bool quick = cols == 33;
                foreach (var kind in new[] { ValueKind.Normal, ValueKind.Large })
                {
                    foreach (var c in Both(FusedOp.QuantizeInt8, dtype, shape, $"{KindName(kind)}-zero-row", quick && kind == ValueKind.Normal,
                        $"per-row symmetric int8 quantisation, {kind} inputs, row 1 all zeros (scale 1, q 0)",
                        ctx => RunQuantize(ctx, dtype, rows, cols, kind), [DType.I8, DType.F32]))
                    {
                        yield return c;
                    }
                }
                foreach (var c in Both(FusedOp.DequantizeInt8, dtype, shape, "normal", quick,
                    "y = q·scale[r] for int8 q in [−127, 127]",
                    ctx => RunDequantize(ctx, dtype, rows, cols), [DType.I8, DType.F32]))
                {
                    yield return c;
                }
            }
        }
    }

    private static IReadOnlyList<CaseOutput> RunQuantize(CaseContext ctx, DType dtype, int rows, int cols, ValueKind kind)
    {
        double[] x = ctx.Values.Floats((long)rows * cols, kind, dtype);
        if (rows > 1)
        {
            Array.Clear(x, cols, cols);
        }
        var shape = new Shape(rows, cols);
        var tx = ctx.Upload(x, shape, dtype);
        var tq = ctx.Output(shape, DType.I8);
        var tscale = ctx.Output(new Shape(rows), DType.F32);
        ctx.Ops.QuantizeInt8(tx, tq, tscale);
        var (q, scale) = RefNN.QuantizeInt8(x, rows, cols);
        string op = KernelNames.Of(FusedOp.QuantizeInt8);
        return
        [
            Out("q", op, DType.I8, ctx.Download(tq), q),
            Out("scale", op, DType.F32, ctx.Download(tscale), scale),
        ];
    }

    private static IReadOnlyList<CaseOutput> RunDequantize(CaseContext ctx, DType dtype, int rows, int cols)
    {
        double[] q = ctx.Values.Integers((long)rows * cols, -127, 127);
        double[] scale = ctx.Values.Floats(rows, ValueKind.Positive, DType.F32);
        var shape = new Shape(rows, cols);
        var tq = ctx.Upload(q, shape, DType.I8);
        var tscale = ctx.Upload(scale, new Shape(rows), DType.F32);
        var ty = ctx.Output(shape, dtype);
        ctx.Ops.DequantizeInt8(tq, tscale, ty);
        var y = new double[q.Length];
        for (int i = 0; i < y.Length; i++)
        {
            y[i] = q[i] * scale[i / cols];
        }
        return [Out("y", KernelNames.Of(FusedOp.DequantizeInt8), dtype, ctx.Download(ty), y)];
    }
}
