using ILGPU;

namespace Hal.Backends.Cuda.Kernels;

/// <summary>Up to eight broadcast dimensions: output extents and the element strides of a and b (0 where broadcast).</summary>
internal struct BroadcastDims
{
    public int Rank;
    public long O0, O1, O2, O3, O4, O5, O6, O7;
    public long A0, A1, A2, A3, A4, A5, A6, A7;
    public long B0, B1, B2, B3, B4, B5, B6, B7;

    public readonly long Extent(int k) => k switch { 0 => O0, 1 => O1, 2 => O2, 3 => O3, 4 => O4, 5 => O5, 6 => O6, _ => O7 };

    public readonly long StrideA(int k) => k switch { 0 => A0, 1 => A1, 2 => A2, 3 => A3, 4 => A4, 5 => A5, 6 => A6, _ => A7 };

    public readonly long StrideB(int k) => k switch { 0 => B0, 1 => B1, 2 => B2, 3 => B3, 4 => B4, 5 => B5, 6 => B6, _ => B7 };
}

/// <summary>Fill, cast, unary and binary kernels. Legend: one thread per element i (base + thread index).</summary>
internal static class ElementwiseKernels
{
    public static void Fill(Index1D index, DeviceTensor dst, long start, double value) => DeviceMath.Store(dst, start + index, value);

    public static void Cast(Index1D index, DeviceTensor src, DeviceTensor dst, long start)
    {
        long i = start + index;
        if (DTypeCode.IsFloat(src.DType))
        {
            DeviceMath.Store(dst, i, DeviceMath.Load(src, i));
        }
        else
        {
            DeviceMath.StoreInt(dst, i, DeviceMath.LoadInt(src, i), saturate: true);
        }
    }

    public static void Unary(Index1D index, DeviceTensor x, DeviceTensor y, long start, int op)
    {
        long i = start + index;
        if (!DTypeCode.IsFloat(x.DType))
        {
            long a = DeviceMath.LoadInt(x, i);
            long r = op switch
            {
                (int)UnaryOp.Neg => -a,
                (int)UnaryOp.Abs => a < 0 ? -a : a,
                (int)UnaryOp.Relu => a > 0 ? a : 0,
                _ => a * a,
            };
            DeviceMath.StoreInt(y, i, r, saturate: false);
            return;
        }
        DeviceMath.Store(y, i, UnaryValue(op, DeviceMath.Load(x, i)));
    }

    public static double UnaryValue(int op, double x)
    {
        switch (op)
        {
            case (int)UnaryOp.Neg: return -x;
            case (int)UnaryOp.Abs: return Math.Abs(x);
            case (int)UnaryOp.Exp: return Math.Exp(x);
            case (int)UnaryOp.Log: return Math.Log(x);
            case (int)UnaryOp.Sqrt: return Math.Sqrt(x);
            case (int)UnaryOp.Rsqrt: return 1 / Math.Sqrt(x);
            case (int)UnaryOp.Tanh: return Math.Tanh(x);
            case (int)UnaryOp.Sigmoid: return DeviceMath.Sigmoid(x);
            case (int)UnaryOp.Relu: return double.IsNaN(x) ? x : x > 0 ? x : 0;
            case (int)UnaryOp.GeluErf: return DeviceMath.GeluErf(x);
            case (int)UnaryOp.GeluTanh: return DeviceMath.GeluTanh(x);
            case (int)UnaryOp.Silu: return DeviceMath.Silu(x);
            case (int)UnaryOp.Sin: return Math.Sin(x);
            case (int)UnaryOp.Cos: return Math.Cos(x);
            case (int)UnaryOp.Round: return DeviceMath.RoundHalfEven(x);
            case (int)UnaryOp.Square: return x * x;
            default: return 1 / x;
        }
    }

    public static void Binary(Index1D index, DeviceTensor a, DeviceTensor b, DeviceTensor y, long start, int op, BroadcastDims dims)
    {
        long i = start + index;
        long rest = i;
        long ia = 0;
        long ib = 0;
        for (int k = dims.Rank - 1; k >= 0; k--)
        {
            long extent = dims.Extent(k);
            long c = rest % extent;
            rest /= extent;
            ia += c * dims.StrideA(k);
            ib += c * dims.StrideB(k);
        }
        if (!DTypeCode.IsFloat(a.DType))
        {
            DeviceMath.StoreInt(y, i, IntBinary(op, DeviceMath.LoadInt(a, ia), DeviceMath.LoadInt(b, ib), a.DType), saturate: false);
            return;
        }
        DeviceMath.Store(y, i, FloatBinary(op, DeviceMath.Load(a, ia), DeviceMath.Load(b, ib)));
    }

    public static double FloatBinary(int op, double p, double q)
    {
        switch (op)
        {
            case (int)BinaryOp.Add: return p + q;
            case (int)BinaryOp.Sub: return p - q;
            case (int)BinaryOp.Mul: return p * q;
            case (int)BinaryOp.Div: return p / q;
            case (int)BinaryOp.Max: return double.IsNaN(p) || double.IsNaN(q) ? double.NaN : MaxSigned(p, q);
            case (int)BinaryOp.Min: return double.IsNaN(p) || double.IsNaN(q) ? double.NaN : MinSigned(p, q);
            default: return Math.Pow(p, q);
        }
    }

    /// <summary>max with +0 above −0, as IEEE 754-2019 maximum orders them.</summary>
    private static double MaxSigned(double p, double q) => p > q ? p : q > p ? q : (p == 0 && Interop.FloatAsInt(p) == 0 ? p : q);

    /// <summary>min with −0 below +0.</summary>
    private static double MinSigned(double p, double q) => p < q ? p : q < p ? q : (p == 0 && Interop.FloatAsInt(p) != 0 ? p : q);

    /// <summary>Integer ops in 64 bits; the store wraps to the type. Div truncates; a division by zero gives 0.</summary>
    public static long IntBinary(int op, long p, long q, int dtype)
    {
        switch (op)
        {
            case (int)BinaryOp.Add: return p + q;
            case (int)BinaryOp.Sub: return p - q;
            case (int)BinaryOp.Mul: return p * q;
            case (int)BinaryOp.Div:
                if (q == 0)
                {
                    return 0;
                }
                // long.MinValue / −1 overflows the divide; its wrapped answer is −p.
                return q == -1 ? -p : p / q;
            case (int)BinaryOp.Max: return p > q ? p : q;
            default: return p < q ? p : q;
        }
    }
}
