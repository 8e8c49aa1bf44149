namespace Hal.Conformance.Kernels;

/// <summary>
/// The names of kernels as the suite writes them: in case ids, in the op column of reports, and in the list of
/// kernels a case used. Tier-1 kernels with a sub-op are <c>family.op</c> (<c>unary.gelu_erf</c>, <c>binary.add</c>,
/// <c>reduce.sum</c>, <c>random.normal</c>); the others and every tier-2 op are one snake_case word
/// (<c>gemm</c>, <c>index_select</c>, <c>layer_norm_backward</c>).
/// </summary>
public static class KernelNames
{
    /// <summary><c>fill</c>.</summary>
    public const string Fill = "fill";

    /// <summary><c>copy</c>.</summary>
    public const string Copy = "copy";

    /// <summary><c>cast</c>.</summary>
    public const string Cast = "cast";

    /// <summary><c>argmax</c>.</summary>
    public const string ArgMax = "argmax";

    /// <summary><c>gemm</c>.</summary>
    public const string Gemm = "gemm";

    /// <summary><c>index_select</c>.</summary>
    public const string IndexSelect = "index_select";

    /// <summary><c>index_add</c>.</summary>
    public const string IndexAdd = "index_add";

    /// <summary><c>gather</c>.</summary>
    public const string Gather = "gather";

    /// <summary><c>scatter_add</c>.</summary>
    public const string ScatterAdd = "scatter_add";

    /// <summary><c>unary.exp</c>, <c>unary.gelu_erf</c>, …</summary>
    public static string Of(UnaryOp op) => "unary." + Snake(op.ToString());

    /// <summary><c>binary.add</c>, …</summary>
    public static string Of(BinaryOp op) => "binary." + Snake(op.ToString());

    /// <summary><c>reduce.sum</c>, …</summary>
    public static string Of(ReduceOp op) => "reduce." + Snake(op.ToString());

    /// <summary><c>random.uniform</c>, <c>random.normal</c>.</summary>
    public static string Of(RandomDistribution distribution) => "random." + Snake(distribution.ToString());

    /// <summary><c>softmax</c>, <c>layer_norm_backward</c>, <c>activation_backward</c>, <c>adamw</c>, …</summary>
    public static string Of(FusedOp op) => op == FusedOp.AdamW ? "adamw" : Snake(op.ToString());

    /// <summary>PascalCase to snake_case: <c>LayerNormBackward</c> → <c>layer_norm_backward</c>, <c>GeluErf</c> → <c>gelu_erf</c>.</summary>
    public static string Snake(string pascal)
    {
        ArgumentNullException.ThrowIfNull(pascal);
        var sb = new System.Text.StringBuilder(pascal.Length + 8);
        for (int i = 0; i < pascal.Length; i++)
        {
            char c = pascal[i];
            if (char.IsUpper(c) && i > 0 && (char.IsLower(pascal[i - 1]) || (i + 1 < pascal.Length && char.IsLower(pascal[i + 1]) && char.IsUpper(pascal[i - 1]))))
            {
                sb.Append('_');
            }
            sb.Append(char.ToLowerInvariant(c));
        }
        return sb.ToString();
    }
}
