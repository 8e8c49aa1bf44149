using Hal.Backends.Npu.Onnx;

namespace Hal.Backends.Npu;

// Rotary embedding, half-split convention. Shapes: x, y [B, T, H, D]; cos, sin [Tmax, D/2] F32, of which rows
// positionOffset .. positionOffset + T are bound as [T, D/2] views and broadcast as [1, T, 1, D/2].
internal sealed unsafe partial class NpuKernels
{
    public void Rotary(Tensor x, Tensor cos, Tensor sin, int positionOffset, Tensor y) => RotaryCore(x, cos, sin, positionOffset, y, inverse: false);

    public void RotaryBackward(Tensor dy, Tensor cos, Tensor sin, int positionOffset, Tensor dx) => RotaryCore(dy, cos, sin, positionOffset, dx, inverse: true);

    /// <summary>y = x1·cos − x2·sin ‖ x2·cos + x1·sin over the two halves of the last axis; the inverse negates sin.</summary>
    private void RotaryCore(Tensor x, Tensor cos, Tensor sin, int positionOffset, Tensor y, bool inverse)
    {
        if (x.ElementCount == 0)
        {
            return;
        }
        long t = x.Shape[1];
        long half = x.Shape[3] / 2;
        var rows = new Shape(checked((int)t), checked((int)half));
        var cosRows = cos.View(positionOffset * half, rows);
        var sinRows = sin.View(positionOffset * half, rows);
        DType dtype = x.DType;
        Run(Key(inverse ? "rotary_backward" : "rotary", dtype), () =>
        {
            var g = new OnnxGraph();
            string xv = g.Cast(g.Input("x", dtype, 4), dtype, DType.F32);
            string c = g.Node("Unsqueeze", [g.Input("cos", DType.F32, 2), g.Int64s(0, 2)]);
            string s = g.Node("Unsqueeze", [g.Input("sin", DType.F32, 2), g.Int64s(0, 2)]);
            if (inverse)
            {
                s = g.Node("Neg", [s]);
            }
            var halves = g.NodeN("Split", [xv], 2, Attr.Int("axis", 3));
            string x1 = halves[0];
            string x2 = halves[1];
            string y1 = g.Node("Sub", [g.Node("Mul", [x1, c]), g.Node("Mul", [x2, s])]);
            string y2 = g.Node("Add", [g.Node("Mul", [x2, c]), g.Node("Mul", [x1, s])]);
            g.Output("y", g.Cast(g.Node("Concat", [y1, y2], Attr.Int("axis", 3)), DType.F32, dtype), dtype, 4);
            return g;
        }, [x, cosRows, sinRows], [y]);
    }
}
