using Hal.Conformance.Oracle;

namespace Hal.Conformance.Kernels.Catalogue;

// layer_norm and rms_norm, forward and backward. Shapes: x, y, dy, dx [r,c]; weight, bias, dweight, dbias [c];
// mean and rstd [r] (F32 whatever x's dtype).
public static partial class Tier2Cases
{
    private const double NormEps = 1e-5;

    /// <summary>Backward shapes: rows × columns around vector widths, and tall ones so that dweight sums many rows.</summary>
    private static readonly (int Rows, int Cols)[] NormBackwardShapes =
        [(5, 1), (5, 7), (4, 8), (3, 9), (5, 33), (3, 64), (2, 65), (2, 1024), (65, 9), (129, 8)];

    private static IEnumerable<KernelCase> Norms()
    {
        foreach (var dtype in FloatDTypes)
        {
            foreach (int cols in RowLengths)
            {
                int rows = cols >= 1024 ? 2 : 5;
                string shape = Dims(rows, cols);
                // Offset: mean 8, std 1, where a variance formed as E[x²] − E[x]² loses digits.
                // Special: NaN, +Inf and −Inf in rows 1–3, which must poison those rows only.
                foreach (string kind in new[] { "normal", "large", "offset", "special" })
                {
                    bool quick = cols is 33 or 1024 && kind == "normal";
                    foreach (bool withBias in new[] { true, false })
                    {
                        string variant = kind + (withBias ? "-bias" : "-nobias");
                        foreach (var c in Both(FusedOp.LayerNorm, dtype, shape, variant, quick,
                            $"layer norm (biased variance, eps {NormEps}) {(withBias ? "with" : "without")} bias, {kind} inputs",
                            ctx => RunLayerNorm(ctx, dtype, rows, cols, kind, withBias), [DType.F32]))
                        {
                            yield return c;
                        }
                    }
                    foreach (var c in Both(FusedOp.RmsNorm, dtype, shape, kind, quick,
                        $"RMS norm (eps {NormEps}), {kind} inputs", ctx => RunRmsNorm(ctx, dtype, rows, cols, kind), [DType.F32]))
                    {
                        yield return c;
                    }
                }
            }
            foreach (var (rows, cols) in NormBackwardShapes)
            {
                string shape = Dims(rows, cols);
                bool quick = (rows, cols) == (5, 33);
                foreach (bool withBias in new[] { true, false })
                {
                    foreach (var c in Both(FusedOp.LayerNormBackward, dtype, shape, withBias ? "bias" : "nobias", quick,
                        "layer norm gradients dx, dweight (and dbias) from the saved F32 mean and rstd",
                        ctx => RunLayerNormBackward(ctx, dtype, rows, cols, withBias), [DType.F32]))
                    {
                        yield return c;
                    }
                }
                foreach (var c in Both(FusedOp.RmsNormBackward, dtype, shape, "normal", quick,
                    "RMS norm gradients dx, dweight from the saved F32 rstd",
                    ctx => RunRmsNormBackward(ctx, dtype, rows, cols), [DType.F32]))
                {
                    yield return c;
                }
            }
        }
    }

    private static double[] NormInputs(CaseContext ctx, DType dtype, int count, string kind, int cols = 1)
    {
        double[] x = ctx.Values.Floats(count, kind == "large" ? ValueKind.Large : ValueKind.Normal, dtype);
        if (kind == "special")
        {
            InjectSpecials(ctx, x, count / Math.Max(cols, 1), cols);
        }
        if (kind == "offset")
        {
            for (int i = 0; i < x.Length; i++)
            {
                x[i] += 8;
            }
        }
        return CaseContext.Quantize(x, dtype);
    }

    private static double MeanAbs(double[] x, int offset, int count)
    {
        double s = 0;
        for (int c = 0; c < count; c++)
        {
            s += Math.Abs(x[offset + c]);
        }
        return count == 0 ? 0 : s / count;
    }

