using Hal.Conformance.Kernels;

namespace Hal.Conformance.Tests;

// Six subtly wrong kernels, each a decorator over a correct backend that changes one kernel for the cases it
// applies to and forwards everything else. Each fault is computed on host copies of the tensors (downloaded as
// doubles, computed here, uploaded with the round-to-nearest-even host conversion) so that the fault is exactly
// the one named and nothing else. Shape legend: [N, C] rows × last axis; GEMM a [.., M, K], b [.., K, N], c [.., M, N].

/// <summary>The faults the suite must catch, each naming the one kernel it breaks.</summary>
public enum PlantedFault
{
    /// <summary>unary.gelu_erf computed with the tanh approximation.</summary>
    GeluErfAsTanh,

    /// <summary>fused softmax computed as exp(x)/Σexp(x), without subtracting the row maximum.</summary>
    SoftmaxWithoutMax,

    /// <summary>fused layer norm with the unbiased variance Σ(x − μ)²/(n − 1).</summary>
    LayerNormUnbiased,

    /// <summary>GEMM on F16 inputs accumulating in F16 (every partial sum rounded to F16).</summary>
    GemmF16Accumulation,

    /// <summary>reduce.sum ignoring the last (length mod 8) elements along the reduced axis.</summary>
    SumDropsTail,

    /// <summary>cast F32→BF16 and F32→F16 truncating toward zero instead of rounding to nearest even.</summary>
    CastTruncates,
}

/// <summary>Builds the faulty decorator of a <see cref="PlantedFault"/> and names the kernel it breaks.</summary>
public static class PlantedFaults
{
    /// <summary>The <see cref="KernelNames"/> name of the kernel the fault breaks.</summary>
    public static string KernelOf(PlantedFault fault) => fault switch
    {
        PlantedFault.GeluErfAsTanh => KernelNames.Of(UnaryOp.GeluErf),
        PlantedFault.SoftmaxWithoutMax => KernelNames.Of(FusedOp.Softmax),
        PlantedFault.LayerNormUnbiased => KernelNames.Of(FusedOp.LayerNorm),
        PlantedFault.GemmF16Accumulation => KernelNames.Gemm,
        PlantedFault.SumDropsTail => KernelNames.Of(ReduceOp.Sum),
        PlantedFault.CastTruncates => KernelNames.Cast,
        _ => throw new ArgumentOutOfRangeException(nameof(fault), fault, null),
    };

    /// <summary>Wraps <paramref name="inner"/> so that the fault's kernel is wrong.</summary>
    public static IKernels Wrap(PlantedFault fault, IKernels inner) => fault switch
    {
        PlantedFault.GeluErfAsTanh => new GeluErfAsTanhKernels(inner),
        PlantedFault.SoftmaxWithoutMax => new SoftmaxWithoutMaxKernels(inner),
        PlantedFault.LayerNormUnbiased => new LayerNormUnbiasedKernels(inner),
        PlantedFault.GemmF16Accumulation => new GemmF16AccumulationKernels(inner),
        PlantedFault.SumDropsTail => new SumDropsTailKernels(inner),
        PlantedFault.CastTruncates => new CastTruncatesKernels(inner),
        _ => throw new ArgumentOutOfRangeException(nameof(fault), fault, null),
    };

    /// <summary>Host copy of a tensor (an entry over the device's own kernels, not the decorated ones).</summary>
    internal static double[] Download(Tensor t) => new Ops(t.Device).ToDoubleArray(t);

    /// <summary>Writes host values into a tensor, converted to its dtype (round to nearest even).</summary>
    internal static void Upload(double[] values, Tensor t) => new Ops(t.Device).Upload(values, t);

    /// <summary>Rounds to what the kernel computes in: F64 stays, every other float dtype computes in F32.</summary>
    internal static double ComputeRound(DType dtype, double v) => dtype == DType.F64 ? v : (float)v;
}

