using Hal.Conformance.Oracle;

namespace Hal.Conformance.Kernels.Catalogue;

// attention and its backward. Shapes: q, output, dOutput, dq [B,H,Tq,D]; k, v, dk, dv [B,Hkv,Tk,D]; lse [B,H,Tq] F32.
public static partial class Tier2Cases
{
    /// <summary>One attention configuration.</summary>
    private sealed record AttentionConfig(int B, int H, int Hkv, int Tq, int Tk, int D, bool Causal, double Scale, string Variant)
    {
        public string Shape => $"q{Dims(B, H, Tq, D)} kv{Dims(B, Hkv, Tk, D)}";
    }

    private static readonly AttentionConfig[] AttentionConfigs =
    [
        new(1, 1, 1, 1, 1, 1, false, 1, "tiny"),
        new(2, 2, 2, 7, 7, 8, false, 1 / Math.Sqrt(8), "full"),
        new(2, 2, 2, 7, 7, 8, true, 1 / Math.Sqrt(8), "causal"),
        // Grouped-query attention, Tq < Tk: causal query i sees keys j ≤ i + 4.
        new(1, 4, 2, 5, 9, 16, true, 0.25, "gqa-causal"),
        // Tq > Tk, causal: queries 0..3 see no key (output 0, lse −Inf).
        new(1, 3, 1, 9, 5, 7, true, 0.3, "gqa-causal-masked-rows"),
        new(2, 2, 1, 16, 17, 33, false, 1 / Math.Sqrt(33), "gqa-full"),
        new(1, 2, 2, 33, 65, 8, true, 1 / Math.Sqrt(8), "causal-long"),
        new(1, 1, 1, 3, 64, 64, false, 1.0 / 8, "long-keys"),
        new(1, 2, 2, 4, 9, 8, false, 2, "peaky"),
    ];

    private static IEnumerable<KernelCase> AttentionCases()
    {
        foreach (var dtype in FloatDTypes)
        {
            foreach (var a in AttentionConfigs)
            {
                bool quick = a.Variant == "gqa-causal-masked-rows";
                foreach (var c in Both(FusedOp.Attention, dtype, a.Shape, a.Variant, quick,
                    $"scaled-dot-product attention, scale {a.Scale:G4}, causal={a.Causal}, H={a.H}, Hkv={a.Hkv}",
                    ctx => RunAttention(ctx, dtype, a), [DType.F32]))
                {
                    yield return c;
                }
                foreach (var c in Both(FusedOp.AttentionBackward, dtype, a.Shape, a.Variant, quick,
                    $"attention gradients dq, dk, dv from the saved output and F32 lse, causal={a.Causal}, H={a.H}, Hkv={a.Hkv}",
                    ctx => RunAttentionBackward(ctx, dtype, a), [DType.F32]))
                {
                    yield return c;
                }
            }
        }
    }

    private static (double[] Q, double[] K, double[] V) AttentionInputs(CaseContext ctx, DType dtype, AttentionConfig a)
    {
        double[] q = CaseContext.Quantize(ctx.Values.Floats((long)a.B * a.H * a.Tq * a.D, ValueKind.Normal, dtype), dtype);
        double[] k = CaseContext.Quantize(ctx.Values.Floats((long)a.B * a.Hkv * a.Tk * a.D, ValueKind.Normal, dtype), dtype);
        double[] v = CaseContext.Quantize(ctx.Values.Floats((long)a.B * a.Hkv * a.Tk * a.D, ValueKind.Normal, dtype), dtype);
        return (q, k, v);
    }