    private static IReadOnlyList<CaseOutput> RunLayerNorm(CaseContext ctx, DType dtype, int rows, int cols, string kind, bool withBias)
    {
        double[] x = NormInputs(ctx, dtype, rows * cols, kind, cols);
        double[] w = ctx.Values.Floats(cols, ValueKind.Normal, dtype);
        double[]? b = withBias ? ctx.Values.Floats(cols, ValueKind.Normal, dtype) : null;
        var shape = new Shape(rows, cols);
        var tx = ctx.Upload(x, shape, dtype);
        var tw = ctx.Upload(w, new Shape(cols), dtype);
        var tb = b is null ? null : ctx.Upload(b, new Shape(cols), dtype);
        var ty = ctx.Output(shape, dtype);
        var tmean = ctx.Output(new Shape(rows), DType.F32);
        var trstd = ctx.Output(new Shape(rows), DType.F32);
        ctx.Ops.LayerNorm(tx, tw, tb, NormEps, ty, tmean, trstd);
        var (y, mean, rstd) = RefNN.LayerNorm(x, w, b, rows, cols, NormEps);
        var yScale = new double[y.Length];
        var meanScale = new double[rows];
        var rstdScale = new double[rows];
        for (int r = 0; r < rows; r++)
        {
            double meanAbs = MeanAbs(x, r * cols, cols);
            meanScale[r] = meanAbs;
            // var's relative error: γ(2n) from its sums, plus the mean's error γ(n)·mean|x| doubled through 2(x − μ);
            // rstd halves it: rstd·(1 + mean|x|·rstd).
            rstdScale[r] = rstd[r] * (1 + meanAbs * rstd[r]);
            for (int c = 0; c < cols; c++)
            {
                yScale[r * cols + c] = (Math.Abs(x[r * cols + c] - mean[r]) + meanAbs) * rstd[r] * Math.Abs(w[c]) + (b is null ? 0 : Math.Abs(b[c]));
            }
        }
        string op = KernelNames.Of(FusedOp.LayerNorm);
        return
        [
            Out("y", op, dtype, ctx.Download(ty), y, cols, yScale),
            Out("mean", op, DType.F32, ctx.Download(tmean), mean, cols, meanScale),
            Out("rstd", op, DType.F32, ctx.Download(trstd), rstd, cols, rstdScale),
        ];
    }

    private static IReadOnlyList<CaseOutput> RunRmsNorm(CaseContext ctx, DType dtype, int rows, int cols, string kind)
    {
        double[] x = NormInputs(ctx, dtype, rows * cols, kind, cols);
        double[] w = ctx.Values.Floats(cols, ValueKind.Normal, dtype);
        var shape = new Shape(rows, cols);
        var tx = ctx.Upload(x, shape, dtype);
        var tw = ctx.Upload(w, new Shape(cols), dtype);
        var ty = ctx.Output(shape, dtype);
        var trstd = ctx.Output(new Shape(rows), DType.F32);
        ctx.Ops.RmsNorm(tx, tw, NormEps, ty, trstd);
        var (y, rstd) = RefNN.RmsNorm(x, w, rows, cols, NormEps);
        var yScale = new double[y.Length];
        for (int i = 0; i < y.Length; i++)
        {
            yScale[i] = Math.Abs(x[i]) * rstd[i / cols] * Math.Abs(w[i % cols]);
        }
        string op = KernelNames.Of(FusedOp.RmsNorm);
        return
        [
            Out("y", op, dtype, ctx.Download(ty), y, cols, yScale),
            Out("rstd", op, DType.F32, ctx.Download(trstd), rstd, cols, (double[])rstd.Clone()),
        ];
    }

