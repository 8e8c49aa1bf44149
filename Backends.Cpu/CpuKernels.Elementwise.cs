using System.Runtime.Intrinsics;

namespace Hal.Backends.Cpu;

// Element-wise kernels over flat, contiguous element ranges: fill, copy, unary ops.
internal sealed unsafe partial class CpuKernels
{
    /// <summary>F32 scratch block used when 16-bit data is staged through F32.</summary>
    private const int StageBlock = 512;

    public void Fill(Tensor dst, double value)
    {
        long n = dst.ElementCount;
        byte* p = Ptr(dst);
        byte* one = stackalloc byte[8];
        CastFromDouble(value, dst.DType, one);
        switch (dst.DType.SizeInBytes())
        {
            case 1: FillT(p, *one, n); break;
            case 2: FillT((ushort*)p, *(ushort*)one, n); break;
            case 4: FillT((uint*)p, *(uint*)one, n); break;
            default: FillT((ulong*)p, *(ulong*)one, n); break;
        }
    }

    private void FillT<T>(T* p, T value, long n)
        where T : unmanaged
    {
        nint basePtr = (nint)p;
        CpuParallel.For(Threads, n, (s, e) =>
        {
            T* q = (T*)basePtr + s;
            long len = e - s;
            while (len > 0)
            {
                int m = (int)Math.Min(len, int.MaxValue);
                new Span<T>(q, m).Fill(value);
                q += m;
                len -= m;
            }
        }, alignItems: CpuParallel.LineItems(sizeof(T)));
    }

    public void Copy(Tensor src, Tensor dst)
    {
        byte* s = Ptr(src);
        byte* d = Ptr(dst);
        long bytes = src.SizeInBytes;
        if (s == d || bytes == 0)
        {
            return;
        }
        if (s + bytes <= d || d + bytes <= s)
        {
            nint sp = (nint)s, dp = (nint)d;
            CpuParallel.For(Threads, bytes, (a, b) => Buffer.MemoryCopy((byte*)sp + a, (byte*)dp + a, b - a, b - a),
                elementsPerItem: 1, alignItems: 64);
            return;
        }
        // Overlapping views of one buffer: a single memmove keeps the source intact until it is read.
        Buffer.MemoryCopy(s, d, bytes, bytes);
    }

    public void Unary(UnaryOp op, Tensor x, Tensor y)
    {
        if (!x.DType.IsFloatingPoint())
        {
            UnaryInteger(op, x, y);
            return;
        }
        switch (op)
        {
            case UnaryOp.Neg: UnaryFloat<NegOp>(x, y); break;
            case UnaryOp.Abs: UnaryFloat<AbsOp>(x, y); break;
            case UnaryOp.Exp: UnaryFloat<ExpOp>(x, y); break;
            case UnaryOp.Log: UnaryFloat<LogOp>(x, y); break;
            case UnaryOp.Sqrt: UnaryFloat<SqrtOp>(x, y); break;
            case UnaryOp.Rsqrt: UnaryFloat<RsqrtOp>(x, y); break;
            case UnaryOp.Tanh: UnaryFloat<TanhOp>(x, y); break;
            case UnaryOp.Sigmoid: UnaryFloat<SigmoidOp>(x, y); break;
            case UnaryOp.Relu: UnaryFloat<ReluOp>(x, y); break;
            case UnaryOp.GeluErf: UnaryFloat<GeluErfOp>(x, y); break;
            case UnaryOp.GeluTanh: UnaryFloat<GeluTanhOp>(x, y); break;
            case UnaryOp.Silu: UnaryFloat<SiluOp>(x, y); break;
            case UnaryOp.Sin: UnaryFloat<SinOp>(x, y); break;
            case UnaryOp.Cos: UnaryFloat<CosOp>(x, y); break;
            case UnaryOp.Round: UnaryFloat<RoundOp>(x, y); break;
            case UnaryOp.Square: UnaryFloat<SquareOp>(x, y); break;
            case UnaryOp.Reciprocal: UnaryFloat<ReciprocalOp>(x, y); break;
            default: throw new ArgumentOutOfRangeException(nameof(op), op, "unknown unary op");
        }
    }