/// <summary>(a) GELU with erf declared, computed as 0.5·x·(1 + tanh(√(2/π)(x + 0.044715x³))).</summary>
internal sealed class GeluErfAsTanhKernels(IKernels inner) : DelegatingKernels(inner)
{
    public override void Unary(UnaryOp op, Tensor x, Tensor y)
    {
        if (op != UnaryOp.GeluErf)
        {
            base.Unary(op, x, y);
            return;
        }
        double[] v = PlantedFaults.Download(x);
        for (int i = 0; i < v.Length; i++)
        {
            double t = v[i];
            v[i] = 0.5 * t * (1 + Math.Tanh(Math.Sqrt(2 / Math.PI) * (t + 0.044715 * t * t * t)));
        }
        PlantedFaults.Upload(v, y);
    }
}

/// <summary>(b) Fused softmax as exp(x)/Σexp(x) in the compute precision: overflows to Inf/Inf = NaN, underflows to 0/0.</summary>
internal sealed class SoftmaxWithoutMaxKernels(IKernels inner) : DelegatingKernels(inner)
{
    public override void Softmax(Tensor x, Tensor y)
    {
        double[] v = PlantedFaults.Download(x);
        int cols = x.Rank == 0 ? 1 : x.Shape[^1];
        var dtype = x.DType;
        for (int row = 0; cols > 0 && row < v.Length / cols; row++)
        {
            var span = v.AsSpan(row * cols, cols);
            double sum = 0;
            for (int j = 0; j < cols; j++)
            {
                span[j] = PlantedFaults.ComputeRound(dtype, Math.Exp(span[j]));
                sum = PlantedFaults.ComputeRound(dtype, sum + span[j]);
            }
            for (int j = 0; j < cols; j++)
            {
                span[j] = PlantedFaults.ComputeRound(dtype, span[j] / sum);
            }
        }
        PlantedFaults.Upload(v, y);
    }
}

/// <summary>(c) Fused layer norm whose variance divides by n − 1 (so a one-column row gets 0/0 = NaN).</summary>
internal sealed class LayerNormUnbiasedKernels(IKernels inner) : DelegatingKernels(inner)
{
    public override void LayerNorm(Tensor x, Tensor weight, Tensor? bias, double eps, Tensor y, Tensor mean, Tensor rstd)
    {
        double[] v = PlantedFaults.Download(x);
        double[] w = PlantedFaults.Download(weight);
        double[]? b = bias is null ? null : PlantedFaults.Download(bias);
        int cols = x.Shape[^1];
        int rows = cols == 0 ? 0 : (int)(x.ElementCount / cols);
        var means = new double[mean.ElementCount];
        var rstds = new double[rstd.ElementCount];
        for (int r = 0; r < rows; r++)
        {
            var row = v.AsSpan(r * cols, cols);
            double mu = 0;
            foreach (double t in row)
            {
                mu += t;
            }
            mu /= cols;
            double ss = 0;
            foreach (double t in row)
            {
                ss += (t - mu) * (t - mu);
            }
            double inv = 1 / Math.Sqrt(ss / (cols - 1) + eps);
            for (int j = 0; j < cols; j++)
            {
                row[j] = (row[j] - mu) * inv * w[j] + (b?[j] ?? 0);
            }
            means[r] = mu;
            rstds[r] = inv;
        }
        PlantedFaults.Upload(v, y);
        PlantedFaults.Upload(means, mean);
        PlantedFaults.Upload(rstds, rstd);
    }
}

