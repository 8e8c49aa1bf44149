using Hal.Backends.Npu.Onnx;

namespace Hal.Backends.Npu;

// Element-wise tier-1 kernels: Fill, Copy, Cast, Unary, Binary. Shapes: x, y any rank; Binary broadcasts a and b to y.
internal sealed unsafe partial class NpuKernels
{
    public void Fill(Tensor dst, double value)
    {
        if (dst.ElementCount == 0)
        {
            return;
        }
        // The value is baked into the graph as a constant of dst's dtype (converted as a cast would), and expanded to
        // dst's shape, which arrives as a 1-D I64 input: one session per (dtype, value, rank).
        var bits = new byte[dst.DType.SizeInBytes()];
        Numerics.HostConvert.FromDoubles([value], dst.DType, bits);
        string key = Key("fill", dst.DType, Convert.ToHexString(bits), $"r{dst.Rank}");
        var flat = As(dst, dst.ElementCount);
        Run(key, () =>
        {
            var g = new OnnxGraph();
            string shape = g.Input("shape", DType.I64, 1);
            string y;
            if (dst.DType.Is16Bit())
            {
                // Expand has no 16-bit float kernel: expand the F32 value of the already-rounded bits (exact) and cast,
                // which reproduces those bits.
                var exact = new double[1];
                Numerics.HostConvert.ToDoubles(bits, dst.DType, exact);
                y = g.Cast(g.Node("Expand", [g.Scalar(exact[0], DType.F32), shape]), DType.F32, dst.DType);
            }
            else
            {
                y = g.Node("Expand", [g.Scalar(value, dst.DType), shape]);
            }
            g.Output("y", y, dst.DType, 1);
            return g;
        }, [HostInt64s([dst.ElementCount])], [flat], () => Host.Run([dst], [dst], (k, m) => k.Fill(m(dst)!, value)));
    }

    public void Copy(Tensor src, Tensor dst)
    {
        // Device memory is host memory here: a copy is a memmove, which also handles overlapping views.
        if (src.SizeInBytes > 0 && !(ReferenceEquals(src.Buffer, dst.Buffer) && src.OffsetBytes == dst.OffsetBytes))
        {
            _device.CopyDeviceToDevice(src.Buffer, src.OffsetBytes, dst.Buffer, dst.OffsetBytes, src.SizeInBytes);
        }
    }

    public void Cast(Tensor src, Tensor dst)
    {
        if (src.ElementCount == 0)
        {
            return;
        }
        if (src.DType == dst.DType)
        {
            Copy(src, dst);
            return;
        }
        DType from = src.DType;
        DType to = dst.DType;
        // ONNX Cast leaves float→integer overflow and NaN undefined, and F64→16-bit would round twice (through F32):
        // those take the graph below or the host fallback.
        if (from == DType.F64 && to.Is16Bit())
        {
            Host.Run([src, dst], [dst], (k, m) => k.Cast(m(src)!, m(dst)!));
            return;
        }
        string key = Key("cast", from, to);
        Run(key, () => BuildCast(from, to), [As(src, src.ElementCount)], [As(dst, dst.ElementCount)],
            () => Host.Run([src, dst], [dst], (k, m) => k.Cast(m(src)!, m(dst)!)));
    }

    private static OnnxGraph BuildCast(DType from, DType to)
    {
        var g = new OnnxGraph();
        string x = g.Input("x", from, 1);
        string y;
        if (from.IsFloatingPoint() && to.IsInteger())
        {
            // Saturate in F64 (exact for every F32/F16/BF16 value and every I32 bound), NaN → 0, then truncate.
            string x64 = g.Cast(x, from, DType.F64);
            string notNan = g.Node("Where", [g.Node("IsNaN", [x64]), g.Scalar(0, DType.F64), x64]);
            var (lo, hi) = IntegerRange(to);
            double hiExact = to == DType.I64 ? 9223372036854774784.0 : hi; // the largest F64 below 2^63
            string clipped = g.Node("Max", [g.Node("Min", [notNan, g.Scalar(hiExact, DType.F64)]), g.Scalar(lo, DType.F64)]);
            y = g.Cast(clipped, DType.F64, to);
            if (to == DType.I64)
            {
                string tooBig = g.Node("GreaterOrEqual", [notNan, g.Scalar(9223372036854775808.0, DType.F64)]);
                y = g.Node("Where", [tooBig, g.Scalar(long.MaxValue, DType.I64), y]);
            }
        }
        else if (from.IsInteger() && to.IsInteger() && NarrowsRange(from, to))
        {
            var (lo, hi) = IntegerRange(to);
            string x64 = g.Cast(x, from, DType.I64);
            // Where/Greater rather than Min/Max: ONNX Runtime 1.31's I64 Min/Max mis-compare values above 2^31 here.
            string hiC = g.Scalar(hi, DType.I64);
            string loC = g.Scalar(lo, DType.I64);
            string upper = g.Node("Where", [g.Node("Greater", [x64, hiC]), hiC, x64]);
            string clipped = g.Node("Where", [g.Node("Less", [upper, loC]), loC, upper]);
            y = g.Cast(clipped, DType.I64, to);
        }
        else if (from.Is16Bit() && to.Is16Bit())
        {
            y = g.Cast(g.Cast(x, from, DType.F32), DType.F32, to);
        }
        else
        {
            y = g.Cast(x, from, to);
        }
        g.Output("y", y, to, 1);
        return g;
    }

