using Hal.Backends.Npu.Onnx;

namespace Hal.Backends.Npu;

// Optimizer steps in place. Shapes: param, grad [n] (F32 or 16-bit, computed in F32); m, v [n] F32.
// Hyper-parameters arrive as a small F32 input, not as constants, so a learning-rate schedule reuses one session.
internal sealed unsafe partial class NpuKernels
{
    public void AdamW(Tensor param, Tensor grad, Tensor m, Tensor v, AdamWConfig config, long step)
    {
        long n = param.ElementCount;
        if (n == 0)
        {
            return;
        }
        DType pt = param.DType;
        DType gt = grad.DType;
        // [lr, β1, β2, eps, weight decay, 1 − β1^t, 1 − β2^t]
        float[] hyper =
        [
            (float)config.LearningRate, (float)config.Beta1, (float)config.Beta2, (float)config.Epsilon, (float)config.WeightDecay,
            (float)(1 - Math.Pow(config.Beta1, step)), (float)(1 - Math.Pow(config.Beta2, step)),
        ];
        Run(Key("adamw", pt, gt), () =>
        {
            var g = new OnnxGraph();
            string p = g.Cast(g.Input("p", pt, 1), pt, DType.F32);
            string gr = g.Cast(g.Input("g", gt, 1), gt, DType.F32);
            string mi = g.Input("m", DType.F32, 1);
            string vi = g.Input("v", DType.F32, 1);
            string h = g.Input("hyper", DType.F32, 1);
            string H(int i) => g.Node("Gather", [h, g.Scalar(i, DType.I64)]);
            string one = g.Scalar(1, DType.F32);
            string b1 = H(1);
            string b2 = H(2);
            string m2 = g.Node("Add", [g.Node("Mul", [b1, mi]), g.Node("Mul", [g.Node("Sub", [one, b1]), gr])]);
            string v2 = g.Node("Add", [g.Node("Mul", [b2, vi]), g.Node("Mul", [g.Node("Sub", [one, b2]), g.Node("Mul", [gr, gr])])]);
            string mhat = g.Node("Div", [m2, H(5)]);
            string vhat = g.Node("Div", [v2, H(6)]);
            string u = g.Node("Add", [g.Node("Div", [mhat, g.Node("Add", [g.Node("Sqrt", [vhat]), H(3)])]), g.Node("Mul", [H(4), p])]);
            string p2 = g.Node("Sub", [p, g.Node("Mul", [H(0), u])]);
            g.Output("p_out", g.Cast(p2, DType.F32, pt), pt, 1);
            g.Output("m_out", m2, DType.F32, 1);
            g.Output("v_out", v2, DType.F32, 1);
            return g;
        }, [As(param, n), As(grad, n), As(m, n), As(v, n), HostFloats(hyper)], [As(param, n), As(m, n), As(v, n)]);
    }
}