/// <summary>(d) F16 GEMM whose dot products keep their running sum in F16 (each product is exact in F32; each partial sum is rounded to F16).</summary>
internal sealed class GemmF16AccumulationKernels(IKernels inner) : DelegatingKernels(inner)
{
    public override void Gemm(Tensor a, Tensor b, Tensor c, bool transA, bool transB, double alpha, double beta, Tensor? bias)
    {
        if (a.DType != DType.F16)
        {
            base.Gemm(a, b, c, transA, transB, alpha, beta, bias);
            return;
        }
        int m = c.Shape[^2];
        int n = c.Shape[^1];
        int k = transA ? a.Shape[^2] : a.Shape[^1];
        long batch = m * (long)n == 0 ? 0 : c.ElementCount / (m * (long)n);
        bool aBroadcast = batch > 1 && a.ElementCount == (long)m * k;
        bool bBroadcast = batch > 1 && b.ElementCount == (long)k * n;
        double[] av = PlantedFaults.Download(a);
        double[] bv = PlantedFaults.Download(b);
        double[] cv = PlantedFaults.Download(c);
        double[]? biasv = bias is null ? null : PlantedFaults.Download(bias);
        for (long p = 0; p < batch; p++)
        {
            long aBase = aBroadcast ? 0 : p * m * k;
            long bBase = bBroadcast ? 0 : p * k * n;
            long cBase = p * m * n;
            for (int i = 0; i < m; i++)
            {
                for (int j = 0; j < n; j++)
                {
                    double acc = 0;
                    for (int l = 0; l < k; l++)
                    {
                        double x = av[aBase + (transA ? (long)l * m + i : (long)i * k + l)];
                        double y = bv[bBase + (transB ? (long)j * k + l : (long)l * n + j)];
                        acc = FloatFormat.Round(DType.F16, acc + (float)(x * y));
                    }
                    long at = cBase + (long)i * n + j;
                    double result = (float)(alpha * acc);
                    if (beta != 0)
                    {
                        result = (float)(result + (float)(beta * cv[at]));
                    }
                    if (biasv is not null)
                    {
                        result = (float)(result + biasv[j]);
                    }
                    cv[at] = result;
                }
            }
        }
        PlantedFaults.Upload(cv, c);
    }
}

/// <summary>(e) reduce.sum that sums only the first 8·⌊L/8⌋ elements of each reduced line of length L (a vector loop without its tail).</summary>
internal sealed class SumDropsTailKernels(IKernels inner) : DelegatingKernels(inner)
{
    private const int VectorWidth = 8;

    public override void Reduce(ReduceOp op, Tensor x, int axis, Tensor y)
    {
        if (op != ReduceOp.Sum)
        {
            base.Reduce(op, x, axis, y);
            return;
        }
        double[] v = PlantedFaults.Download(x);
        int length = x.Shape[axis];
        long outer = x.Shape.Product(0, axis);
        long inner = x.Shape.Product(axis + 1, x.Rank);
        int kept = length / VectorWidth * VectorWidth;
        var sums = new double[outer * inner];
        for (long o = 0; o < outer; o++)
        {
            for (long i = 0; i < inner; i++)
            {
                double s = 0;
                for (int l = 0; l < kept; l++)
                {
                    s = PlantedFaults.ComputeRound(x.DType, s + v[(o * length + l) * inner + i]);
                }
                sums[o * inner + i] = s;
            }
        }
        PlantedFaults.Upload(sums, y);
    }
}

/// <summary>(f) F32→BF16 and F32→F16 casts that truncate toward zero (F16: overflow saturates to ±65504, as truncation does).</summary>
internal sealed class CastTruncatesKernels(IKernels inner) : DelegatingKernels(inner)
{
    public override void Cast(Tensor src, Tensor dst)
    {
        if (src.DType != DType.F32 || dst.DType is not (DType.BF16 or DType.F16))
        {
            base.Cast(src, dst);
            return;
        }
        double[] v = PlantedFaults.Download(src);
        for (int i = 0; i < v.Length; i++)
        {
            v[i] = dst.DType == DType.BF16 ? TruncateToBf16((float)v[i]) : TruncateToF16((float)v[i]);
        }
        // Every value is now exactly representable in dst's dtype, so the round-to-nearest upload keeps it.
        PlantedFaults.Upload(v, dst);
    }

    private static double TruncateToBf16(float f)
    {
        if (float.IsNaN(f))
        {
            return f;
        }
        // BF16 is the top 16 bits of an F32: clearing the low 16 bits rounds the magnitude down.
        uint bits = BitConverter.SingleToUInt32Bits(f) & 0xFFFF0000u;
        return BitConverter.UInt32BitsToSingle(bits);
    }

    private static double TruncateToF16(float f)
    {
        if (!float.IsFinite(f))
        {
            return f;
        }
        // The nearest F16 (single rounding from an exact F32); when it is larger in magnitude than f, the next F16
        // toward zero is the truncated value (decrementing the magnitude bits steps down by one ulp, and from
        // infinity to the largest finite value).
        Half h = (Half)f;
        if (Math.Abs((double)h) > Math.Abs(f))
        {
            ushort bits = BitConverter.HalfToUInt16Bits(h);
            h = BitConverter.UInt16BitsToHalf((ushort)(bits - 1));
        }
        return (double)h;
    }
}