    private void UnaryFloat<TOp>(Tensor x, Tensor y)
        where TOp : IUnaryOp
    {
        nint xp = (nint)Ptr(x), yp = (nint)Ptr(y);
        long n = x.ElementCount;
        var dtype = x.DType;
        long align = CpuParallel.LineItems(dtype.SizeInBytes());
        switch (dtype)
        {
            case DType.F32:
                CpuParallel.For(Threads, n, (s, e) => MapF32<TOp>((float*)xp + s, (float*)yp + s, e - s), alignItems: align);
                break;
            case DType.F64:
                CpuParallel.For(Threads, n, (s, e) =>
                {
                    double* xs = (double*)xp, ys = (double*)yp;
                    for (long i = s; i < e; i++)
                    {
                        ys[i] = TOp.Invoke(xs[i]);
                    }
                }, alignItems: align);
                break;
            default:
                CpuParallel.For(Threads, n, (s, e) =>
                {
                    float* tmp = stackalloc float[StageBlock];
                    for (long i = s; i < e; i += StageBlock)
                    {
                        long m = Math.Min(StageBlock, e - i);
                        CpuConvert.Load16(dtype, (ushort*)xp + i, tmp, m);
                        MapF32<TOp>(tmp, tmp, m);
                        CpuConvert.Store16(dtype, tmp, (ushort*)yp + i, m);
                    }
                }, alignItems: align);
                break;
        }
    }

    /// <summary>y[i] = op(x[i]) for F32, 256-bit vectors where available, 128-bit otherwise, scalar tails.</summary>
    internal static void MapF32<TOp>(float* x, float* y, long n)
        where TOp : IUnaryOp
    {
        if (TOp.HasSpanF32)
        {
            for (long done = 0; done < n; done += int.MaxValue)
            {
                int m = (int)Math.Min(int.MaxValue, n - done);
                TOp.Invoke(new ReadOnlySpan<float>(x + done, m), new Span<float>(y + done, m));
            }
            return;
        }
        long i = 0;
        if (TOp.IsVectorized)
        {
            if (Vector256.IsHardwareAccelerated)
            {
                for (; i <= n - 32; i += 32)
                {
                    var v0 = TOp.Invoke(Vector256.Load(x + i));
                    var v1 = TOp.Invoke(Vector256.Load(x + i + 8));
                    var v2 = TOp.Invoke(Vector256.Load(x + i + 16));
                    var v3 = TOp.Invoke(Vector256.Load(x + i + 24));
                    Vector256.Store(v0, y + i);
                    Vector256.Store(v1, y + i + 8);
                    Vector256.Store(v2, y + i + 16);
                    Vector256.Store(v3, y + i + 24);
                }
                for (; i <= n - 8; i += 8)
                {
                    Vector256.Store(TOp.Invoke(Vector256.Load(x + i)), y + i);
                }
            }
            else if (Vector128.IsHardwareAccelerated)
            {
                for (; i <= n - 4; i += 4)
                {
                    Vector128.Store(TOp.Invoke(Vector128.Load(x + i)), y + i);
                }
            }
        }
        for (; i < n; i++)
        {
            y[i] = TOp.Invoke(x[i]);
        }
    }

    private void UnaryInteger(UnaryOp op, Tensor x, Tensor y)
    {
        nint xp = (nint)Ptr(x), yp = (nint)Ptr(y);
        long n = x.ElementCount;
        switch (x.DType)
        {
            case DType.I32: CpuParallel.For(Threads, n, (s, e) => MapInteger((int*)xp, (int*)yp, s, e, op)); break;
            case DType.I64: CpuParallel.For(Threads, n, (s, e) => MapInteger((long*)xp, (long*)yp, s, e, op)); break;
            case DType.I8: CpuParallel.For(Threads, n, (s, e) => MapInteger((sbyte*)xp, (sbyte*)yp, s, e, op)); break;
            default: throw new DTypeNotSupportedException(op.ToString(), x.DType, "cpu");
        }
    }

    /// <summary>Neg/Abs/Square wrap in the integer type (as two's complement does); Relu is max(x, 0).</summary>
    private static void MapInteger<T>(T* x, T* y, long s, long e, UnaryOp op)
        where T : unmanaged, System.Numerics.IBinaryInteger<T>, System.Numerics.ISignedNumber<T>
    {
        switch (op)
        {
            case UnaryOp.Neg:
                for (long i = s; i < e; i++)
                {
                    y[i] = T.Zero - x[i];
                }
                break;
            case UnaryOp.Abs:
                for (long i = s; i < e; i++)
                {
                    y[i] = T.IsNegative(x[i]) ? T.Zero - x[i] : x[i];
                }
                break;
            case UnaryOp.Relu:
                for (long i = s; i < e; i++)
                {
                    y[i] = T.IsNegative(x[i]) ? T.Zero : x[i];
                }
                break;
            case UnaryOp.Square:
                for (long i = s; i < e; i++)
                {
                    y[i] = x[i] * x[i];
                }
                break;
            default:
                throw new DTypeNotSupportedException(op.ToString(), DType.I32, "cpu", "integer dtypes take Neg, Abs, Relu and Square only");
        }
    }
}