    private static (double Lo, double Hi) IntegerRange(DType dtype) => dtype switch
    {
        DType.I8 => (sbyte.MinValue, sbyte.MaxValue),
        DType.U8 => (byte.MinValue, byte.MaxValue),
        DType.I32 => (int.MinValue, int.MaxValue),
        DType.I64 => (long.MinValue, long.MaxValue),
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "not an integer dtype"),
    };

    private static bool NarrowsRange(DType from, DType to)
    {
        var (fl, fh) = IntegerRange(from);
        var (tl, th) = IntegerRange(to);
        return fl < tl || fh > th;
    }

    public void Unary(UnaryOp op, Tensor x, Tensor y)
    {
        if (x.ElementCount == 0)
        {
            return;
        }
        DType dtype = x.DType;
        if (dtype == DType.F64 && op is UnaryOp.Sin or UnaryOp.Cos)
        {
            // ONNX Runtime's F64 Sin/Cos are up to ~70 ulps off: the host's libm serves them.
            Host.Run([x, y], [y], (k, m) => k.Unary(op, m(x)!, m(y)!));
            return;
        }
        string key = Key("unary", op, dtype);
        Run(key, () =>
        {
            var g = new OnnxGraph();
            DType ct = ComputeType(dtype);
            if (ct == DType.F32 && op is UnaryOp.Sigmoid or UnaryOp.Silu)
            {
                // For large negative x, exp(x) is an F32 denormal with few significant bits: F64 keeps them.
                ct = DType.F64;
            }
            string input = g.Cast(g.Input("x", dtype, 1), dtype, ct);
            g.Output("y", g.Cast(UnaryNode(g, op, input, ct), ct, dtype), dtype, 1);
            return g;
        }, [As(x, x.ElementCount)], [As(y, y.ElementCount)], () => Host.Run([x, y], [y], (k, m) => k.Unary(op, m(x)!, m(y)!)));
    }

    /// <summary>op(x) in the compute dtype <paramref name="ct"/>.</summary>
    internal static string UnaryNode(OnnxGraph g, UnaryOp op, string x, DType ct)
    {
        string y = UnaryFormula(g, op, x, ct);
        if (op is UnaryOp.GeluErf or UnaryOp.GeluTanh or UnaryOp.Silu)
        {
            // x · (a factor that tends to 0) is −∞ · 0 = NaN at x = −∞, where the limit is 0.
            string negInf = g.Node("IsInf", [x], Attr.Int("detect_positive", 0), Attr.Int("detect_negative", 1));
            y = g.Node("Where", [negInf, g.Scalar(0, ct), y]);
        }
        return y;
    }

    private static string UnaryFormula(OnnxGraph g, UnaryOp op, string x, DType ct)
    {
        switch (op)
        {
            case UnaryOp.Neg: return g.Node("Neg", [x]);
            case UnaryOp.Abs: return g.Node("Abs", [x]);
            case UnaryOp.Exp: return g.Node("Exp", [x]);
            case UnaryOp.Log: return g.Node("Log", [x]);
            case UnaryOp.Sqrt: return g.Node("Sqrt", [x]);
            case UnaryOp.Rsqrt: return g.Node("Reciprocal", [g.Node("Sqrt", [x])]);
            case UnaryOp.Tanh:
            {
                // ONNX Runtime's Tanh loses tiny arguments (28 ulp at the smallest normal F32); below the threshold
                // tanh(x) = x − x³/3 rounds to x.
                string tiny = g.Node("Less", [g.Node("Abs", [x]), g.Scalar(ct == DType.F64 ? Math.Pow(2, -27) : Math.Pow(2, -12), ct)]);
                return g.Node("Where", [tiny, x, g.Node("Tanh", [x])]);
            }
            case UnaryOp.Sigmoid: return Sigmoid(g, x, ct);
            case UnaryOp.Relu:
                // Relu keeps NaN on floats; integers have no Relu kernel in ONNX Runtime, so a maximum with 0.
                return ct.IsFloatingPoint() ? g.Node("Relu", [x]) : BinaryNode(g, BinaryOp.Max, x, g.Scalar(0, ct), ct);
            case UnaryOp.GeluErf:
            {
                // x · ½ · (1 + erf(x / √2))
                string erf = g.Node("Erf", [g.Node("Mul", [x, g.Scalar(1 / Math.Sqrt(2), ct)])]);
                string half = g.Node("Mul", [x, g.Scalar(0.5, ct)]);
                return g.Node("Mul", [half, g.Node("Add", [erf, g.Scalar(1, ct)])]);
            }
            case UnaryOp.GeluTanh:
            {
                // ½ · x · (1 + tanh(√(2/π) · (x + 0.044715 · x³)))
                string cube = g.Node("Mul", [g.Node("Mul", [x, x]), x]);
                string inner = g.Node("Add", [x, g.Node("Mul", [cube, g.Scalar(0.044715, ct)])]);
                string t = g.Node("Tanh", [g.Node("Mul", [inner, g.Scalar(Math.Sqrt(2 / Math.PI), ct)])]);
                string half = g.Node("Mul", [x, g.Scalar(0.5, ct)]);
                return g.Node("Mul", [half, g.Node("Add", [t, g.Scalar(1, ct)])]);
            }
            case UnaryOp.Silu: return g.Node("Mul", [x, Sigmoid(g, x, ct)]);
            case UnaryOp.Sin: return g.Node("Sin", [x]);
            case UnaryOp.Cos: return g.Node("Cos", [x]);
            case UnaryOp.Round: return g.Node("Round", [x]);
            case UnaryOp.Square: return g.Node("Mul", [x, x]);
            case UnaryOp.Reciprocal: return g.Node("Reciprocal", [x]);
            default: throw new ArgumentOutOfRangeException(nameof(op), op, "unknown unary op");
        }
    }

    /// <summary>
    /// σ(x) from e = exp(−|x|): 1/(1 + e) for x ≥ 0 and e/(1 + e) below, which keeps the tiny values of large negative
    /// x (ONNX Runtime's Sigmoid flushes them to 0 and is several ulps off elsewhere).
    /// </summary>
    internal static string Sigmoid(OnnxGraph g, string x, DType ct)
    {
        string e = g.Node("Exp", [g.Node("Neg", [g.Node("Abs", [x])])]);
        string denominator = g.Node("Add", [g.Scalar(1, ct), e]);
        string positive = g.Node("Reciprocal", [denominator]);
        string negative = g.Node("Div", [e, denominator]);
        return g.Node("Where", [g.Node("GreaterOrEqual", [x, g.Scalar(0, ct)]), positive, negative]);
    }

    public void Binary(BinaryOp op, Tensor a, Tensor b, Tensor y)
    {
        if (y.ElementCount == 0)
        {
            return;
        }
        DType dtype = a.DType;
        string key = Key("binary", op, dtype, $"r{a.Rank}", $"r{b.Rank}", $"r{y.Rank}");
        Run(key, () =>
        {
            var g = new OnnxGraph();
            DType ct = ComputeType(dtype);
            string ia = g.Cast(g.Input("a", dtype, a.Rank), dtype, ct);
            string ib = g.Cast(g.Input("b", dtype, b.Rank), dtype, ct);
            g.Output("y", g.Cast(BinaryNode(g, op, ia, ib, ct), ct, dtype), dtype, y.Rank);
            return g;
        }, [a, b], [y], () => Host.Run([a, b, y], [y], (k, m) => k.Binary(op, m(a)!, m(b)!, m(y)!)));
    }

    /// <summary>a op b in the compute dtype <paramref name="ct"/>, with Hal's NaN and integer-division rules.</summary>
    internal static string BinaryNode(OnnxGraph g, BinaryOp op, string a, string b, DType ct)
    {
        switch (op)
        {
            case BinaryOp.Add: return g.Node("Add", [a, b]);
            case BinaryOp.Sub: return g.Node("Sub", [a, b]);
            case BinaryOp.Mul: return g.Node("Mul", [a, b]);
            case BinaryOp.Div:
                if (ct.IsFloatingPoint())
                {
                    return g.Node("Div", [a, b]);
                }
                else
                {
                    // Integer division by zero gives 0 (and must not reach the processor's divide, which traps).
                    string zero = g.Scalar(0, ct);
                    string isZero = g.Node("Equal", [b, zero]);
                    string safe = g.Node("Where", [isZero, g.Scalar(1, ct), b]);
                    return g.Node("Where", [isZero, zero, g.Node("Div", [a, safe])]);
                }
            case BinaryOp.Max:
            case BinaryOp.Min:
            {
                if (!ct.IsFloatingPoint())
                {
                    // ONNX Runtime 1.31's integer Max/Min compared I64 values above 2^31 wrongly here: Where picks exactly.
                    return g.Node("Where", [g.Node(op == BinaryOp.Max ? "Greater" : "Less", [a, b]), a, b]);
                }
                string m = g.Node(op == BinaryOp.Max ? "Max" : "Min", [a, b]);
                // NaN-propagating: where either side is NaN, a + b is NaN.
                string anyNan = g.Node("Or", [g.Node("IsNaN", [a]), g.Node("IsNaN", [b])]);
                return g.Node("Where", [anyNan, g.Node("Add", [a, b]), m]);
            }
            case BinaryOp.Pow: return g.Node("Pow", [a, b]);
            default: throw new ArgumentOutOfRangeException(nameof(op), op, "unknown binary op");
        }
    }
}
