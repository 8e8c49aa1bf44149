using Hal.Conformance.Oracle;

namespace Hal.Conformance.Kernels.Catalogue;

// softmax, log_softmax and their backward passes. Shapes: x, y, dy, dx [r,c], the op along c.
public static partial class Tier2Cases
{
    private static IEnumerable<KernelCase> SoftmaxFamily()
    {
        foreach (var dtype in FloatDTypes)
        {
            foreach (int cols in RowLengths)
            {
                int rows = cols >= 1024 ? 2 : 3;
                string shape = Dims(rows, cols);
                foreach (var kind in new[] { ValueKind.Normal, ValueKind.Edge, ValueKind.Large })
                {
                    bool quick = (cols == 33 && kind == ValueKind.Large) || (cols == 1024 && kind == ValueKind.Normal);
                    foreach (var c in Both(FusedOp.Softmax, dtype, shape, KindName(kind), quick,
                        $"y = softmax(x) along rows, {kind} inputs (Large: values ~±1e4 catch a missing max subtraction)",
                        ctx => RunSoftmax(ctx, dtype, rows, cols, kind, log: false)))
                    {
                        yield return c;
                    }
                    foreach (var c in Both(FusedOp.LogSoftmax, dtype, shape, KindName(kind), quick,
                        $"y = log_softmax(x) along rows, {kind} inputs",
                        ctx => RunSoftmax(ctx, dtype, rows, cols, kind, log: true)))
                    {
                        yield return c;
                    }
                }
                foreach (var kind in new[] { ValueKind.Normal, ValueKind.Large })
                {
                    bool quick = cols == 33 && kind == ValueKind.Normal;
                    foreach (var c in Both(FusedOp.SoftmaxBackward, dtype, shape, KindName(kind), quick,
                        $"dx = y(dy − Σ dy·y) from y = softmax(x), {kind} x",
                        ctx => RunSoftmaxBackward(ctx, dtype, rows, cols, kind, log: false)))
                    {
                        yield return c;
                    }
                    foreach (var c in Both(FusedOp.LogSoftmaxBackward, dtype, shape, KindName(kind), quick,
                        $"dx = dy − exp(y)·Σ dy from y = log_softmax(x), {kind} x",
                        ctx => RunSoftmaxBackward(ctx, dtype, rows, cols, kind, log: true)))
                    {
                        yield return c;
                    }
                }
            }
        }
    }

    private static IReadOnlyList<CaseOutput> RunSoftmax(CaseContext ctx, DType dtype, int rows, int cols, ValueKind kind, bool log)
    {
        double[] x = ctx.Values.Floats((long)rows * cols, kind, dtype);
        var shape = new Shape(rows, cols);
        var tx = ctx.Upload(x, shape, dtype);
        var ty = ctx.Output(shape, dtype);
        if (log)
        {
            ctx.Ops.LogSoftmax(tx, ty);
        }
        else
        {
            ctx.Ops.Softmax(tx, ty);
        }
        double[] expected = log ? RefNN.LogSoftmax(x, rows, cols) : RefNN.Softmax(x, rows, cols);
        var scale = new double[expected.Length];
        for (int r = 0; r < rows; r++)
        {
            int o = r * cols;
            double max = RefNN.RowMax(x, o, cols);
            double logSum = RefNN.LogSumExp(x, o, cols) - max;
            for (int c = 0; c < cols; c++)
            {
                // softmax: the rounding of x − m moves exp's argument by u·|x − m|, the sum adds γ(n): y·(1 + |x − m|).
                // log_softmax: an absolute error from every term of x − m − log Σ.
                scale[o + c] = log
                    ? Math.Abs(x[o + c]) + Math.Abs(max) + Math.Abs(logSum) + 1
                    : expected[o + c] * (1 + Math.Abs(x[o + c] - max));
            }
        }
        string op = KernelNames.Of(log ? FusedOp.LogSoftmax : FusedOp.Softmax);
        return [Out("y", op, dtype, ctx.Download(ty), expected, cols, scale)];
    }

    private static IReadOnlyList<CaseOutput> RunSoftmaxBackward(CaseContext ctx, DType dtype, int rows, int cols, ValueKind kind, bool log)
    {
        double[] x = ctx.Values.Floats((long)rows * cols, kind, dtype);
        CaseContext.Quantize(x, dtype);
        // y is what the device's forward pass saved: the oracle's forward result rounded to the dtype.
        double[] y = log ? RefNN.LogSoftmax(x, rows, cols) : RefNN.Softmax(x, rows, cols);
        double[] dy = ctx.Values.Floats((long)rows * cols, ValueKind.Normal, dtype);
        var shape = new Shape(rows, cols);
        var ty = ctx.Upload(y, shape, dtype);
        var tdy = ctx.Upload(dy, shape, dtype);
        var tdx = ctx.Output(shape, dtype);
        if (log)
        {
            ctx.Ops.LogSoftmaxBackward(ty, tdy, tdx);
        }
        else
        {
            ctx.Ops.SoftmaxBackward(ty, tdy, tdx);
        }
        double[] expected = log ? RefNN.LogSoftmaxBackward(y, dy, rows, cols) : RefNN.SoftmaxBackward(y, dy, rows, cols);
        var scale = new double[expected.Length];
        for (int r = 0; r < rows; r++)
        {
            int o = r * cols;
            double sumAbs = 0;
            for (int c = 0; c < cols; c++)
            {
                sumAbs += log ? Math.Abs(dy[o + c]) : Math.Abs(dy[o + c] * y[o + c]);
            }
            for (int c = 0; c < cols; c++)
            {
                // The formula on absolute values (the table's running-error form).
                scale[o + c] = log
                    ? Math.Abs(dy[o + c]) + Math.Exp(y[o + c]) * (1 + Math.Abs(y[o + c])) * sumAbs
                    : Math.Abs(y[o + c]) * (Math.Abs(dy[o + c]) + sumAbs);
            }
        }
        string op = KernelNames.Of(log ? FusedOp.LogSoftmaxBackward : FusedOp.SoftmaxBackward);
        return [Out("dx", op, dtype, ctx.Download(tdx), expected, cols, scale)];
    }
}
