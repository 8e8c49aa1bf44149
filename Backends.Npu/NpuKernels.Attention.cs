using Hal.Backends.Npu.Onnx;

namespace Hal.Backends.Npu;

// Scaled-dot-product attention. Shapes: q, output, dq [B, H, Tq, D] bound as [B, Hkv, G, Tq, D] with G = H / Hkv
// (query head h uses key/value head h / G, and that grouping is exactly the contiguous layout); k, v, dk, dv
// [B, Hkv, Tk, D] bound as [B, Hkv, 1, Tk, D], so MatMul broadcasts them over G; lse [B, H, Tq] as [B, Hkv, G, Tq].
internal sealed unsafe partial class NpuKernels
{
    public void Attention(Tensor q, Tensor k, Tensor v, bool causal, double scale, Tensor output, Tensor lse)
    {
        var (b, h, hkv, tq, tk, d) = AttentionDims(q, k);
        if (q.ElementCount == 0)
        {
            return;
        }
        if (tk == 0)
        {
            // No key at all: every row sees nothing.
            Fill(output, 0);
            Fill(lse, double.NegativeInfinity);
            return;
        }
        long g = h / hkv;
        DType dtype = q.DType;
        Run(Key("attention", dtype, causal ? "causal" : "full", Bits(scale)), () =>
        {
            var gr = new OnnxGraph();
            string qv = gr.Cast(gr.Input("q", dtype, 5), dtype, DType.F32);
            string kv = gr.Cast(gr.Input("k", dtype, 5), dtype, DType.F32);
            string vv = gr.Cast(gr.Input("v", dtype, 5), dtype, DType.F32);
            string s = Scores(gr, qv, kv, causal, scale);
            string l = gr.Node("ReduceLogSumExp", [s], Attr.Ints("axes", 4), Attr.Int("keepdims", 1));
            string p = Probabilities(gr, s, l);
            string o = gr.Node("MatMul", [p, vv]);
            gr.Output("out", gr.Cast(o, DType.F32, dtype), dtype, 5);
            gr.Output("lse", gr.Node("Squeeze", [l, gr.Int64s(4)]), DType.F32, 4);
            return gr;
        }, [As(q, b, hkv, g, tq, d), As(k, b, hkv, 1, tk, d), As(v, b, hkv, 1, tk, d)], [As(output, b, hkv, g, tq, d), As(lse, b, hkv, g, tq)]);
    }

