namespace Hal.Models.Nn;

/// <summary>How a linear layer stores its weight.</summary>
public enum LinearLayout
{
    /// <summary>GPT-2's Conv1D: weight [in, out], y = x·W + b.</summary>
    InOut,
    /// <summary>nn.Linear: weight [out, in], y = x·Wᵀ + b.</summary>
    OutIn,
}

/// <summary>
/// y = x·W (+ b) over rows, in either weight layout, with views into a <see cref="ParameterStore"/>. The module keeps
/// no activation: backward takes the forward input back from the caller. Backward adds into the weight and bias
/// gradients (GEMM with beta = 1), so micro-batches accumulate.
/// Legend: N rows, In input features, Out output features.
/// </summary>
public sealed class Linear
{
    private readonly ParameterStore _store;
    private readonly long _weightOffset;
    private readonly long? _biasOffset;
    private Tensor? _weight, _weightGrad, _bias, _biasGrad;

    /// <summary>A layer over the named weight (and bias) of the store.</summary>
    public Linear(ParameterStore store, string weightName, string? biasName, LinearLayout layout)
        : this(store, [weightName], biasName, layout)
    {
    }

    /// <summary>
    /// A layer whose weight is several parameters declared one after another that share the input dimension
    /// (nn.Linear layout: [out₁ + out₂ + …, in]); LLaMA's q, k and v projections run as one GEMM this way.
    /// </summary>
    /// <exception cref="ArgumentException">the parameters are not adjacent in the slab or do not fit together.</exception>
    public Linear(ParameterStore store, IReadOnlyList<string> weightNames, string? biasName, LinearLayout layout)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(weightNames);
        if (weightNames.Count == 0)
        {
            throw new ArgumentException("a linear layer needs a weight", nameof(weightNames));
        }
        _store = store;
        Layout = layout;
        var first = store.Info(weightNames[0]);
        if (first.Shape.Rank != 2)
        {
            throw new ArgumentException($"'{first.Name}' has shape {first.Shape}; a linear weight is 2-D", nameof(weightNames));
        }
        int rows = first.Shape[0], cols = first.Shape[1];
        long next = first.Offset + first.ElementCount;
        for (int i = 1; i < weightNames.Count; i++)
        {
            var info = store.Info(weightNames[i]);
            if (layout != LinearLayout.OutIn || info.Offset != next || info.Shape.Rank != 2 || info.Shape[1] != cols)
            {
                throw new ArgumentException($"'{info.Name}' cannot join '{first.Name}' in one nn.Linear weight: it must follow it in the slab with {cols} columns", nameof(weightNames));
            }
            rows += info.Shape[0];
            next += info.ElementCount;
        }
        _weightOffset = first.Offset;
        WeightShape = new Shape(rows, cols);
        InFeatures = layout == LinearLayout.InOut ? rows : cols;
        OutFeatures = layout == LinearLayout.InOut ? cols : rows;
        if (biasName is not null)
        {
            var bias = store.Info(biasName);
            if (bias.Shape.Rank != 1 || bias.Shape[0] != OutFeatures)
            {
                throw new ArgumentException($"bias '{biasName}' has shape {bias.Shape}; expected [{OutFeatures}]", nameof(biasName));
            }
            _biasOffset = bias.Offset;
        }
    }

    /// <summary>The weight layout.</summary>
    public LinearLayout Layout { get; }

    /// <summary>The weight's shape as stored.</summary>
    public Shape WeightShape { get; }

    /// <summary>In.</summary>
    public int InFeatures { get; }

    /// <summary>Out.</summary>
    public int OutFeatures { get; }

    /// <summary>Whether the layer adds a bias.</summary>
    public bool HasBias => _biasOffset is not null;

    // A slab's views never move and are cached; chunked parameters are asked for on every use (their buffers come and go).
    private Tensor Weight => _store.Backing is not null ? _store.ParamRange(_weightOffset, WeightShape) : _weight ??= _store.ParamRange(_weightOffset, WeightShape);

    private Tensor WeightGrad => _store.Backing is not null ? _store.GradRange(_weightOffset, WeightShape) : _weightGrad ??= _store.GradRange(_weightOffset, WeightShape);

    private Tensor? Bias => _biasOffset is not { } o ? null
        : _store.Backing is not null ? _store.ParamRange(o, new Shape(OutFeatures)) : _bias ??= _store.ParamRange(o, new Shape(OutFeatures));

    private Tensor? BiasGrad => _biasOffset is not { } o ? null
        : _store.Backing is not null ? _store.GradRange(o, new Shape(OutFeatures)) : _biasGrad ??= _store.GradRange(o, new Shape(OutFeatures));

    /// <summary>
    /// When set, this layer is the row-parallel half of a Megatron pair: the weight holds this rank's input rows, x is
    /// this rank's slice of the input features, and the forward sums the partial products over the group (one
    /// all-reduce) before adding the bias once. Backward needs no communication (dy is the same on every rank).
    /// </summary>
    public TensorParallelContext? RowParallel { get; init; }

    /// <summary>
    /// With <see cref="RowParallel"/>: the forward writes only this rank's partial product x·W_local (no reduction, no
    /// bias, beta 0); the caller reduces it (sequence parallelism reduce-scatters the rows) and then calls
    /// <see cref="AddBias"/>. Backward is unchanged.
    /// </summary>
    public bool DeferReduction { get; init; }

    /// <summary>y [rows, Out] += b when the layer has a bias (after a deferred reduction, so it counts once).</summary>
    public void AddBias(Ops ops, Tensor y)
    {
        ArgumentNullException.ThrowIfNull(ops);
        if (Bias is { } b)
        {
            ops.Binary(BinaryOp.Add, y, b, y);
        }
    }

    /// <summary>y [N, Out] = x [N, In]·W + b + beta·y (beta = 1 adds the result into y, e.g. into a residual). Row-parallel: collective, beta 0 or 1.</summary>
    public void Forward(Ops ops, Tensor x, Tensor y, double beta = 0)
    {
        ArgumentNullException.ThrowIfNull(ops);
        if (RowParallel is not { } tp)
        {
            ops.Gemm(x, Weight, y, transB: Layout == LinearLayout.OutIn, beta: beta, bias: Bias);
            return;
        }
        if (beta != 0 && beta != 1)
        {
            throw new ArgumentOutOfRangeException(nameof(beta), beta, "a row-parallel linear overwrites (beta 0) or adds into (beta 1) its output");
        }
        if (DeferReduction)
        {
            if (beta != 0)
            {
                throw new ArgumentOutOfRangeException(nameof(beta), beta, "a row-parallel linear with a deferred reduction writes its partial product (beta 0)");
            }
            ops.Gemm(x, Weight, y, transB: Layout == LinearLayout.OutIn);
            return;
        }
        // The partial product must be summed before it meets y or the bias: either would otherwise count p times.
        var partial = beta == 0 ? y : tp.Workspace.Get("tp.row.partial", y.Shape, y.DType);
        ops.Gemm(x, Weight, partial, transB: Layout == LinearLayout.OutIn);
        tp.AllReduce(partial);
        if (beta != 0)
        {
            ops.Binary(BinaryOp.Add, y, partial, y);
        }
        if (Bias is { } b)
        {
            ops.Binary(BinaryOp.Add, y, b, y);
        }
    }

    /// <summary>
    /// From the forward input x [N, In] and dy [N, Out]: adds dW and db into the store's gradients, and when
    /// <paramref name="dx"/> is given writes dx [N, In] = dy·Wᵀ + dxBeta·dx.
    /// </summary>
    public void Backward(Workspace ws, Tensor x, Tensor dy, Tensor? dx, double dxBeta = 0)
    {
        ArgumentNullException.ThrowIfNull(ws);
        ArgumentNullException.ThrowIfNull(dy);
        var ops = ws.Ops;
        if (Layout == LinearLayout.InOut)
        {
            ops.Gemm(x, dy, WeightGrad, transA: true, beta: 1);
            if (dx is not null)
            {
                ops.Gemm(dy, Weight, dx, transB: true, beta: dxBeta);
            }
        }
        else
        {
            ops.Gemm(dy, x, WeightGrad, transA: true, beta: 1);
            if (dx is not null)
            {
                ops.Gemm(dy, Weight, dx, beta: dxBeta);
            }
        }
        if (BiasGrad is { } db)
        {
            int rows = dy.Shape[0];
            ops.Gemm(ws.Ones(rows, dy.DType), dy, db.Reshape(1, OutFeatures), beta: 1);
        }
    }
}
