using Hal.Backends.Npu.Onnx;

namespace Hal.Backends.Npu;

// Reductions along one axis. Shapes: x is viewed as [outer, n, inner] around the axis; y and indices as [outer, 1, inner].
internal sealed unsafe partial class NpuKernels
{
    public void Reduce(ReduceOp op, Tensor x, int axis, Tensor y)
    {
        if (y.ElementCount == 0)
        {
            return;
        }
        var (outer, n, inner) = Split(x.Shape, axis);
        if (n == 0)
        {
            // ONNX reductions of an empty axis are not uniform across operators: Hal's identities are written directly.
            Fill(y, op switch
            {
                ReduceOp.Sum => 0,
                ReduceOp.Mean => double.NaN,
                ReduceOp.Max => double.NegativeInfinity,
                _ => double.PositiveInfinity,
            });
            return;
        }
        DType dtype = x.DType;
        string key = Key("reduce", op, dtype);
        Run(key, () =>
        {
            var g = new OnnxGraph();
            DType ct = ComputeType(dtype);
            string input = g.Cast(g.Input("x", dtype, 3), dtype, ct);
            string r = op switch
            {
                ReduceOp.Sum => g.Node("ReduceSum", [input, g.Int64s(1)], Attr.Int("keepdims", 1)),
                ReduceOp.Mean => g.Node("ReduceMean", [input], Attr.Ints("axes", 1), Attr.Int("keepdims", 1)),
                ReduceOp.Max => g.Node("ReduceMax", [input], Attr.Ints("axes", 1), Attr.Int("keepdims", 1)),
                _ => g.Node("ReduceMin", [input], Attr.Ints("axes", 1), Attr.Int("keepdims", 1)),
            };
            if (ct.IsFloatingPoint() && op is ReduceOp.Max or ReduceOp.Min)
            {
                // NaN-propagating: a row with a NaN reduces to NaN whatever the operator's comparison does with it.
                string nanCount = g.Node("ReduceSum", [g.Cast(g.Node("IsNaN", [input]), DType.Bool, ct), g.Int64s(1)], Attr.Int("keepdims", 1));
                string hasNan = g.Node("Greater", [nanCount, g.Scalar(0, ct)]);
                r = g.Node("Where", [hasNan, g.Scalar(double.NaN, ct), r]);
            }
            g.Output("y", g.Cast(r, ct, dtype), dtype, 3);
            return g;
        }, [As(x, outer, n, inner)], [As(y, outer, 1, inner)], () => Host.Run([x, y], [y], (k, m) => k.Reduce(op, m(x)!, axis, m(y)!)));
    }

    public void ArgMax(Tensor x, int axis, Tensor indices)
    {
        if (indices.ElementCount == 0)
        {
            return;
        }
        var (outer, n, inner) = Split(x.Shape, axis);
        DType dtype = x.DType;
        string key = Key("argmax", dtype);
        Run(key, () =>
        {
            var g = new OnnxGraph();
            DType ct = ComputeType(dtype);
            string input = g.Cast(g.Input("x", dtype, 3), dtype, ct);
            string arg = g.Node("ArgMax", [input], Attr.Int("axis", 1), Attr.Int("keepdims", 1), Attr.Int("select_last_index", 0));
            if (ct.IsFloatingPoint())
            {
                // A NaN counts as the maximum: the first NaN wins where the row has one.
                string nan = g.Cast(g.Node("IsNaN", [input]), DType.Bool, DType.F32);
                string firstNan = g.Node("ArgMax", [nan], Attr.Int("axis", 1), Attr.Int("keepdims", 1), Attr.Int("select_last_index", 0));
                string hasNan = g.Node("Greater", [g.Node("ReduceMax", [nan], Attr.Ints("axes", 1), Attr.Int("keepdims", 1)), g.Scalar(0, DType.F32)]);
                arg = g.Node("Where", [hasNan, firstNan, arg]);
            }
            g.Output("y", arg, DType.I64, 3);
            return g;
        }, [As(x, outer, n, inner)], [As(indices, outer, 1, inner)], () => Host.Run([x, indices], [indices], (k, m) => k.ArgMax(m(x)!, axis, m(indices)!)));
    }

    /// <summary>[outer, axis, inner] view of a shape around <paramref name="axis"/>.</summary>
    private static (long Outer, long Axis, long Inner) Split(Shape shape, int axis) =>
        (shape.Product(0, axis), shape[axis], shape.Product(axis + 1, shape.Rank));
}