    /// <summary>|scale|·Σ_d |q_d·k_jd| for every key j query row i sees: the magnitude of its scores' rounding errors.</summary>
    private static double[] ScoreMagnitudes(double[] q, double[] k, AttentionConfig a, int b, int h, int i, int visible)
    {
        int kvh = h / (a.H / a.Hkv);
        var m = new double[visible];
        long qo = (((long)(b * a.H + h) * a.Tq) + i) * a.D;
        for (int j = 0; j < visible; j++)
        {
            long ko = (((long)(b * a.Hkv + kvh) * a.Tk) + j) * a.D;
            for (int d = 0; d < a.D; d++)
            {
                m[j] += Math.Abs(q[qo + d] * k[ko + d]);
            }
            m[j] *= Math.Abs(a.Scale);
        }
        return m;
    }

    private static IReadOnlyList<CaseOutput> RunAttention(CaseContext ctx, DType dtype, AttentionConfig a)
    {
        var (q, k, v) = AttentionInputs(ctx, dtype, a);
        var tq = ctx.Upload(q, new Shape(a.B, a.H, a.Tq, a.D), dtype);
        var tk = ctx.Upload(k, new Shape(a.B, a.Hkv, a.Tk, a.D), dtype);
        var tv = ctx.Upload(v, new Shape(a.B, a.Hkv, a.Tk, a.D), dtype);
        var tout = ctx.Output(new Shape(a.B, a.H, a.Tq, a.D), dtype);
        var tlse = ctx.Output(new Shape(a.B, a.H, a.Tq), DType.F32);
        ctx.Ops.Attention(tq, tk, tv, a.Causal, a.Scale, tout, tlse);
        var (output, lse) = RefNN.Attention(q, k, v, a.B, a.H, a.Hkv, a.Tq, a.Tk, a.D, a.Causal, a.Scale);
        var outScale = new double[output.Length];
        var lseScale = new double[lse.Length];
        for (int b = 0; b < a.B; b++)
        {
            for (int h = 0; h < a.H; h++)
            {
                int kvh = h / (a.H / a.Hkv);
                for (int i = 0; i < a.Tq; i++)
                {
                    var p = RefNN.Probabilities(q, k, b, h, kvh, a.H, a.Hkv, a.Tq, a.Tk, a.D, i, a.Causal, a.Scale, out double rowLse);
                    var mags = ScoreMagnitudes(q, k, a, b, h, i, p.Length);
                    long row = ((long)(b * a.H + h) * a.Tq) + i;
                    lseScale[row] = p.Length == 0 ? 0 : 1 + Math.Abs(rowLse) + mags.Max();
                    for (int j = 0; j < p.Length; j++)
                    {
                        long vo = (((long)(b * a.Hkv + kvh) * a.Tk) + j) * a.D;
                        for (int d = 0; d < a.D; d++)
                        {
                            // A score's absolute error moves its probability relatively: p_j·|v_jd|·(1 + |s|-magnitude).
                            outScale[row * a.D + d] += p[j] * Math.Abs(v[vo + d]) * (1 + mags[j]);
                        }
                    }
                }
            }
        }
        string op = KernelNames.Of(FusedOp.Attention);
        int n = a.D + a.Tk;
        return
        [
            Out("output", op, dtype, ctx.Download(tout), output, n, outScale),
            Out("lse", op, DType.F32, ctx.Download(tlse), lse, n, lseScale),
        ];
    }

