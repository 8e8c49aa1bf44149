namespace Hal.Conformance.Kernels.Catalogue;

/// <summary>
/// GEMM and the tier-2 kernels, forward and backward, each on the fused and the composite path.
/// Shape legend: [r,c] rows × columns (the op works along c); GEMM a[M,K] b[K,N] c[M,N] with batch dims in front;
/// attention q[B,H,Tq,D] kv[B,Hkv,Tk,D]; rotary x[B,T,H,D].
/// </summary>
public static partial class Tier2Cases
{
    /// <summary>Float dtypes, in report order.</summary>
    public static readonly DType[] FloatDTypes = [DType.F32, DType.F64, DType.F16, DType.BF16];

    /// <summary>Row lengths around vector widths: 1, primes, 2^k ± 1, and one long row.</summary>
    public static readonly int[] RowLengths = [1, 7, 8, 9, 33, 64, 65, 1024];

    /// <summary>The relative error of one rounding to F32 (unit roundoff 2⁻²⁴).</summary>
    public const double F32Rounding = 1.0 / (1 << 24);

    /// <summary>All GEMM and tier-2 cases.</summary>
    public static IEnumerable<KernelCase> All() =>
        Gemm()
            .Concat(SoftmaxFamily())
            .Concat(Norms())
            .Concat(CrossEntropyCases())
            .Concat(AttentionCases())
            .Concat(EmbeddingCases())
            .Concat(RotaryCases())
            .Concat(ActivationCases())
            .Concat(OptimizerCases())
            .Concat(QuantCases())
            .Concat(EmptyCases())
            .Concat(Errors());

    /// <summary>The case on both paths: <c>@fused</c> (the backend's kernel) and <c>@composite</c> (the fallback), with one seed.</summary>
    private static IEnumerable<KernelCase> Both(
        FusedOp fused, DType dtype, string shape, string variant, bool quick, string description,
        Func<CaseContext, IReadOnlyList<CaseOutput>> run, DType[]? alsoNeeds = null, Type? expects = null)
    {
        string op = KernelNames.Of(fused);
        ulong seed = Seeds.For(op, dtype, shape, variant);
        foreach (var path in new[] { KernelPath.Fused, KernelPath.Composite })
        {
            yield return new KernelCase
            {
                Id = $"{op}/{dtype.Name()}/{shape}/{variant}{(path == KernelPath.Fused ? "@fused" : "@composite")}",
                Op = op,
                DType = dtype,
                AlsoNeeds = alsoNeeds ?? [],
                Shape = shape,
                Seed = seed,
                Quick = quick,
                Fused = fused,
                Path = path,
                Expects = expects,
                Description = description,
                Run = run,
            };
        }
    }

    /// <summary>γ(perLength·n + extra) of <paramref name="rule"/> in the precision a kernel of <paramref name="dtype"/> computes in.</summary>
    private static double GammaOf(ToleranceRule rule, int n, DType dtype) =>
        OutputCheck.Gamma(rule.GammaPerLength * n + rule.GammaExtra, OutputCheck.UnitRoundoff(dtype));

    /// <summary>
    /// Adds an absolute error allowance <paramref name="absolute"/> (beyond the rule's own roundings: e.g. a
    /// statistic the contract stores in F32 read back by an F64 kernel) to <paramref name="scale"/>, expressed in
    /// units of the rule's γ so that γ·scale grows by exactly that much.
    /// </summary>
    private static void AddAbsolute(double[] scale, int i, double absolute, ToleranceRule rule, int n, DType dtype)
    {
        double gamma = GammaOf(rule, n, dtype);
        if (gamma > 0 && absolute > 0)
        {
            scale[i] += absolute / gamma;
        }
    }

    /// <summary>
    /// The relative error a statistic stored in F32 (mean, rstd, lse: the contract fixes them at F32) carries beyond
    /// the kernel's own precision: one F32 rounding for F64 kernels, nothing for kernels that compute in F32.
    /// </summary>
    private static double StatisticRounding(DType dtype) => dtype == DType.F64 ? F32Rounding : 0;

    /// <summary>Replaces NaN scales (an infinite input times a zero weight) with 0: the element then has to match exactly.</summary>
    private static double[] Clean(double[] scale)
    {
        for (int i = 0; i < scale.Length; i++)
        {
            if (double.IsNaN(scale[i]))
            {
                scale[i] = 0;
            }
        }
        return scale;
    }

    /// <summary>An output under the table row of <paramref name="op"/>.</summary>
    private static CaseOutput Out(string name, string op, DType dtype, double[] actual, double[] expected, int n = 0, double[]? scale = null) =>
        new(name, dtype, actual, expected, ToleranceTable.For(op), n, scale is null ? null : Clean(scale));

    /// <summary><c>[a,b,…]</c>.</summary>
    private static string Dims(params int[] dims) => "[" + string.Join(",", dims) + "]";

    /// <summary>
    /// Puts one special value in each of rows 1, 2 and 3 (NaN, +Inf, −Inf, at a random column) and leaves the other rows
    /// finite: a special value must poison its own row only (by IEEE arithmetic through the op's definition).
    /// </summary>
    private static void InjectSpecials(CaseContext ctx, double[] x, int rows, int cols)
    {
        double[] specials = [double.NaN, double.PositiveInfinity, double.NegativeInfinity];
        for (int r = 1; r < Math.Min(rows, 4) && cols > 0; r++)
        {
            x[r * cols + ctx.Values.NextInt(cols)] = specials[r - 1];
        }
    }

    /// <summary>Lower-case name of a value kind, for ids.</summary>
    private static string KindName(ValueKind kind) => kind.ToString().ToLowerInvariant();
}
