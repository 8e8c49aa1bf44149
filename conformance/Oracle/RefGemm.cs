namespace Hal.Conformance.Oracle;

/// <summary>
/// fp64 batched GEMM from its definition (IKernels.Gemm docs): c[b] = α·op(a[b])·op(b[b]) + β·c[b] + bias, written
/// as a plain triple loop. Legend: a [batchA, M, K] ([batchA, K, M] when transA), b [batchB, K, N] ([batchB, N, K]
/// when transB), c and the result [batch, M, N], bias [N]; batchA and batchB are 1 (broadcast) or batch.
/// </summary>
public static class RefGemm
{
    /// <summary>
    /// The exact result and, per element, the magnitude the rounding-error bound multiplies:
    /// |α|·Σ_k |a||b| + |β|·|c| + |bias|. β = 0 ignores c entirely (NaN included), as the contract says.
    /// </summary>
    public static (double[] C, double[] Scale) Gemm(
        double[] a, double[] b, double[]? c, double[]? bias, int batch, int batchA, int batchB, int m, int n, int k,
        bool transA, bool transB, double alpha, double beta)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        var result = new double[(long)batch * m * n];
        var scale = new double[result.Length];
        for (int t = 0; t < batch; t++)
        {
            long ao = (batchA == 1 ? 0 : t) * (long)m * k;
            long bo = (batchB == 1 ? 0 : t) * (long)k * n;
            for (int i = 0; i < m; i++)
            {
                for (int j = 0; j < n; j++)
                {
                    double dot = 0, magnitude = 0;
                    for (int p = 0; p < k; p++)
                    {
                        double av = a[ao + (transA ? (long)p * m + i : (long)i * k + p)];
                        double bv = b[bo + (transB ? (long)j * k + p : (long)p * n + j)];
                        dot += av * bv;
                        magnitude += Math.Abs(av * bv);
                    }
                    long o = ((long)t * m + i) * n + j;
                    double value = alpha * dot;
                    double s = Math.Abs(alpha) * magnitude;
                    if (beta != 0)
                    {
                        double cv = c is null ? 0 : c[o];
                        value += beta * cv;
                        s += Math.Abs(beta * cv);
                    }
                    if (bias is not null)
                    {
                        value += bias[j];
                        s += Math.Abs(bias[j]);
                    }
                    result[o] = value;
                    scale[o] = s;
                }
            }
        }
        return (result, scale);
    }
}
