using Hal.Conformance.Oracle;

namespace Hal.Conformance.Kernels.Catalogue;

// adamw, lamb and lars: several steps in place. Shapes: param, grad and every state of one shape ([n] or [r,c]);
// states F32 (F64 for F64 params). Each step is judged on its own, from the state the device holds before it, so
// that the bound is the one-step bound of the table and errors do not compound across steps.
public static partial class Tier2Cases
{
    private const int OptimizerSteps = 3;

    private static readonly int[][] OptimizerShapes = [[1], [7], [9], [33], [4, 16], [65], [1031]];

    private static IEnumerable<KernelCase> OptimizerCases()
    {
        // F64 parameters take F64 or F32 states; every other float dtype takes F32 states.
        var configurations = FloatDTypes.Select(d => (DType: d, State: d == DType.F64 ? DType.F64 : DType.F32)).Append((DType.F64, DType.F32));
        foreach (var (dtype, state) in configurations)
        {
            foreach (int[] dims in OptimizerShapes)
            {
                string shape = Dims(dims);
                bool quick = dims.Length == 2;
                foreach (double wd in new[] { 0.0, 0.1 })
                {
                    string suffix = state == dtype || dtype != DType.F64 ? "" : $"-{state.Name()}-states";
                    string variant = $"{OptimizerSteps}steps-wd{wd}{suffix}";
                    var adam = new AdamWConfig(1e-2, WeightDecay: wd);
                    foreach (var c in Both(FusedOp.AdamW, dtype, shape, variant, quick,
                        $"{OptimizerSteps} AdamW steps (lr 1e-2, weight decay {wd}), {state.Name()} states",
                        ctx => RunAdam(ctx, dtype, state, dims, adam, lamb: false), [state]))
                    {
                        yield return c;
                    }
                    foreach (var c in Both(FusedOp.Lamb, dtype, shape, variant, quick,
                        $"{OptimizerSteps} LAMB steps (lr 1e-2, weight decay {wd}), {state.Name()} states",
                        ctx => RunAdam(ctx, dtype, state, dims, adam, lamb: true), [state]))
                    {
                        yield return c;
                    }
                    var lars = new LarsConfig(0.1, WeightDecay: wd / 100);
                    foreach (var c in Both(FusedOp.Lars, dtype, shape, $"{OptimizerSteps}steps-wd{wd / 100}{suffix}", quick,
                        $"{OptimizerSteps} LARS steps (lr 0.1, momentum 0.9, weight decay {wd / 100}), {state.Name()} buffer",
                        ctx => RunLars(ctx, dtype, state, dims, lars), [state]))
                    {
                        yield return c;
                    }
                }
            }
        }
    }

    /// <summary>The relative rounding of a state stored below the parameters' precision (F32 states of F64 parameters).</summary>
    private static double StateRounding(DType dtype, DType state) => dtype == DType.F64 && state == DType.F32 ? F32Rounding : 0;

