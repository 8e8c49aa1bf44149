namespace Hal.Parallel.TensorParallel;

// Legend: q×q grid, (i, j) this rank's row and column, Nb rows of an activation block, Kb = In/q, Mb = Out/q.
// X_ij [Nb, Kb], W_ij [Kb, Mb], Y_ij [Nb, Mb], b_j [Mb]. Row group: ranks (i, ·) by column; column group: (·, j) by row.

/// <summary>
/// SUMMA on one q×q grid: the three products of a linear layer on block-partitioned X, W and Y, q steps each.
/// Forward  Y_ij  = Σ_k X_ik·W_kj:    step k broadcasts X_ik along row i (root column k) and W_kj along column j (root row k).
/// Backward dX_ik = Σ_j dY_ij·W_kjᵀ: step k broadcasts W_kj along column j (root row k); rank (i, j) forms dY_ij·W_kjᵀ,
///                                    the term of dX_ik; the q terms are summed over row i to their owner (i, k).
/// Backward dW_kj = Σ_i X_ikᵀ·dY_ij: step k broadcasts X_ik along row i (root column k); rank (i, j) forms X_ikᵀ·dY_ij;
///                                    the terms are summed over column j to their owner (k, j).
/// The communicator has no reduce-to-root, so the q reductions of a backward product are one reduce-scatter of the q
/// terms stacked in step order (ring bytes equal to q reduces, in one call, at the cost of q blocks of memory).
/// The bias b_j is owned by row 0 and broadcast down column j; its gradient Σ dY over column j is all-reduced (no
/// reduce-to-root) and accumulated on row 0 only. Gradients accumulate (beta = 1); dX is overwritten.
/// </summary>
internal static class Summa
{
    public static void Check(string layer, Tensor x, Tensor weight, Tensor? bias, Tensor y)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(weight);
        ArgumentNullException.ThrowIfNull(y);
        if (x.Rank != 2 || weight.Rank != 2 || y.Rank != 2)
        {
            throw new ArgumentException($"{layer}: x, the weight block and y must be 2-D, got {x.Shape}, {weight.Shape}, {y.Shape}", nameof(x));
        }
        if (x.Shape[1] != weight.Shape[0])
        {
            throw new ShapeMismatchException(layer, new Shape(x.Shape[0], weight.Shape[0]), x.Shape, $"x block must be [Nb, {weight.Shape[0]}] for the weight block {weight.Shape} ([In/q, Out/q])");
        }
        var expected = new Shape(x.Shape[0], weight.Shape[1]);
        if (y.Shape != expected)
        {
            throw new ShapeMismatchException(layer, expected, y.Shape, "y block must be [Nb, Out/q]");
        }
        if (bias is not null && bias.Shape != new Shape(weight.Shape[1]))
        {
            throw new ShapeMismatchException(layer, new Shape(weight.Shape[1]), bias.Shape, "bias block must be [Out/q]");
        }
    }

    public static void Forward(GridCollectives comm, ICommunicator row, ICommunicator column, Tensor x, Tensor weight, Tensor? bias, Tensor y)
    {
        var ops = comm.Ops;
        int q = row.Size;
        var xk = comm.Scratch("summa.x", x.Shape, x.DType);
        var wk = comm.Scratch("summa.w", weight.Shape, weight.DType);
        for (int k = 0; k < q; k++)
        {
            // The root broadcasts from its own block (only read); the others receive into the step buffer.
            var xs = row.Rank == k ? x : xk;
            var ws = column.Rank == k ? weight : wk;
            comm.Broadcast(row, xs, k);
            comm.Broadcast(column, ws, k);
            ops.Gemm(xs, ws, y, beta: k == 0 ? 0 : 1);
        }
        if (bias is not null)
        {
            var b = column.Rank == 0 ? bias : comm.Scratch("summa.b", bias.Shape, bias.DType);
            comm.Broadcast(column, b, 0);
            ops.Binary(BinaryOp.Add, y, b, y);
        }
    }

    /// <summary>dX_ik (when dx is given) and the reduce-scattered dW_kj term sum in <paramref name="weightGradSum"/>; the caller adds it.</summary>
    public static void Backward(GridCollectives comm, ICommunicator row, ICommunicator column, Tensor x, Tensor dy, Tensor weight, Tensor weightGradSum, Tensor? dx)
    {
        var ops = comm.Ops;
        int q = row.Size;
        if (dx is not null)
        {
            var wk = comm.Scratch("summa.w", weight.Shape, weight.DType);
            var terms = comm.Scratch("summa.dx.terms", new Shape(q, dx.Shape[0], dx.Shape[1]), dx.DType);
            for (int k = 0; k < q; k++)
            {
                var ws = column.Rank == k ? weight : wk;
                comm.Broadcast(column, ws, k);
                ops.Gemm(dy, ws, terms.View((long)k * dx.ElementCount, dx.Shape), transB: true);
            }
            comm.ReduceScatter(row, terms, dx);
        }
        var xk = comm.Scratch("summa.x", x.Shape, x.DType);
        var weightTerms = comm.Scratch("summa.dw.terms", new Shape(q, weight.Shape[0], weight.Shape[1]), weight.DType);
        for (int k = 0; k < q; k++)
        {
            var xs = row.Rank == k ? x : xk;
            comm.Broadcast(row, xs, k);
            ops.Gemm(xs, dy, weightTerms.View((long)k * weight.ElementCount, weight.Shape), transA: true);
        }
        comm.ReduceScatter(column, weightTerms, weightGradSum);
    }

    /// <summary>Σ over this block's rows of dy [1, Mb], summed over the column group (every rank then holds Σ over column j).</summary>
    public static Tensor BiasGradSum(GridCollectives comm, ICommunicator column, Tensor dy)
    {
        var sum = comm.Scratch("summa.db", new Shape(1, dy.Shape[1]), dy.DType);
        comm.Ops.Reduce(ReduceOp.Sum, dy, 0, sum);
        comm.AllReduce(column, sum);
        return sum;
    }

    /// <summary>grad += sum (same element count).</summary>
    public static void Accumulate(Ops ops, Tensor sum, Tensor grad)
    {
        var g = grad.Reshape(sum.Shape.ToArray());
        ops.Binary(BinaryOp.Add, g, sum, g);
    }
}