    private static IReadOnlyList<CaseOutput> RunAttentionBackward(CaseContext ctx, DType dtype, AttentionConfig a)
    {
        var (q, k, v) = AttentionInputs(ctx, dtype, a);
        double[] dout = CaseContext.Quantize(ctx.Values.Floats((long)a.B * a.H * a.Tq * a.D, ValueKind.Normal, dtype), dtype);
        var (output, lse) = RefNN.Attention(q, k, v, a.B, a.H, a.Hkv, a.Tq, a.Tk, a.D, a.Causal, a.Scale);
        var qShape = new Shape(a.B, a.H, a.Tq, a.D);
        var kvShape = new Shape(a.B, a.Hkv, a.Tk, a.D);
        var tq = ctx.Upload(q, qShape, dtype);
        var tk = ctx.Upload(k, kvShape, dtype);
        var tv = ctx.Upload(v, kvShape, dtype);
        // The saved forward results: the oracle's, rounded to the dtype (output) and to F32 (lse).
        double[] savedOutput = CaseContext.Quantize((double[])output.Clone(), dtype);
        var tout = ctx.Upload(savedOutput, qShape, dtype);
        var tlse = ctx.Upload((double[])lse.Clone(), new Shape(a.B, a.H, a.Tq), DType.F32);
        var tdout = ctx.Upload(dout, qShape, dtype);
        var tdq = ctx.Output(qShape, dtype);
        var tdk = ctx.Output(kvShape, dtype);
        var tdv = ctx.Output(kvShape, dtype);
        ctx.Ops.AttentionBackward(tq, tk, tv, tout, tlse, tdout, a.Causal, a.Scale, tdq, tdk, tdv);
        var (dq, dk, dv) = RefNN.AttentionBackward(q, k, v, dout, a.B, a.H, a.Hkv, a.Tq, a.Tk, a.D, a.Causal, a.Scale);

        string op = KernelNames.Of(FusedOp.AttentionBackward);
        var rule = ToleranceTable.For(op);
        int n = a.D + a.Tk + a.Tq * (a.H / a.Hkv);
        double gamma = GammaOf(rule, n, dtype);
        // Inputs saved at a lower precision than the kernel computes in: the output rounded to a 16-bit dtype
        // (rowsum(dO ⊙ O) inherits its relative error) and lse stored in F32 by an F64 kernel.
        double outputRounding = dtype.Is16Bit() ? FloatFormat.Ulp(dtype, 1) / 2 : 0;
        double lseRounding = StatisticRounding(dtype);
        var dqScale = new double[dq.Length];
        var dkScale = new double[dk.Length];
        var dvScale = new double[dv.Length];
        for (int b = 0; b < a.B; b++)
        {
            for (int h = 0; h < a.H; h++)
            {
                int kvh = h / (a.H / a.Hkv);
                for (int i = 0; i < a.Tq; i++)
                {
                    var p = RefNN.Probabilities(q, k, b, h, kvh, a.H, a.Hkv, a.Tq, a.Tk, a.D, i, a.Causal, a.Scale, out double rowLse);
                    var mags = ScoreMagnitudes(q, k, a, b, h, i, p.Length);
                    long row = (((long)(b * a.H + h) * a.Tq) + i) * a.D;
                    double delta = 0;
                    for (int d = 0; d < a.D; d++)
                    {
                        delta += Math.Abs(dout[row + d] * output[row + d]);
                    }
                    delta *= 1 + (gamma > 0 ? outputRounding / gamma : 0);
                    for (int j = 0; j < p.Length; j++)
                    {
                        long ko = (((long)(b * a.Hkv + kvh) * a.Tk) + j) * a.D;
                        // p_j's relative error: its score's (mags), the saved lse's, one exp.
                        double pa = p[j] * (1 + mags[j] + Math.Abs(rowLse) + (gamma > 0 ? Math.Abs(rowLse) * lseRounding / gamma : 0));
                        double dp = 0;
                        for (int d = 0; d < a.D; d++)
                        {
                            dp += Math.Abs(dout[row + d] * v[ko + d]);
                            dvScale[ko + d] += pa * Math.Abs(dout[row + d]);
                        }
                        double ds = pa * (dp + delta);
                        for (int d = 0; d < a.D; d++)
                        {
                            dqScale[row + d] += Math.Abs(a.Scale) * ds * Math.Abs(k[ko + d]);
                            dkScale[ko + d] += Math.Abs(a.Scale) * ds * Math.Abs(q[row + d]);
                        }
                    }
                }
            }
        }
        return
        [
            Out("dq", op, dtype, ctx.Download(tdq), dq, n, dqScale),
            Out("dk", op, dtype, ctx.Download(tdk), dk, n, dkScale),
            Out("dv", op, dtype, ctx.Download(tdv), dv, n, dvScale),
        ];
    }
}