    private static IReadOnlyList<CaseOutput> RunAdam(CaseContext ctx, DType dtype, DType state, int[] dims, AdamWConfig config, bool lamb)
    {
        var shape = new Shape(dims);
        long count = shape.ElementCount;
        var tp = ctx.Upload(ctx.Values.Floats(count, ValueKind.Normal, dtype), shape, dtype);
        var tm = ctx.Upload(new double[count], shape, state);
        var tv = ctx.Upload(new double[count], shape, state);
        var op = KernelNames.Of(lamb ? FusedOp.Lamb : FusedOp.AdamW);
        var outputs = new List<CaseOutput>();
        for (int step = 1; step <= OptimizerSteps; step++)
        {
            double[] p = ctx.Download(tp), m = ctx.Download(tm), v = ctx.Download(tv);
            double[] g = ctx.Values.Floats(count, ValueKind.Normal, dtype);
            var tg = ctx.Upload(g, shape, dtype);
            if (lamb)
            {
                ctx.Ops.Lamb(tp, tg, tm, tv, config, step);
            }
            else
            {
                ctx.Ops.AdamW(tp, tg, tm, tv, config, step);
            }
            var (p2, m2, v2) = lamb ? RefNN.Lamb(p, g, m, v, config, step) : RefNN.AdamW(p, g, m, v, config, step);
            var (u, _, _) = RefNN.AdamUpdate(p, g, m, v, config, step);
            double c1 = 1 - Math.Pow(config.Beta1, step), c2 = 1 - Math.Pow(config.Beta2, step);
            var ua = new double[count];
            var mScale = new double[count];
            var vScale = new double[count];
            for (int i = 0; i < count; i++)
            {
                mScale[i] = config.Beta1 * Math.Abs(m[i]) + (1 - config.Beta1) * Math.Abs(g[i]);
                vScale[i] = config.Beta2 * v[i] + (1 - config.Beta2) * g[i] * g[i];
                ua[i] = Math.Abs(m2[i]) / c1 / (Math.Sqrt(v2[i] / c2) + config.Epsilon) + config.WeightDecay * Math.Abs(p[i]);
            }
            double ratio = 1, ratioWidening = 1;
            if (lamb)
            {
                double pn = RefNN.Norm(p), un = RefNN.Norm(u);
                ratio = pn > 0 && un > 0 ? pn / un : 1;
                // ‖u‖ from elements with their own errors (up to γ·|u|-magnitude each): relative ‖ua‖/‖u‖.
                ratioWidening = un > 0 ? 1 + RefNN.Norm(ua) / un : 1;
            }
            var pScale = new double[count];
            int n = lamb ? checked((int)count) : 0;
            for (int i = 0; i < count; i++)
            {
                pScale[i] = Math.Abs(p[i]) + config.LearningRate * ratio * ua[i] * ratioWidening;
                // F64 parameters with F32 states: a kernel may update p from the moments rounded to F32 (2⁻²⁴ each,
                // through m̂ and √v̂) or from the unrounded ones.
                AddAbsolute(pScale, i, StateRounding(dtype, state) * 2 * config.LearningRate * ratio * ua[i] * ratioWidening, ToleranceTable.For(op), n, dtype);
            }
            outputs.Add(Out($"param@step{step}", op, dtype, ctx.Download(tp), p2, n, pScale));
            outputs.Add(Out($"m@step{step}", op, state, ctx.Download(tm), m2, n, mScale));
            outputs.Add(Out($"v@step{step}", op, state, ctx.Download(tv), v2, n, vScale));
        }
        return outputs;
    }

    private static IReadOnlyList<CaseOutput> RunLars(CaseContext ctx, DType dtype, DType state, int[] dims, LarsConfig config)
    {
        var shape = new Shape(dims);
        long count = shape.ElementCount;
        var tp = ctx.Upload(ctx.Values.Floats(count, ValueKind.Normal, dtype), shape, dtype);
        var tb = ctx.Upload(new double[count], shape, state);
        string op = KernelNames.Of(FusedOp.Lars);
        var outputs = new List<CaseOutput>();
        for (int step = 1; step <= OptimizerSteps; step++)
        {
            double[] p = ctx.Download(tp), buf = ctx.Download(tb);
            double[] g = ctx.Values.Floats(count, ValueKind.Normal, dtype);
            var tg = ctx.Upload(g, shape, dtype);
            ctx.Ops.Lars(tp, tg, tb, config);
            var (p2, b2) = RefNN.Lars(p, g, buf, config);
            double local = RefNN.LarsLocalRate(p, g, config);
            var bScale = new double[count];
            var pScale = new double[count];
            for (int i = 0; i < count; i++)
            {
                // The local rate's relative error (norms: γ(2n)) multiplies local·|g + wd·p|: counted twice, once for
                // the product's own roundings.
                bScale[i] = config.Momentum * Math.Abs(buf[i]) + 2 * local * (Math.Abs(g[i]) + config.WeightDecay * Math.Abs(p[i]));
                pScale[i] = Math.Abs(p[i]) + config.LearningRate * bScale[i];
            }
            int n = checked((int)count);
            for (int i = 0; i < count; i++)
            {
                // F64 parameters with an F32 buffer: p may be updated from the buffer rounded to F32 or not.
                AddAbsolute(pScale, i, StateRounding(dtype, state) * config.LearningRate * bScale[i], ToleranceTable.For(op), n, dtype);
            }
            outputs.Add(Out($"param@step{step}", op, dtype, ctx.Download(tp), p2, n, pScale));
            outputs.Add(Out($"buffer@step{step}", op, state, ctx.Download(tb), b2, n, bScale));
        }
        return outputs;
    }
}
