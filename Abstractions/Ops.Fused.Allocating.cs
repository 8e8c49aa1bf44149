namespace Hal;

// Allocating forms of the most used tier-2 forward ops: they make the outputs, run the validating entry point, and
// free the outputs again if it throws. Shapes: x [..., C] with N rows; logits [N, V]; q [B, H, Tq, D]; ids [...].
public sealed partial class Ops
{
    /// <summary>softmax(x) over the last axis, as a new tensor.</summary>
    public Tensor Softmax(Tensor x)
    {
        ArgumentNullException.ThrowIfNull(x);
        return Allocated([x.Shape], [x.DType], outs => Softmax(x, outs[0]))[0];
    }

    /// <summary>log_softmax(x) over the last axis, as a new tensor.</summary>
    public Tensor LogSoftmax(Tensor x)
    {
        ArgumentNullException.ThrowIfNull(x);
        return Allocated([x.Shape], [x.DType], outs => LogSoftmax(x, outs[0]))[0];
    }

    /// <summary>Layer norm as new tensors: y like x, mean and rstd [N] (F32).</summary>
    public (Tensor Y, Tensor Mean, Tensor Rstd) LayerNorm(Tensor x, Tensor weight, Tensor? bias, double eps)
    {
        var rows = RowShape(x);
        var t = Allocated([x.Shape, rows, rows], [x.DType, DType.F32, DType.F32], outs => LayerNorm(x, weight, bias, eps, outs[0], outs[1], outs[2]));
        return (t[0], t[1], t[2]);
    }

    /// <summary>RMS norm as new tensors: y like x, rstd [N] (F32).</summary>
    public (Tensor Y, Tensor Rstd) RmsNorm(Tensor x, Tensor weight, double eps)
    {
        var rows = RowShape(x);
        var t = Allocated([x.Shape, rows], [x.DType, DType.F32], outs => RmsNorm(x, weight, eps, outs[0], outs[1]));
        return (t[0], t[1]);
    }

    /// <summary>Cross-entropy as new tensors: losses and lse [N] (F32).</summary>
    public (Tensor Losses, Tensor Lse) CrossEntropy(Tensor logits, Tensor targets)
    {
        var rows = RowShape(logits);
        var t = Allocated([rows, rows], [DType.F32, DType.F32], outs => CrossEntropy(logits, targets, outs[0], outs[1]));
        return (t[0], t[1]);
    }

    /// <summary>Embedding rows as a new tensor [...ids, C].</summary>
    public Tensor Embedding(Tensor weight, Tensor ids)
    {
        ArgumentNullException.ThrowIfNull(weight);
        ArgumentNullException.ThrowIfNull(ids);
        if (weight.Rank != 2)
        {
            throw new ShapeMismatchException("embedding", new Shape(0, 0), weight.Shape, "the embedding table must be [V, C]");
        }
        var shape = new Shape([.. ids.Shape.Dims, weight.Shape[1]]);
        return Allocated([shape], [weight.DType], outs => Embedding(weight, ids, outs[0]))[0];
    }

    /// <summary>Attention as new tensors: output like q, lse [B, H, Tq] (F32).</summary>
    public (Tensor Output, Tensor Lse) Attention(Tensor q, Tensor k, Tensor v, bool causal, double scale)
    {
        ArgumentNullException.ThrowIfNull(q);
        if (q.Rank != 4)
        {
            throw new ShapeMismatchException("attention", new Shape(0, 0, 0, 0), q.Shape, "q must be [B, H, Tq, D]");
        }
        var lseShape = new Shape(q.Shape[0], q.Shape[1], q.Shape[2]);
        var t = Allocated([q.Shape, lseShape], [q.DType, DType.F32], outs => Attention(q, k, v, causal, scale, outs[0], outs[1]));
        return (t[0], t[1]);
    }

    /// <summary>The [N] shape of per-row statistics of x (rank ≥ 1).</summary>
    private static Shape RowShape(Tensor x)
    {
        ArgumentNullException.ThrowIfNull(x);
        RequireRank("row statistics", x, 1);
        return new Shape(checked((int)x.Shape.Product(0, x.Rank - 1)));
    }

    /// <summary>Allocates the outputs, runs <paramref name="run"/>, and frees them if it throws.</summary>
    private Tensor[] Allocated(Shape[] shapes, DType[] dtypes, Action<Tensor[]> run)
    {
        var outputs = new Tensor[shapes.Length];
        try
        {
            for (int i = 0; i < shapes.Length; i++)
            {
                outputs[i] = Empty(shapes[i], dtypes[i]);
            }
            run(outputs);
            return outputs;
        }
        catch
        {
            foreach (var t in outputs)
            {
                t?.Dispose();
            }
            throw;
        }
    }
}
