using System.Globalization;
using Hal.Backends.Npu.Onnx;

namespace Hal.Backends.Npu;

// Batched GEMM. Shapes: a [Ba, M, K] ([Ba, K, M] when transA), b [Bb, K, N] ([Bb, N, K] when transB), c [B, M, N],
// with Ba, Bb each B or 1; bias [N].
internal sealed unsafe partial class NpuKernels
{
    public void Gemm(Tensor a, Tensor b, Tensor c, bool transA, bool transB, double alpha, double beta, Tensor? bias)
    {
        if (c.ElementCount == 0)
        {
            return;
        }
        int rank = c.Rank;
        long m = c.Shape[rank - 2];
        long n = c.Shape[rank - 1];
        long k = transA ? a.Shape[a.Rank - 2] : a.Shape[a.Rank - 1];
        long batch = c.Shape.Product(0, rank - 2);
        long batchA = a.Shape.Product(0, a.Rank - 2);
        long batchB = b.Shape.Product(0, b.Rank - 2);
        DType dtype = c.DType;
        bool useBeta = beta != 0;
        string key = Key("gemm", dtype, transA ? "tA" : "nA", transB ? "tB" : "nB",
            alpha.ToString("R", CultureInfo.InvariantCulture), beta.ToString("R", CultureInfo.InvariantCulture), bias is null ? "nobias" : "bias");
        var inputs = new List<Operand>
        {
            transA ? As(a, batchA, k, m) : As(a, batchA, m, k),
            transB ? As(b, batchB, n, k) : As(b, batchB, k, n),
        };
        if (useBeta)
        {
            inputs.Add(As(c, batch, m, n));
        }
        if (bias is not null)
        {
            inputs.Add(bias);
        }
        Run(key, () => BuildGemm(dtype, transA, transB, alpha, beta, bias is not null), [.. inputs], [As(c, batch, m, n)],
            () => Host.Run([a, b, c, bias], [c], (kk, map) => kk.Gemm(map(a)!, map(b)!, map(c)!, transA, transB, alpha, beta, map(bias))));
    }

    /// <summary>y = alpha · MatMul(op(a), op(b)) [+ beta · c] [+ bias], all rank 3 so MatMul broadcasts a batch of 1.</summary>
    private static OnnxGraph BuildGemm(DType dtype, bool transA, bool transB, double alpha, double beta, bool hasBias)
    {
        var g = new OnnxGraph();
        DType ct = ComputeType(dtype);
        string a = g.Cast(g.Input("a", dtype, 3), dtype, ct);
        string b = g.Cast(g.Input("b", dtype, 3), dtype, ct);
        string? c = beta != 0 ? g.Cast(g.Input("c", dtype, 3), dtype, ct) : null;
        string? bias = hasBias ? g.Cast(g.Input("bias", dtype, 1), dtype, ct) : null;
        if (transA)
        {
            a = g.Node("Transpose", [a], Attr.Ints("perm", 0, 2, 1));
        }
        if (transB)
        {
            b = g.Node("Transpose", [b], Attr.Ints("perm", 0, 2, 1));
        }
        string y = g.Node("MatMul", [a, b]);
        if (alpha != 1)
        {
            y = g.Node("Mul", [y, g.Scalar(alpha, ct)]);
        }
        if (c is not null)
        {
            y = g.Node("Add", [y, beta == 1 ? c : g.Node("Mul", [c, g.Scalar(beta, ct)])]);
        }
        if (bias is not null)
        {
            y = g.Node("Add", [y, bias]);
        }
        g.Output("y", g.Cast(y, ct, dtype), dtype, 3);
        return g;
    }
}
