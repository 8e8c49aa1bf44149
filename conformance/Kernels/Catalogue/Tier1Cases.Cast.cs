using Hal.Conformance.Oracle;

namespace Hal.Conformance.Kernels.Catalogue;

// Fill, copy and cast: stores of converted values, checked bit for bit. Shape legend: n elements; views at odd
// element offsets inside larger buffers.
public static partial class Tier1Cases
{
    /// <summary>Values that probe every conversion rule: ties, saturation, overflow, NaN, ±0, integer range edges.</summary>
    private static readonly double[] ConversionProbes =
    [
        0.0, -0.0, 1, -1, 0.5, 1.5, 2.5, -0.5, -2.5, 0.49999, 3.7, -3.7, 126.5, 127, 127.9, 128, -128, -128.9, -129,
        255, 255.5, 256, 300, -300, 2049, 2051, 257, 259, 16777217, 16777219, 65504, 65519, 65520, 70000,
        2147483647, 2147483648, -2147483648, -2147483649, 3e9, 1e10, -1e10, 9.2e18, 9.3e18, -9.3e18, 1e19,
        3.4e38, 3.5e38, 1e300, 1e-300, double.NaN, double.PositiveInfinity, double.NegativeInfinity,
    ];

    /// <summary>Values at the rounding points of float <paramref name="target"/>: ties to even, just off ties, the overflow threshold, subnormal ties.</summary>
    private static IEnumerable<double> RoundingProbes(DType target)
    {
        if (!target.IsFloatingPoint() || target == DType.F64)
        {
            yield break;
        }
        double ulp1 = FloatFormat.Ulp(target, 1);
        double max = FloatFormat.MaxFinite(target);
        double ulpMax = FloatFormat.Ulp(target, max);
        double sub = FloatFormat.MinSubnormal(target);
        double nrm = FloatFormat.MinNormal(target);
        foreach (double v in new[]
        {
            1 + ulp1 / 2, 1 + 3 * ulp1 / 2, 1 + ulp1 / 4, 1 + 3 * ulp1 / 4, -(1 + ulp1 / 2), -(1 + 3 * ulp1 / 2),
            max + ulpMax / 2, max + ulpMax / 4, -(max + ulpMax / 2), sub / 2, 3 * sub / 2, 0.75 * sub, -sub / 2, nrm - sub / 2,
        })
        {
            yield return v;
        }
    }

    private static readonly double[] FillValues =
    [
        0.0, -0.0, 1, -1, 2.5, -2.5, 3.7, -3.7, 127.5, 300, -300, 65520, 1e10, -1e10, 1e19, -1e19, 3.5e38,
        1 + 1.0 / (1 << 24), 1 + 1.0 / (1 << 11), 1 + 1.0 / (1 << 8), 1e-45, 1e-310,
        double.NaN, double.PositiveInfinity, double.NegativeInfinity,
    ];

    private static IEnumerable<KernelCase> Fills()
    {
        foreach (var dtype in DTypeInfo.All)
        {
            for (int v = 0; v < FillValues.Length; v++)
            {
                double value = FillValues[v];
                string text = value.ToString("R", System.Globalization.CultureInfo.InvariantCulture);
                yield return FillCase(dtype, 7, value, $"value={text}", quick: v == 4 || double.IsNaN(value));
            }
            foreach (int n in new[] { 0, 1, 16, 17, 65, 1031 })
            {
                yield return FillCase(dtype, n, 2.5, "value=2.5", quick: false);
            }
        }
    }

    private static KernelCase FillCase(DType dtype, int n, double value, string variant, bool quick) => new()
    {
        Id = $"{KernelNames.Fill}/{dtype.Name()}/[{n}]/{variant}",
        Op = KernelNames.Fill,
        DType = dtype,
        Shape = $"[{n}]",
        Quick = quick,
        Description = $"dst[i] = {variant[6..]} converted to {dtype.Name()} as a cast would",
        Run = ctx =>
        {
            var t = ctx.Output(new Shape(n), dtype);
            ctx.Ops.Fill(t, value);
            double[] expected = Enumerable.Repeat(RefTier1.Cast(value, dtype), n).ToArray();
            return [new CaseOutput("dst", dtype, ctx.Download(t), expected, ToleranceTable.For(KernelNames.Fill))];
        },
    };

