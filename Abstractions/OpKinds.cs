namespace Hal;

/// <summary>Element-wise unary ops (tier 1). Float dtypes only, except Neg/Abs/Relu/Square which also take signed integers (integer overflow is not specified).</summary>
public enum UnaryOp
{
    Neg,
    Abs,
    Exp,
    Log,
    Sqrt,
    Rsqrt,
    Tanh,
    Sigmoid,
    Relu,
    /// <summary>x·Φ(x) with the exact error function.</summary>
    GeluErf,
    /// <summary>0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).</summary>
    GeluTanh,
    /// <summary>x·sigmoid(x).</summary>
    Silu,
    Sin,
    Cos,
    /// <summary>Round half to even.</summary>
    Round,
    Square,
    Reciprocal,
}

/// <summary>Element-wise binary ops with NumPy broadcasting (tier 1).</summary>
public enum BinaryOp
{
    Add,
    Sub,
    Mul,
    Div,
    /// <summary>NaN-propagating maximum.</summary>
    Max,
    /// <summary>NaN-propagating minimum.</summary>
    Min,
    Pow,
}

/// <summary>Reductions along one axis (tier 1). Max/Min propagate NaN.</summary>
public enum ReduceOp
{
    Sum,
    Mean,
    Max,
    Min,
}

/// <summary>Counter-based random distributions (Philox4x32-10, see <see cref="Numerics.Philox"/>).</summary>
public enum RandomDistribution
{
    /// <summary>Uniform in [a, b).</summary>
    Uniform,
    /// <summary>Normal with mean a and standard deviation b.</summary>
    Normal,
}

/// <summary>The tier-2 (fused, optional) ops. Each has a composite fallback written in tier-1 ops.</summary>
public enum FusedOp
{
    Softmax,
    SoftmaxBackward,
    LogSoftmax,
    LogSoftmaxBackward,
    LayerNorm,
    LayerNormBackward,
    RmsNorm,
    RmsNormBackward,
    CrossEntropy,
    CrossEntropyBackward,
    Embedding,
    EmbeddingBackward,
    Rotary,
    RotaryBackward,
    Attention,
    AttentionBackward,
    ActivationBackward,
    AdamW,
    Lamb,
    Lars,
    QuantizeInt8,
    DequantizeInt8,
}

/// <summary>Which implementation served a tier-2 op.</summary>
public enum KernelPath
{
    /// <summary>The backend's own fused kernel.</summary>
    Fused,
    /// <summary>The composite fallback in tier-1 ops.</summary>
    Composite,
}