    private static IReadOnlyList<CaseOutput> RunLayerNormBackward(CaseContext ctx, DType dtype, int rows, int cols, bool withBias)
    {
        double[] x = NormInputs(ctx, dtype, rows * cols, "normal");
        double[] w = ctx.Values.Floats(cols, ValueKind.Normal, dtype);
        double[] dy = ctx.Values.Floats(rows * cols, ValueKind.Normal, dtype);
        CaseContext.Quantize(w, dtype);
        var (_, mean, rstd) = RefNN.LayerNorm(x, w, null, rows, cols, NormEps);
        var shape = new Shape(rows, cols);
        var tdy = ctx.Upload(dy, shape, dtype);
        var tx = ctx.Upload(x, shape, dtype);
        var tw = ctx.Upload(w, new Shape(cols), dtype);
        // The saved statistics: the oracle's, rounded to F32 (what a correct forward pass stores).
        var tmean = ctx.Upload((double[])mean.Clone(), new Shape(rows), DType.F32);
        var trstd = ctx.Upload((double[])rstd.Clone(), new Shape(rows), DType.F32);
        var tdx = ctx.Output(shape, dtype);
        var tdw = ctx.Output(new Shape(cols), dtype);
        var tdb = withBias ? ctx.Output(new Shape(cols), dtype) : null;
        ctx.Ops.LayerNormBackward(tdy, tx, tw, tmean, trstd, tdx, tdw, tdb);
        var (dx, dw, db) = RefNN.LayerNormBackward(dy, x, w, rows, cols, NormEps);

        string op = KernelNames.Of(FusedOp.LayerNormBackward);
        var rule = ToleranceTable.For(op);
        int n = Math.Max(rows, cols);
        double stat = StatisticRounding(dtype);
        var dxScale = new double[dx.Length];
        var dwScale = new double[cols];
        var dbScale = new double[cols];
        var xa = new double[cols];
        var ga = new double[cols];
        for (int r = 0; r < rows; r++)
        {
            int o = r * cols;
            double meanAbs = MeanAbs(x, o, cols);
            double meanG = 0, meanGx = 0;
            for (int c = 0; c < cols; c++)
            {
                // |x̂| widened by the mean's error (γ(n)·mean|x|), on absolute values.
                xa[c] = (Math.Abs(x[o + c] - mean[r]) + meanAbs) * rstd[r];
                ga[c] = Math.Abs(w[c] * dy[o + c]);
                meanG += ga[c] / cols;
                meanGx += ga[c] * xa[c] / cols;
                dwScale[c] += Math.Abs(dy[o + c]) * xa[c];
                dbScale[c] += Math.Abs(dy[o + c]);
            }
            for (int c = 0; c < cols; c++)
            {
                dxScale[o + c] = rstd[r] * (ga[c] + meanG + xa[c] * meanGx);
                // F64 kernels read F32 statistics: rstd enters dx up to cubed, the mean through x̂.
                AddAbsolute(dxScale, o + c, 4 * stat * dxScale[o + c], rule, n, dtype);
            }
        }
        for (int c = 0; c < cols; c++)
        {
            AddAbsolute(dwScale, c, 2 * stat * dwScale[c], rule, n, dtype);
        }
        var outputs = new List<CaseOutput>
        {
            Out("dx", op, dtype, ctx.Download(tdx), dx, n, dxScale),
            Out("dweight", op, dtype, ctx.Download(tdw), dw, n, dwScale),
        };
        if (tdb is not null)
        {
            outputs.Add(Out("dbias", op, dtype, ctx.Download(tdb), db, n, dbScale));
        }
        return outputs;
    }

    private static IReadOnlyList<CaseOutput> RunRmsNormBackward(CaseContext ctx, DType dtype, int rows, int cols)
    {
        double[] x = NormInputs(ctx, dtype, rows * cols, "normal");
        double[] w = ctx.Values.Floats(cols, ValueKind.Normal, dtype);
        double[] dy = ctx.Values.Floats(rows * cols, ValueKind.Normal, dtype);
        CaseContext.Quantize(w, dtype);
        var (_, rstd) = RefNN.RmsNorm(x, w, rows, cols, NormEps);
        var shape = new Shape(rows, cols);
        var tdy = ctx.Upload(dy, shape, dtype);
        var tx = ctx.Upload(x, shape, dtype);
        var tw = ctx.Upload(w, new Shape(cols), dtype);
        var trstd = ctx.Upload((double[])rstd.Clone(), new Shape(rows), DType.F32);
        var tdx = ctx.Output(shape, dtype);
        var tdw = ctx.Output(new Shape(cols), dtype);
        ctx.Ops.RmsNormBackward(tdy, tx, tw, trstd, tdx, tdw);
        var (dx, dw) = RefNN.RmsNormBackward(dy, x, w, rows, cols, NormEps);

        string op = KernelNames.Of(FusedOp.RmsNormBackward);
        var rule = ToleranceTable.For(op);
        int n = Math.Max(rows, cols);
        double stat = StatisticRounding(dtype);
        var dxScale = new double[dx.Length];
        var dwScale = new double[cols];
        for (int r = 0; r < rows; r++)
        {
            int o = r * cols;
            double meanGx = 0;
            for (int c = 0; c < cols; c++)
            {
                double xhat = Math.Abs(x[o + c]) * rstd[r];
                meanGx += Math.Abs(w[c] * dy[o + c]) * xhat / cols;
                dwScale[c] += Math.Abs(dy[o + c]) * xhat;
            }
            for (int c = 0; c < cols; c++)
            {
                dxScale[o + c] = rstd[r] * (Math.Abs(w[c] * dy[o + c]) + Math.Abs(x[o + c]) * rstd[r] * meanGx);
                AddAbsolute(dxScale, o + c, 3 * stat * dxScale[o + c], rule, n, dtype);
            }
        }
        for (int c = 0; c < cols; c++)
        {
            AddAbsolute(dwScale, c, stat * dwScale[c], rule, n, dtype);
        }
        return
        [
            Out("dx", op, dtype, ctx.Download(tdx), dx, n, dxScale),
            Out("dweight", op, dtype, ctx.Download(tdw), dw, n, dwScale),
        ];
    }
}