    /// <summary>Values of <paramref name="dtype"/> for data movement: edge values for floats, the whole range for integers.</summary>
    private static double[] StoredValues(CaseContext ctx, DType dtype, int n)
    {
        if (dtype.IsFloatingPoint())
        {
            return ctx.Values.Floats(n, ValueKind.Edge, dtype);
        }
        var (min, max) = FloatFormat.IntegerRange(dtype);
        return dtype == DType.I64 ? ctx.Values.Integers(n, -(1L << 53), 1L << 53) : ctx.Values.Integers(n, (long)min, (long)max);
    }

    private static IEnumerable<KernelCase> Copies()
    {
        foreach (var dtype in DTypeInfo.All)
        {
            foreach (int n in new[] { 0, 1, 7, 16, 17, 65, 1031 })
            {
                yield return new KernelCase
                {
                    Id = $"{KernelNames.Copy}/{dtype.Name()}/[{n}]/views-at-3-and-1",
                    Op = KernelNames.Copy,
                    DType = dtype,
                    Shape = $"src[{n}]@3 of [{n + 5}], dst[{n}]@1 of [{n + 4}]",
                    Seed = Seeds.For("copy", dtype, n),
                    Quick = n == 17,
                    Description = "copy between views at odd element offsets; the rest of dst's buffer keeps its sentinel",
                    Run = ctx => RunCopyViews(ctx, dtype, n),
                };
            }
            yield return new KernelCase
            {
                Id = $"{KernelNames.Copy}/{dtype.Name()}/[3,5]-to-[15]/reshaped",
                Op = KernelNames.Copy,
                DType = dtype,
                Shape = "src[3,5] dst[15]",
                Seed = Seeds.For("copy", dtype, "reshaped"),
                Description = "copy between shapes of one element count",
                Run = ctx =>
                {
                    double[] x = StoredValues(ctx, dtype, 15);
                    var src = ctx.Upload(x, new Shape(3, 5), dtype);
                    var dst = ctx.Output(new Shape(15), dtype);
                    ctx.Ops.Copy(src, dst);
                    return [new CaseOutput("dst", dtype, ctx.Download(dst), x, ToleranceTable.For(KernelNames.Copy))];
                },
            };
            yield return new KernelCase
            {
                Id = $"{KernelNames.Copy}/{dtype.Name()}/[33]/same-view",
                Op = KernelNames.Copy,
                DType = dtype,
                Shape = "[33]",
                Seed = Seeds.For("copy", dtype, "same-view"),
                Description = "copy of a view onto itself leaves it unchanged",
                Run = ctx =>
                {
                    double[] x = StoredValues(ctx, dtype, 33);
                    var t = ctx.Upload(x, new Shape(33), dtype);
                    ctx.Ops.Copy(t, t);
                    return [new CaseOutput("dst", dtype, ctx.Download(t), x, ToleranceTable.For(KernelNames.Copy))];
                },
            };
        }
    }

    private static IReadOnlyList<CaseOutput> RunCopyViews(CaseContext ctx, DType dtype, int n)
    {
        double[] x = StoredValues(ctx, dtype, n + 5);
        var srcWhole = ctx.Upload(x, new Shape(n + 5), dtype);
        var dstWhole = ctx.Output(new Shape(n + 4), dtype);
        double[] expected = ctx.Download(dstWhole);
        var src = srcWhole.View(3, new Shape(n));
        var dst = dstWhole.View(1, new Shape(n));
        ctx.Ops.Copy(src, dst);
        Array.Copy(x, 3, expected, 1, n);
        return [new CaseOutput("dst buffer", dtype, ctx.Download(dstWhole), expected, ToleranceTable.For(KernelNames.Copy))];
    }

