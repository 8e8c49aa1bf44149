namespace Hal.Parallel.TensorParallel;

// Legend: N rows, I input features of the shard, O output features of the shard.

/// <summary>How a linear layer stores its weight (the same two layouts as the model's linear layers).</summary>
public enum WeightLayout
{
    /// <summary>GPT-2's Conv1D: weight [in, out], y = x·W + b.</summary>
    InOut,

    /// <summary>nn.Linear: weight [out, in], y = x·Wᵀ + b.</summary>
    OutIn,
}

/// <summary>The GEMMs of a linear layer on local shards, in either layout; gradients accumulate (beta = 1).</summary>
internal static class LinearShardMath
{
    /// <summary>y [N, O] = x [N, I]·W (+ bias [O]).</summary>
    public static void Forward(Ops ops, Tensor x, Tensor weight, WeightLayout layout, Tensor? bias, Tensor y) =>
        ops.Gemm(x, weight, y, transB: layout == WeightLayout.OutIn, bias: bias);

    /// <summary>dW += xᵀ·dy ([I, O]) or dyᵀ·x ([O, I]).</summary>
    public static void AddWeightGrad(Ops ops, Tensor x, Tensor dy, WeightLayout layout, Tensor weightGrad)
    {
        if (layout == WeightLayout.InOut)
        {
            ops.Gemm(x, dy, weightGrad, transA: true, beta: 1);
        }
        else
        {
            ops.Gemm(dy, x, weightGrad, transA: true, beta: 1);
        }
    }

    /// <summary>dx [N, I] = dy [N, O]·Wᵀ (overwrites dx).</summary>
    public static void InputGrad(Ops ops, Tensor dy, Tensor weight, WeightLayout layout, Tensor dx) =>
        ops.Gemm(dy, weight, dx, transB: layout == WeightLayout.InOut);

    /// <summary>db [O] += Σ over rows of dy [N, O].</summary>
    public static void AddBiasGrad(TensorParallelGroup group, string name, Tensor dy, Tensor biasGrad)
    {
        var ops = group.Ops;
        int outFeatures = dy.Shape[1];
        var sum = group.Scratch(name, new Shape(1, outFeatures), dy.DType);
        ops.Reduce(ReduceOp.Sum, dy, 0, sum);
        var db = biasGrad.Reshape(1, outFeatures);
        ops.Binary(BinaryOp.Add, db, sum, db);
    }

    /// <summary>Throws unless x is [N, features] and the weight is 2-D.</summary>
    public static void Check(string layer, Tensor x, Tensor weight, WeightLayout layout, int expectedInFeatures)
    {
        if (weight.Rank != 2)
        {
            throw new ArgumentException($"{layer}: the weight shard must be 2-D, got {weight.Shape}", nameof(weight));
        }
        if (x.Rank != 2 || x.Shape[1] != expectedInFeatures)
        {
            throw new ShapeMismatchException(layer, new Shape(x.Rank == 2 ? x.Shape[0] : 0, expectedInFeatures), x.Shape,
                $"x must be [N, {expectedInFeatures}] for a {layout} weight shard {weight.Shape}");
        }
    }

    /// <summary>The input features of a weight shard.</summary>
    public static int InFeatures(Tensor weight, WeightLayout layout) => layout == WeightLayout.InOut ? weight.Shape[0] : weight.Shape[1];

    /// <summary>The output features of a weight shard.</summary>
    public static int OutFeatures(Tensor weight, WeightLayout layout) => layout == WeightLayout.InOut ? weight.Shape[1] : weight.Shape[0];
}
