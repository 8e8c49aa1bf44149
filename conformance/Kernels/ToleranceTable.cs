namespace Hal.Conformance.Kernels;

/// <summary>How an output is compared with the oracle.</summary>
public enum RuleKind
{
    /// <summary>Same bits after rounding the oracle to the dtype (stores, casts, RNG, sign ops): −0 differs from +0.</summary>
    Bitwise,

    /// <summary>Numerically equal after rounding the oracle to the dtype (+0 equals −0).</summary>
    Exact,

    /// <summary>Within <c>ulps·ulp(expected) + γ(perLength·n + extra)·scale</c> (see <see cref="ToleranceRule"/>).</summary>
    Bound,
}

/// <summary>
/// One row of the tolerance table. For a <see cref="RuleKind.Bound"/> rule an element passes when
/// <c>|actual − expected| ≤ U·ulp_d(expected) + γ(GammaPerLength·n + GammaExtra)·scale</c>, where U is the ULP
/// column for the output's dtype d, ulp_d is the spacing of d at the expected value (the smallest subnormal
/// spacing near 0), n is the case's reduction length, scale the case's per-element magnitude, and
/// <c>γ(m) = m·u/(1 − m·u)</c> with u the unit roundoff of the precision the kernel computes in
/// (2⁻⁵³ for F64, 2⁻²⁴ for F32 and for F16/BF16, which compute in F32); for F64 outputs the γ argument doubles, since
/// the oracle computes in F64 too and its own rounding is bounded the same way. Every row says where its numbers come from.
/// NaN must be NaN at the same position, ±Inf the same infinity, under every kind.
/// </summary>
/// <param name="Op">op name (<see cref="KernelNames"/>); a trailing <c>*</c> matches a prefix.</param>
/// <param name="Kind">comparison kind.</param>
/// <param name="Ulps32">U for F32 outputs.</param>
/// <param name="Ulps64">U for F64 outputs (an F64 oracle rounds too, so transcendental rows add its own error).</param>
/// <param name="Ulps16">U for F16/BF16 outputs (computed in F32, then rounded once more: the 16-bit type's epsilon dominates).</param>
/// <param name="GammaPerLength">multiplier of the reduction length n inside γ.</param>
/// <param name="GammaExtra">roundings beyond the reduction inside γ.</param>
/// <param name="Source">where the numbers come from.</param>
public sealed record ToleranceRule(
    string Op, RuleKind Kind, double Ulps32, double Ulps64, double Ulps16, double GammaPerLength, double GammaExtra, string Source)
{
    /// <summary>The ULP count for outputs of <paramref name="dtype"/> (0 for integer and bool outputs).</summary>
    public double UlpsFor(DType dtype) => dtype switch
    {
        DType.F32 => Ulps32,
        DType.F64 => Ulps64,
        DType.F16 or DType.BF16 => Ulps16,
        _ => 0,
    };

    /// <summary>True when the rule has a γ term (the case must give a length and a scale).</summary>
    public bool HasGamma => Kind == RuleKind.Bound && (GammaPerLength != 0 || GammaExtra != 0);
}

/// <summary>
/// The one tolerance table of the suite (docs/conformance.md prints it). Integer and bool outputs use the F32
/// column with ulp = 1 and no γ term (u = 0: integer arithmetic is exact), so a Bound row with 0.5 ULP means exact
/// for them, and quantize_int8's 1 means one int8 step.
/// </summary>
public static class ToleranceTable
{
    private const string OpenCl = "OpenCL 1.2 full profile, §7.4 table 7.1 (single precision)";
    private const string F64Slack = "F64: the oracle's own libm call is within 1 ULP, so 2 more";
    private const string Storage16 = "16-bit: computed in F32 and rounded once to the storage type, so 1 ULP of it covers the F32 error and that rounding";