    /// <summary>I64 sources that a double cannot hold: ties of the narrower formats above 2⁵³, the range ends.</summary>
    private static readonly long[] Int64Probes =
    [
        0, 1, -1, 300, -300, 65520, 16777217, -16777217, 2147483648, -2147483649, long.MaxValue, long.MinValue, long.MinValue + 1,
        (1L << 53) + 1, (1L << 53) + 3, -((1L << 53) + 1), (1L << 62) + (1L << 38), (1L << 62) + (1L << 38) + 1, (1L << 62) + (3L << 38),
        (1L << 62) + (1L << 8), (1L << 62) + (1L << 9) + (1L << 8), 1_000_000_000_000_000_007,
    ];

    private static IEnumerable<KernelCase> Casts()
    {
        foreach (var from in DTypeInfo.All)
        {
            foreach (var to in DTypeInfo.All)
            {
                var (f, t) = (from, to);
                yield return new KernelCase
                {
                    Id = $"{KernelNames.Cast}/{f.Name()}/to-{t.Name()}/probes",
                    Op = KernelNames.Cast,
                    DType = f,
                    AlsoNeeds = [t],
                    Shape = "[probes]",
                    Quick = f == DType.F32 || t == DType.F32,
                    Description = $"{f.Name()} → {t.Name()} on ties, saturation, overflow, NaN, ±0 and subnormals",
                    Run = ctx => f == DType.I64 ? RunCastInt64(ctx, t) : RunCastProbes(ctx, f, t),
                };
            }
        }
        // Length sweeps of the common conversions, so vector bodies and tails both round.
        foreach (var (f, t) in new[] { (DType.F32, DType.F16), (DType.F32, DType.BF16), (DType.F16, DType.F32), (DType.BF16, DType.F32), (DType.F32, DType.I32), (DType.F64, DType.F32), (DType.I32, DType.F32) })
        {
            foreach (int n in new[] { 0, 1, 7, 8, 9, 15, 16, 17, 31, 33, 64, 65, 1031 })
            {
                ulong seed = Seeds.For("cast", f, t, n);
                yield return new KernelCase
                {
                    Id = $"{KernelNames.Cast}/{f.Name()}/to-{t.Name()}/[{n}]/normal",
                    Op = KernelNames.Cast,
                    DType = f,
                    AlsoNeeds = [t],
                    Shape = $"[{n}]",
                    Seed = seed,
                    Description = $"{f.Name()} → {t.Name()} on normal values × 1000",
                    Run = ctx =>
                    {
                        double[] x = Array.ConvertAll(ctx.Values.Floats(n, ValueKind.Normal, f), v => v * 1000);
                        return RunCast(ctx, x, f, t);
                    },
                };
            }
        }
    }

    private static IReadOnlyList<CaseOutput> RunCastProbes(CaseContext ctx, DType from, DType to)
    {
        var values = new List<double>(ConversionProbes);
        values.AddRange(RoundingProbes(to));
        if (from.IsFloatingPoint())
        {
            values.AddRange(CaseValues.EdgeValues(from));
        }
        return RunCast(ctx, [.. values], from, to);
    }

    private static IReadOnlyList<CaseOutput> RunCast(CaseContext ctx, double[] x, DType from, DType to)
    {
        var src = ctx.Upload(x, new Shape(x.Length), from);
        if (!from.IsFloatingPoint())
        {
            // An integer has no −0: the quantizer's truncation of −0.5 leaves a −0 double, which is the integer 0.
            x = Array.ConvertAll(x, v => v + 0.0);
        }
        var dst = ctx.Output(new Shape(x.Length), to);
        ctx.Ops.Cast(src, dst);
        double[] expected = Array.ConvertAll(x, v => RefTier1.Cast(v, to));
        return [new CaseOutput("dst", to, ctx.Download(dst), expected, ToleranceTable.For(KernelNames.Cast))];
    }

    private static IReadOnlyList<CaseOutput> RunCastInt64(CaseContext ctx, DType to)
    {
        var src = ctx.Own(ctx.Ops.FromArray(Int64Probes, new Shape(Int64Probes.Length), DType.I64));
        var dst = ctx.Output(new Shape(Int64Probes.Length), to);
        ctx.Ops.Cast(src, dst);
        double[] expected = Array.ConvertAll(Int64Probes, v => RefTier1.CastInt64(v, to));
        return [new CaseOutput("dst", to, ctx.Download(dst), expected, ToleranceTable.For(KernelNames.Cast))];
    }
}