    public void AttentionBackward(Tensor q, Tensor k, Tensor v, Tensor output, Tensor lse, Tensor dOutput, bool causal, double scale, Tensor dq, Tensor dk, Tensor dv)
    {
        var (b, h, hkv, tq, tk, d) = AttentionDims(q, k);
        if (tq == 0 || tk == 0 || d == 0)
        {
            Fill(dq, 0);
            Fill(dk, 0);
            Fill(dv, 0);
            return;
        }
        long g = h / hkv;
        DType dtype = q.DType;
        Run(Key("attention_backward", dtype, causal ? "causal" : "full", Bits(scale)), () =>
        {
            var gr = new OnnxGraph();
            string qv = gr.Cast(gr.Input("q", dtype, 5), dtype, DType.F32);
            string kv = gr.Cast(gr.Input("k", dtype, 5), dtype, DType.F32);
            string vv = gr.Cast(gr.Input("v", dtype, 5), dtype, DType.F32);
            string ov = gr.Cast(gr.Input("o", dtype, 5), dtype, DType.F32);
            string lv = gr.Node("Unsqueeze", [gr.Input("lse", DType.F32, 4), gr.Int64s(4)]);
            string dov = gr.Cast(gr.Input("do", dtype, 5), dtype, DType.F32);
            string p = Probabilities(gr, Scores(gr, qv, kv, causal, scale), lv);
            // dv = Σ_G pᵀ·dO; dp = dO·vᵀ; ds = p ⊙ (dp − rowsum(dO ⊙ O)) · scale; dq = ds·k; dk = Σ_G dsᵀ·q.
            string pt = gr.Node("Transpose", [p], Attr.Ints("perm", 0, 1, 2, 4, 3));
            string dvv = gr.Node("ReduceSum", [gr.Node("MatMul", [pt, dov]), gr.Int64s(2)], Attr.Int("keepdims", 1));
            string dp = gr.Node("MatMul", [dov, gr.Node("Transpose", [vv], Attr.Ints("perm", 0, 1, 2, 4, 3))]);
            string delta = gr.Node("ReduceSum", [gr.Node("Mul", [dov, ov]), gr.Int64s(4)], Attr.Int("keepdims", 1));
            string ds = gr.Node("Mul", [gr.Node("Mul", [p, gr.Node("Sub", [dp, delta])]), gr.Scalar(scale, DType.F32)]);
            string dqv = gr.Node("MatMul", [ds, kv]);
            string dst = gr.Node("Transpose", [ds], Attr.Ints("perm", 0, 1, 2, 4, 3));
            string dkv = gr.Node("ReduceSum", [gr.Node("MatMul", [dst, qv]), gr.Int64s(2)], Attr.Int("keepdims", 1));
            gr.Output("dq", gr.Cast(dqv, DType.F32, dtype), dtype, 5);
            gr.Output("dk", gr.Cast(dkv, DType.F32, dtype), dtype, 5);
            gr.Output("dv", gr.Cast(dvv, DType.F32, dtype), dtype, 5);
            return gr;
        }, [As(q, b, hkv, g, tq, d), As(k, b, hkv, 1, tk, d), As(v, b, hkv, 1, tk, d), As(output, b, hkv, g, tq, d), As(lse, b, hkv, g, tq), As(dOutput, b, hkv, g, tq, d)],
            [As(dq, b, hkv, g, tq, d), As(dk, b, hkv, 1, tk, d), As(dv, b, hkv, 1, tk, d)]);
    }

    private static (long B, long H, long Hkv, long Tq, long Tk, long D) AttentionDims(Tensor q, Tensor k) =>
        (q.Shape[0], q.Shape[1], k.Shape[1], q.Shape[2], k.Shape[2], q.Shape[3]);

    /// <summary>scale · q·kᵀ [B, Hkv, G, Tq, Tk], with −∞ where causal hides key j from query i (j &gt; i + Tk − Tq).</summary>
    private static string Scores(OnnxGraph g, string q, string k, bool causal, double scale)
    {
        string kt = g.Node("Transpose", [k], Attr.Ints("perm", 0, 1, 2, 4, 3));
        string s = g.Node("Mul", [g.Node("MatMul", [q, kt]), g.Scalar(scale, DType.F32)]);
        if (!causal)
        {
            return s;
        }
        string shape = g.Node("Shape", [s]);
        string tq = g.Node("Gather", [shape, g.Scalar(3, DType.I64)]);
        string tk = g.Node("Gather", [shape, g.Scalar(4, DType.I64)]);
        string zero = g.Scalar(0, DType.I64);
        string one = g.Scalar(1, DType.I64);
        string rows = g.Node("Unsqueeze", [g.Node("Range", [zero, tq, one]), g.Int64s(1)]);
        string columns = g.Node("Range", [zero, tk, one]);
        string limit = g.Node("Add", [rows, g.Node("Sub", [tk, tq])]);
        string hidden = g.Node("Greater", [columns, limit]);
        return g.Node("Where", [hidden, g.Scalar(double.NegativeInfinity, DType.F32), s]);
    }

    /// <summary>exp(s − lse), and 0 in rows that see no key (lse = −∞, where the difference is NaN).</summary>
    private static string Probabilities(OnnxGraph g, string s, string lse)
    {
        string p = g.Node("Exp", [g.Node("Sub", [s, lse])]);
        string empty = g.Node("IsInf", [lse], Attr.Int("detect_positive", 0), Attr.Int("detect_negative", 1));
        return g.Node("Where", [empty, g.Scalar(0, DType.F32), p]);
    }
}