    /// <summary>Every row, in lookup order (first match wins).</summary>
    public static IReadOnlyList<ToleranceRule> Rules { get; } =
    [
        // ---- stores, casts, RNG: one right bit pattern ---------------------------------------------------------
        new("fill", RuleKind.Bitwise, 0, 0, 0, 0, 0, "a store of one converted value: the contract fixes the conversion (IKernels docs)"),
        new("copy", RuleKind.Bitwise, 0, 0, 0, 0, 0, "a move of bits"),
        new("cast", RuleKind.Bitwise, 0, 0, 0, 0, 0, "IEEE 754 §5.4 conversions are correctly rounded (to nearest even); float→int truncates and saturates, NaN → 0 (IKernels docs)"),
        new("random.normal", RuleKind.Bound, 1, 1, 1, 0, 8,
            "Box–Muller per Hal.Numerics.Philox: u₁, u₂ are exact, but log, sqrt, cos/sin are transcendental (OpenCL: ≤ 3, 4 ULP), so backends agree within bounds, not bitwise. " +
            "r = √(−2 ln u₁) is within ~4u relative; θ = 2π·u₂ rounds twice (≤ 2u·2π absolute) and cos/sin add 4 ULP; r·z, std·z and mean + … round once each: " +
            "|error| ≤ |std|·r·(13u + 12.6u) + 2u·|mean| < γ(8)·scale with scale = |std|·r·(1 + 2π) + |mean|; the 1-ULP term covers the output's own rounding (and the 16-bit storage rounding)"),
        new("random.*", RuleKind.Bitwise, 0, 0, 0, 0, 0, "Philox4x32-10 (Salmon et al., SC'11) with the mapping to floats fixed by Hal.Numerics.Philox: bit-identical on every backend"),
        new("index_select", RuleKind.Bitwise, 0, 0, 0, 0, 0, "a gather of stored values"),
        new("gather", RuleKind.Bitwise, 0, 0, 0, 0, 0, "a gather of stored values"),
        new("embedding", RuleKind.Bitwise, 0, 0, 0, 0, 0, "a gather of stored rows"),

        // ---- exact element-wise ops --------------------------------------------------------------------------
        new("unary.neg", RuleKind.Bitwise, 0, 0, 0, 0, 0, "IEEE 754 §5.5.1: negate flips the sign bit, −0 included"),
        new("unary.abs", RuleKind.Bitwise, 0, 0, 0, 0, 0, "IEEE 754 §5.5.1: abs clears the sign bit"),
        new("unary.relu", RuleKind.Exact, 0, 0, 0, 0, 0, "max(x, 0) is exact; the sign of a zero result is not specified"),
        new("unary.round", RuleKind.Exact, 0, 0, 0, 0, 0, "IEEE 754 roundToIntegralTiesToEven is exact"),
        new("binary.max", RuleKind.Exact, 0, 0, 0, 0, 0, "a comparison picks one operand; the sign of max(+0, −0) is not specified"),
        new("binary.min", RuleKind.Exact, 0, 0, 0, 0, 0, "as max"),
        new("reduce.max", RuleKind.Exact, 0, 0, 0, 0, 0, "a comparison picks one element"),
        new("reduce.min", RuleKind.Exact, 0, 0, 0, 0, 0, "as max"),
        new("argmax", RuleKind.Exact, 0, 0, 0, 0, 0, "an index: one right answer (first maximum, NaN counts as the maximum)"),

        // ---- correctly rounded --------------------------------------------------------------------------------
        new("binary.add", RuleKind.Bound, 0.5, 0.5, 1, 0, 0, "IEEE 754 §4.3: correctly rounded, ≤ 0.5 ULP. " + Storage16),
        new("binary.sub", RuleKind.Bound, 0.5, 0.5, 1, 0, 0, "IEEE 754 §4.3: correctly rounded. " + Storage16),
        new("binary.mul", RuleKind.Bound, 0.5, 0.5, 1, 0, 0, "IEEE 754 §4.3: correctly rounded. " + Storage16),
        new("binary.div", RuleKind.Bound, 0.5, 0.5, 1, 0, 0, "IEEE 754 §4.3: correctly rounded (stricter than OpenCL's 2.5 ULP: Hal declares IEEE division). " + Storage16),
        new("unary.sqrt", RuleKind.Bound, 0.5, 0.5, 1, 0, 0, "IEEE 754 §5.4.1: squareRoot is correctly rounded. " + Storage16),
        new("unary.square", RuleKind.Bound, 0.5, 0.5, 1, 0, 0, "one multiplication, correctly rounded. " + Storage16),
        new("unary.reciprocal", RuleKind.Bound, 0.5, 0.5, 1, 0, 0, "one division 1/x, correctly rounded. " + Storage16),

        // ---- transcendental: ULP bounds after the OpenCL full profile ------------------------------------------
        new("unary.rsqrt", RuleKind.Bound, 2, 4, 1, 0, 0, OpenCl + ": rsqrt ≤ 2 ULP. " + F64Slack + ". " + Storage16),
        new("unary.exp", RuleKind.Bound, 3, 5, 1, 0, 0, OpenCl + ": exp ≤ 3 ULP. " + F64Slack + ". " + Storage16),
        new("unary.log", RuleKind.Bound, 3, 5, 1, 0, 0, OpenCl + ": log ≤ 3 ULP. " + F64Slack + ". " + Storage16),
        new("unary.sin", RuleKind.Bound, 4, 6, 1, 0, 0, OpenCl + ": sin ≤ 4 ULP. " + F64Slack + ". " + Storage16),
        new("unary.cos", RuleKind.Bound, 4, 6, 1, 0, 0, OpenCl + ": cos ≤ 4 ULP. " + F64Slack + ". " + Storage16),
        new("unary.tanh", RuleKind.Bound, 5, 7, 1, 0, 0, OpenCl + ": tanh ≤ 5 ULP. " + F64Slack + ". " + Storage16),
        new("binary.pow", RuleKind.Bound, 16, 18, 1, 0, 0, OpenCl + ": pow ≤ 16 ULP. " + F64Slack + ". " + Storage16),
        new("unary.sigmoid", RuleKind.Bound, 5, 7, 1, 0, 0, "1/(1+exp(−x)): exp's 3 ULP + one add and one divide (0.5 each) + 1 for the composition. " + F64Slack + ". " + Storage16),
        new("unary.silu", RuleKind.Bound, 6, 8, 1, 0, 0, "x·sigmoid(x): sigmoid's 5 + one multiply (0.5) + 0.5. " + F64Slack + ". " + Storage16),
        new("unary.gelu_erf", RuleKind.Bound, 16, 18, 1, 0, 10,
            OpenCl + ": erf ≤ 16 ULP; 1 + erf(x/√2) cancels for x < 0, so the absolute error of erf near −1 (16 ULP of 1) times x/2 is allowed too: γ(10)·|x| (the case's scale is |x|). " + F64Slack),
        new("unary.gelu_tanh", RuleKind.Bound, 8, 10, 1, 0, 6,
            OpenCl + ": tanh ≤ 5 ULP, + the cubic's 3 roundings; 1 + tanh(z) cancels for x < 0: γ(6)·|x| as for gelu_erf. " + F64Slack),

        // ---- reductions and products: bounds that grow with the length ------------------------------------------
        new("reduce.sum", RuleKind.Bound, 0, 0, 1, 1, 0, "Higham, Accuracy and Stability of Numerical Algorithms (2nd ed.), §4.2: any summation order gives |error| ≤ γ(n−1)·Σ|x|; γ(n) used. " + Storage16),
        new("reduce.mean", RuleKind.Bound, 1, 1, 1, 1, 0, "the sum's γ(n)·Σ|x|/n, + 1 ULP for the division by n. " + Storage16),
        new("gemm", RuleKind.Bound, 0, 0, 1, 1, 2, "Higham §3.1: a dot product of length K has |error| ≤ γ(K)·Σ|a||b|; +2 roundings for alpha and the beta·c / bias additions (scale = |α|Σ|a||b| + |β||c| + |bias|). " + Storage16),
        new("index_add", RuleKind.Bound, 0, 0, 1, 1, 0, "repeated indices add in an unspecified order: the sum bound γ(count+1)·Σ|terms| per element (n = the most repeats of one index + 1). " + Storage16),
        new("scatter_add", RuleKind.Bound, 0, 0, 1, 1, 0, "as index_add"),
        new("embedding", RuleKind.Bitwise, 0, 0, 0, 0, 0, "a gather of table rows: the bits move unchanged"),
        new("embedding_backward", RuleKind.Bound, 0, 0, 1, 1, 0, "as index_add: rows of dy summed per id"),

        // ---- tier 2 (forward) -----------------------------------------------------------------------------------
        new("softmax", RuleKind.Bound, 4, 6, 1, 1, 2,
            "y = exp(x − m)/Σ: exp ≤ 3 ULP and the division 0.5 (the ULP term); the rounding of x − m perturbs exp's argument by u·|x − m| and the positive sum adds γ(n): scale = y·(1 + |x − m|), γ(n + 2)"),
        new("log_softmax", RuleKind.Bound, 1, 1, 1, 1, 4,
            "y = x − m − log Σ: absolute error γ(n + 4)·(|x| + |m| + |log Σ| + 1) from the sum (γ(n) relative → absolute in log) and 3 subtractions/log rounding"),
        new("layer_norm", RuleKind.Bound, 2, 2, 1, 2, 8,
            "mean and variance are sums of n terms (γ(n) each, the variance's terms squared: 2n); rstd adds rsqrt's 2 ULP; y = (x − μ)·rstd·w + b adds 3 roundings: scale = (|x − μ| + mean|x|)·rstd·|w| + |b|, γ(2n + 8). The F32 statistics: mean with scale mean|x|; rstd with scale rstd·(1 + mean|x|·rstd) (the variance's relative error γ(2n), plus the mean's error doubled through 2(x − μ) and divided by the variance, halved by the square root)"),
        new("rms_norm", RuleKind.Bound, 3, 3, 1, 1, 4,
            "mean of squares: γ(n); rsqrt 2 ULP; two multiplies: scale = |x|·rstd·|w|, γ(n + 4); the F32 rstd with scale rstd"),
        new("cross_entropy", RuleKind.Bound, 2, 2, 1, 1, 4,
            "lse = m + log Σ exp(x − m): γ(n + 4)·(|m| + |log Σ| + 1) absolute; loss = lse − x_t adds |x_t|"),
        new("rotary", RuleKind.Bound, 0.5, 0.5, 1, 0, 2, "y = x·c − x'·s: two products and a difference: γ(2)·(|x·c| + |x'·s|), + the output's rounding. " + Storage16),
        new("attention", RuleKind.Bound, 2, 2, 1, 1, 8,
            "scores are dot products of length D (γ(D)·|scale|Σ|q||k| absolute in the exponent), p = exp(s − lse) adds 3 ULP and lse's error, out = Σ p·v adds γ(Tk): scale = Σ_j p_j|v_j|·(1 + |scale|·Σ_d|q_d k_jd|) with n = D + Tk; lse likewise with scale 1 + |lse| + max_j|scale|Σ|q||k|"),
        new("quantize_int8", RuleKind.Bound, 1, 1, 1, 0, 0, "q = round(x/scale): x/scale computed in F32 may land on the other side of a .5 tie than the F64 oracle, so one int8 step; scale: one division, 1 ULP"),
        new("memory.*", RuleKind.Bitwise, 0, 0, 0, 0, 0, "bytes written must read back unchanged"),
        new("dequantize_int8", RuleKind.Bound, 0.5, 0.5, 1, 0, 0, "one multiplication, correctly rounded. " + Storage16),

        // ---- tier 2 (backward and optimizers): running error bounds ------------------------------------------
        // Backward formulas chain several sums; their bound is the running-error form: evaluate the oracle's
        // formula once more on absolute values (every subtraction turned into an addition) to get the scale, and
        // count the roundings along the longest chain in γ.
        new("softmax_backward", RuleKind.Bound, 1, 1, 1, 1, 3, "dx = y(dy − Σdy·y): scale = |y|(|dy| + Σ|dy·y|), γ(n + 3)"),
        new("log_softmax_backward", RuleKind.Bound, 1, 1, 1, 1, 6, "dx = dy − exp(y)Σdy: scale = |dy| + exp(y)(1 + |y|)Σ|dy|, γ(n + 6) (exp's 3 ULP inside)"),
        new("layer_norm_backward", RuleKind.Bound, 2, 2, 1, 3, 12, "running error bound of dx = rstd·(w·dy − mean(w·dy) − x̂·mean(w·dy·x̂)) and of dweight/dbias (sums over rows): scale from the formula on absolute values with |x̂| widened to (|x − μ| + mean|x|)·rstd, γ(3n + 12), n = max(rows, C). F64 kernels read the contract's F32 mean and rstd: their rounding (2⁻²⁴ relative; rstd enters dx up to cubed) adds 4·2⁻²⁴·scale to dx and 2·2⁻²⁴·scale to dweight, F32-level accuracy"),
        new("rms_norm_backward", RuleKind.Bound, 2, 2, 1, 2, 10, "running error bound of dx = rstd·(w·dy − x̂·mean(w·dy·x̂)) and of dweight: γ(2n + 10), n = max(rows, C); F64 kernels read the F32 rstd: + 3·2⁻²⁴·scale (dx), 2⁻²⁴·scale (dweight)"),
        new("cross_entropy_backward", RuleKind.Bound, 4, 6, 1, 1, 6, "dlogits = (exp(x − lse) − onehot)·dl: exp 3 ULP, lse's absolute error (its F32 storage: u·|lse|) moves p relatively: scale = |dl|·(p·(1 + |x − lse| + |lse|) + onehot), γ(n + 6); F64 kernels read the F32 lse: + 2⁻²⁴·|dl|·p·(1 + |lse|)"),
        new("rotary_backward", RuleKind.Bound, 0.5, 0.5, 1, 0, 2, "as rotary"),
        new("attention_backward", RuleKind.Bound, 2, 2, 1, 3, 16, "running error bound of the attention gradients (dp = dO·v, ds = p(dp − Σ dO·O), dq = ds·k, dk = dsᵀ·q, dv = pᵀ·dO): scale from the formulas on absolute values with p_j widened by its exponent's error (1 + |scale|Σ|q||k_j| + |lse|), γ(3n + 16) with n = D + Tk + Tq·H/Hkv (dk and dv sum over the queries of a group). Saved inputs below the compute precision add their rounding: a 16-bit output O (rowsum(dO ⊙ O) off by ε₁₆·Σ|dO||O|) and, for F64 kernels, the F32 lse (2⁻²⁴·|lse| in p's exponent)"),
        new("activation_backward", RuleKind.Bound, 16, 18, 1, 0, 12, "dx = dy·f'(x): f' is built from exp/tanh/erf (≤ 16 ULP each, OpenCL) and a few products: scale = |dy|·(magnitude of f'(x)'s terms), γ(12)"),
        new("adamw", RuleKind.Bound, 2, 2, 1, 0, 16, "one update: m and v are two products and a sum (2 ULP; scales β1|m| + (1 − β1)|g| and β2·v + (1 − β2)g²); p −= lr·(m̂/(√v̂ + eps) + wd·p) chains ~10 roundings and a square root: scale = |p| + lr·(|m̂|/(√v̂ + eps) + wd|p|), γ(16). Each step is judged from the state the device holds before it, so errors do not compound"),
        new("lamb", RuleKind.Bound, 2, 2, 1, 2, 20, "the AdamW update, then ‖p‖ and ‖u‖ (sums of n squares: γ(2n)) scale it: scale = |p| + lr·ratio·|u|a·(1 + ‖|u|a‖/‖u‖), with |u|a the update on absolute values (‖u‖ inherits each u_i's error, relative ‖|u|a‖/‖u‖), γ(2n + 20)"),
        new("lars", RuleKind.Bound, 2, 2, 1, 2, 16, "‖p‖, ‖g‖ (γ(2n)) set the local rate; buf and p update in 4 roundings: buf scale = momentum·|buf| + 2·local·(|g| + wd|p|) (the local rate's relative error and the product's own), p scale = |p| + lr·(buf scale), γ(2n + 16)"),
    ];

    /// <summary>The rule for <paramref name="op"/> (first matching row).</summary>
    /// <exception cref="KeyNotFoundException">no row covers the op: every op needs one.</exception>
    public static ToleranceRule For(string op)
    {
        ArgumentNullException.ThrowIfNull(op);
        foreach (var rule in Rules)
        {
            if (rule.Op.EndsWith('*') ? op.StartsWith(rule.Op[..^1], StringComparison.Ordinal) : op == rule.Op)
            {
                return rule;
            }
        }
        throw new KeyNotFoundException($"the tolerance table has no row for '{op}'; add one to ToleranceTable.Rules with its source");
    }
}
