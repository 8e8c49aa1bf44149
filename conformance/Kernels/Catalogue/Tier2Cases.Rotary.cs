namespace Hal.Conformance.Kernels.Catalogue;

// rotary and its backward (rotate-half convention). Shapes: x, y, dy, dx [B,T,H,D] (D even); cos, sin [Tmax, D/2] F32,
// rows offset..offset+T used.
public static partial class Tier2Cases
{
    private static readonly (int B, int T, int H, int D, int Offset)[] RotaryShapes =
    [
        (1, 1, 1, 2, 0), (2, 5, 3, 8, 0), (1, 7, 2, 16, 3), (1, 9, 1, 64, 0), (2, 3, 4, 6, 5), (1, 4, 2, 34, 1), (1, 2, 1, 130, 7),
    ];

    private static IEnumerable<KernelCase> RotaryCases()
    {
        foreach (var dtype in FloatDTypes)
        {
            foreach (var (b, t, h, d, offset) in RotaryShapes)
            {
                string shape = $"x{Dims(b, t, h, d)} cos{Dims(offset + t + 2, d / 2)}";
                string variant = $"offset{offset}";
                bool quick = (b, t, h, d) == (1, 7, 2, 16);
                foreach (var c in Both(FusedOp.Rotary, dtype, shape, variant, quick,
                    $"rotate-half rotary embedding at positions {offset}..{offset + t - 1}",
                    ctx => RunRotary(ctx, dtype, b, t, h, d, offset, backward: false), [DType.F32]))
                {
                    yield return c;
                }
                foreach (var c in Both(FusedOp.RotaryBackward, dtype, shape, variant, quick,
                    $"rotary backward (the inverse rotation) at positions {offset}..{offset + t - 1}",
                    ctx => RunRotary(ctx, dtype, b, t, h, d, offset, backward: true), [DType.F32]))
                {
                    yield return c;
                }
            }
        }
    }

    private static IReadOnlyList<CaseOutput> RunRotary(CaseContext ctx, DType dtype, int b, int t, int h, int d, int offset, bool backward)
    {
        int half = d / 2;
        int tmax = offset + t + 2;
        // The usual table: angle = position · 10000^(−2i/D), rounded to F32 (the oracle uses the rounded values).
        var cos = new double[tmax * half];
        var sin = new double[tmax * half];
        for (int p = 0; p < tmax; p++)
        {
            for (int i = 0; i < half; i++)
            {
                double angle = p * Math.Pow(10000, -2.0 * i / d);
                cos[p * half + i] = Math.Cos(angle);
                sin[p * half + i] = Math.Sin(angle);
            }
        }
        var shape = new Shape(b, t, h, d);
        double[] x = ctx.Values.Floats(shape.ElementCount, ValueKind.Normal, dtype);
        var tx = ctx.Upload(x, shape, dtype);
        var tcos = ctx.Upload(cos, new Shape(tmax, half), DType.F32);
        var tsin = ctx.Upload(sin, new Shape(tmax, half), DType.F32);
        var ty = ctx.Output(shape, dtype);
        if (backward)
        {
            ctx.Ops.RotaryBackward(tx, tcos, tsin, offset, ty);
        }
        else
        {
            ctx.Ops.Rotary(tx, tcos, tsin, offset, ty);
        }
        // Backward is the inverse rotation: the same formula with sin negated.
        double sign = backward ? -1 : 1;
        var y = new double[x.Length];
        var scale = new double[x.Length];
        for (long row = 0; row < (long)b * t * h; row++)
        {
            int pos = offset + (int)(row / h % t);
            long o = row * d;
            for (int i = 0; i < half; i++)
            {
                double c = cos[pos * half + i], s = sign * sin[pos * half + i];
                double x1 = x[o + i], x2 = x[o + i + half];
                y[o + i] = x1 * c - x2 * s;
                y[o + i + half] = x2 * c + x1 * s;
                scale[o + i] = Math.Abs(x1 * c) + Math.Abs(x2 * s);
                scale[o + i + half] = Math.Abs(x2 * c) + Math.Abs(x1 * s);
            }
        }
        string op = KernelNames.Of(backward ? FusedOp.RotaryBackward : FusedOp.Rotary);
        return [Out(backward ? "dx" : "y", op, dtype, ctx.Download(ty), y, 0, scale)];
    }
}
