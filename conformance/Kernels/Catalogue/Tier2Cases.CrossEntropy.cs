using Hal.Conformance.Oracle;

namespace Hal.Conformance.Kernels.Catalogue;

// cross_entropy and its backward. Shapes: logits, dlogits [r,V]; targets [r] (I32 or I64, negative = ignored);
// losses, lse, dlosses [r] (F32 whatever the logits' dtype).
public static partial class Tier2Cases
{
    private static IEnumerable<KernelCase> CrossEntropyCases()
    {
        foreach (var dtype in FloatDTypes)
        {
            foreach (int vocab in RowLengths)
            {
                int rows = vocab >= 1024 ? 3 : 6;
                string shape = Dims(rows, vocab);
                foreach (var index in new[] { DType.I64, DType.I32 })
                {
                    // Edge: NaN, +Inf and −Inf logits in rows 1–3 (row 1 is also ignored: its loss stays 0, its lse NaN).
                    foreach (var kind in new[] { ValueKind.Normal, ValueKind.Large, ValueKind.Edge })
                    {
                        string variant = $"{KindName(kind)}-{index.Name()}";
                        bool quick = kind == ValueKind.Normal && (vocab == 33 || (vocab == 1024 && index == DType.I64));
                        foreach (var c in Both(FusedOp.CrossEntropy, dtype, shape, variant, quick,
                            $"losses and lse of softmax cross-entropy, {index.Name()} targets with ignored (negative) rows, {kind} logits",
                            ctx => RunCrossEntropy(ctx, dtype, index, rows, vocab, kind), [DType.F32, index]))
                        {
                            yield return c;
                        }
                    }
                    foreach (var kind in new[] { ValueKind.Normal, ValueKind.Edge })
                    {
                        foreach (var c in Both(FusedOp.CrossEntropyBackward, dtype, shape, $"{KindName(kind)}-{index.Name()}", vocab == 33 && kind == ValueKind.Normal,
                            $"dlogits = (softmax − onehot)·dlosses from the saved F32 lse, {index.Name()} targets with ignored rows, {kind} logits (Edge: NaN, ±Inf in rows 1–3; ignored row 1 stays 0)",
                            ctx => RunCrossEntropyBackward(ctx, dtype, index, rows, vocab, kind), [DType.F32, index]))
                        {
                            yield return c;
                        }
                    }
                }
            }
        }
    }

    /// <summary>Targets in [0, V), with rows 1 and 4 ignored (−1 and −100, the usual ignore index).</summary>
    private static long[] Targets(CaseContext ctx, int rows, int vocab)
    {
        var t = new long[rows];
        for (int r = 0; r < rows; r++)
        {
            t[r] = r == 1 ? -1 : r == 4 ? -100 : ctx.Values.NextInt(vocab);
        }
        return t;
    }

    private static IReadOnlyList<CaseOutput> RunCrossEntropy(CaseContext ctx, DType dtype, DType index, int rows, int vocab, ValueKind kind)
    {
        double[] logits = ctx.Values.Floats((long)rows * vocab, kind == ValueKind.Edge ? ValueKind.Normal : kind, dtype);
        if (kind == ValueKind.Edge)
        {
            InjectSpecials(ctx, logits, rows, vocab);
        }
        long[] targets = Targets(ctx, rows, vocab);
        var tl = ctx.Upload(logits, new Shape(rows, vocab), dtype);
        var tt = ctx.Upload(Array.ConvertAll(targets, v => (double)v), new Shape(rows), index);
        var tloss = ctx.Output(new Shape(rows), DType.F32);
        var tlse = ctx.Output(new Shape(rows), DType.F32);
        ctx.Ops.CrossEntropy(tl, tt, tloss, tlse);
        var (losses, lse) = RefNN.CrossEntropy(logits, targets, rows, vocab);
        var lossScale = new double[rows];
        var lseScale = new double[rows];
        for (int r = 0; r < rows; r++)
        {
            double max = RefNN.RowMax(logits, r * vocab, vocab);
            // lse = m + log Σ exp(x − m): the sum's γ(n) becomes absolute in the log, plus each term's rounding.
            lseScale[r] = Math.Abs(max) + Math.Abs(lse[r] - max) + 1;
            lossScale[r] = targets[r] < 0 ? 0 : lseScale[r] + Math.Abs(logits[r * vocab + targets[r]]);
        }
        string op = KernelNames.Of(FusedOp.CrossEntropy);
        return
        [
            Out("losses", op, DType.F32, ctx.Download(tloss), losses, vocab, lossScale),
            Out("lse", op, DType.F32, ctx.Download(tlse), lse, vocab, lseScale),
        ];
    }

    private static IReadOnlyList<CaseOutput> RunCrossEntropyBackward(CaseContext ctx, DType dtype, DType index, int rows, int vocab, ValueKind kind = ValueKind.Normal)
    {
        double[] logits = ctx.Values.Floats((long)rows * vocab, ValueKind.Normal, dtype);
        if (kind == ValueKind.Edge)
        {
            InjectSpecials(ctx, logits, rows, vocab);
        }
        CaseContext.Quantize(logits, dtype);
        long[] targets = Targets(ctx, rows, vocab);
        double[] dlosses = ctx.Values.Floats(rows, ValueKind.Normal, DType.F32);
        var (_, lse) = RefNN.CrossEntropy(logits, targets, rows, vocab);
        var tl = ctx.Upload(logits, new Shape(rows, vocab), dtype);
        var tt = ctx.Upload(Array.ConvertAll(targets, v => (double)v), new Shape(rows), index);
        var tlse = ctx.Upload((double[])lse.Clone(), new Shape(rows), DType.F32);
        var tdl = ctx.Upload(dlosses, new Shape(rows), DType.F32);
        var td = ctx.Output(new Shape(rows, vocab), dtype);
        ctx.Ops.CrossEntropyBackward(tl, tt, tlse, tdl, td);
        double[] expected = RefNN.CrossEntropyBackward(logits, targets, dlosses, rows, vocab);

        string op = KernelNames.Of(FusedOp.CrossEntropyBackward);
        var rule = ToleranceTable.For(op);
        var scale = new double[expected.Length];
        for (int r = 0; r < rows; r++)
        {
            if (targets[r] < 0)
            {
                continue;
            }
            for (int c = 0; c < vocab; c++)
            {
                int i = r * vocab + c;
                double p = Math.Exp(logits[i] - lse[r]);
                // p = exp(x − lse): the saved lse carries an absolute error ~u·|lse| and x − lse one rounding, both
                // move p relatively.
                scale[i] = Math.Abs(dlosses[r]) * (p * (1 + Math.Abs(logits[i] - lse[r]) + Math.Abs(lse[r])) + (c == targets[r] ? 1 : 0));
                AddAbsolute(scale, i, Math.Abs(dlosses[r]) * p * (1 + Math.Abs(lse[r])) * StatisticRounding(dtype), rule, vocab, dtype);
            }
        }
        return [Out("dlogits", op, dtype, ctx.Download(td), expected, vocab, scale)];
    }
}
