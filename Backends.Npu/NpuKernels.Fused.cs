using Hal.Backends.Npu.Onnx;

namespace Hal.Backends.Npu;

// Tier-2 kernels that map onto ONNX operators. Shapes: x, y, dy, dx [N, C] (rows = every leading dim); weight, bias,
// dweight, dbias [C]; mean, rstd [N] F32 (bound as [N, 1]); logits [N, V], targets [N], losses and lse [N] F32.
// Backward kernels are graphs of forward operators. Everything else falls back to the composite in tier-1 ops.
internal sealed unsafe partial class NpuKernels
{
    private static readonly FusedOp[] FusedOps =
    [
        FusedOp.Softmax, FusedOp.SoftmaxBackward, FusedOp.LogSoftmax, FusedOp.LogSoftmaxBackward,
        FusedOp.LayerNorm, FusedOp.LayerNormBackward, FusedOp.RmsNorm, FusedOp.RmsNormBackward,
        FusedOp.CrossEntropy, FusedOp.CrossEntropyBackward, FusedOp.Embedding, FusedOp.EmbeddingBackward,
        FusedOp.Rotary, FusedOp.RotaryBackward, FusedOp.Attention, FusedOp.AttentionBackward, FusedOp.ActivationBackward, FusedOp.AdamW,
    ];

    /// <summary>F32 and the 16-bit storage types (computed in F32); F64 uses the composite, which computes in F64.</summary>
    public bool Supports(FusedOp op, DType dtype) =>
        dtype is DType.F32 or DType.F16 or DType.BF16 && FusedOps.Contains(op);

    public void Softmax(Tensor x, Tensor y) => RowWise("softmax", x, y, (g, v, ct) => g.Node("Softmax", [v], Attr.Int("axis", 1)));

    public void LogSoftmax(Tensor x, Tensor y) => RowWise("log_softmax", x, y, (g, v, ct) => g.Node("LogSoftmax", [v], Attr.Int("axis", 1)));

    public void SoftmaxBackward(Tensor y, Tensor dy, Tensor dx) =>
        RowWise2("softmax_backward", y, dy, dx, (g, yv, dyv, ct) =>
        {
            // dx = y ⊙ (dy − Σ dy ⊙ y)
            string dot = g.Node("ReduceSum", [g.Node("Mul", [dyv, yv]), g.Int64s(1)], Attr.Int("keepdims", 1));
            return g.Node("Mul", [yv, g.Node("Sub", [dyv, dot])]);
        });

    public void LogSoftmaxBackward(Tensor y, Tensor dy, Tensor dx) =>
        RowWise2("log_softmax_backward", y, dy, dx, (g, yv, dyv, ct) =>
        {
            // dx = dy − exp(y) · Σ dy
            string sum = g.Node("ReduceSum", [dyv, g.Int64s(1)], Attr.Int("keepdims", 1));
            return g.Node("Sub", [dyv, g.Node("Mul", [g.Node("Exp", [yv]), sum])]);
        });

    public void ActivationBackward(UnaryOp op, Tensor x, Tensor dy, Tensor dx) =>
        RowWise2($"activation_backward.{op}", x, dy, dx, (g, xv, dyv, ct) => g.Node("Mul", [dyv, Derivative(g, op, xv, ct)]));

    public void LayerNorm(Tensor x, Tensor weight, Tensor? bias, double eps, Tensor y, Tensor mean, Tensor rstd)
    {
        var (n, c) = Rows(x);
        if (n == 0)
        {
            return;
        }
        DType dtype = x.DType;
        string key = Key("layer_norm", dtype, bias is null ? "nobias" : "bias", Bits(eps));
        var inputs = new List<Operand> { As(x, n, c), weight };
        if (bias is not null)
        {
            inputs.Add(bias);
        }
        Run(key, () =>
        {
            var g = new OnnxGraph();
            string xv = g.Cast(g.Input("x", dtype, 2), dtype, DType.F32);
            string w = g.Cast(g.Input("w", dtype, 1), dtype, DType.F32);
            // mean and rstd in F32 as Hal specifies, from a two-pass variance rather than E[x²] − E[x]².
            string mu = g.Node("ReduceMean", [xv], Attr.Ints("axes", 1), Attr.Int("keepdims", 1));
            string centred = g.Node("Sub", [xv, mu]);
            string variance = g.Node("ReduceMean", [g.Node("Mul", [centred, centred])], Attr.Ints("axes", 1), Attr.Int("keepdims", 1));
            string r = g.Node("Reciprocal", [g.Node("Sqrt", [g.Node("Add", [variance, g.Scalar(eps, DType.F32)])])]);
            string yv = g.Node("Mul", [g.Node("Mul", [centred, r]), w]);
            if (bias is not null)
            {
                yv = g.Node("Add", [yv, g.Cast(g.Input("b", dtype, 1), dtype, DType.F32)]);
            }
            g.Output("y", g.Cast(yv, DType.F32, dtype), dtype, 2);
            g.Output("mean", mu, DType.F32, 2);
            g.Output("rstd", r, DType.F32, 2);
            return g;
        }, [.. inputs], [As(y, n, c), As(mean, n, 1), As(rstd, n, 1)]);
    }

    public void LayerNormBackward(Tensor dy, Tensor x, Tensor weight, Tensor mean, Tensor rstd, Tensor dx, Tensor dweight, Tensor? dbias)
    {
        var (n, c) = Rows(x);
        if (n == 0)
        {
            Fill(dweight, 0);
            if (dbias is not null)
            {
                Fill(dbias, 0);
            }
            return;
        }
        DType dtype = x.DType;
        string key = Key("layer_norm_backward", dtype, dbias is null ? "nobias" : "bias");
        var outputs = new List<Operand> { As(dx, n, c), dweight };
        if (dbias is not null)
        {
            outputs.Add(dbias);
        }
        Run(key, () =>
        {
            var g = new OnnxGraph();
            string dyv = g.Cast(g.Input("dy", dtype, 2), dtype, DType.F32);
            string xv = g.Cast(g.Input("x", dtype, 2), dtype, DType.F32);
            string w = g.Cast(g.Input("w", dtype, 1), dtype, DType.F32);
            string mu = g.Input("mean", DType.F32, 2);
            string r = g.Input("rstd", DType.F32, 2);
            // xhat = (x − mean)·rstd; g = dy·w; dx = rstd·(g − mean(g) − xhat·mean(g·xhat)); dw = Σ dy·xhat; db = Σ dy.
            string xhat = g.Node("Mul", [g.Node("Sub", [xv, mu]), r]);
            string gw = g.Node("Mul", [dyv, w]);
            string meanG = g.Node("ReduceMean", [gw], Attr.Ints("axes", 1), Attr.Int("keepdims", 1));
            string meanGx = g.Node("ReduceMean", [g.Node("Mul", [gw, xhat])], Attr.Ints("axes", 1), Attr.Int("keepdims", 1));
            string dxv = g.Node("Mul", [r, g.Node("Sub", [g.Node("Sub", [gw, meanG]), g.Node("Mul", [xhat, meanGx])])]);
            string dw = g.Node("ReduceSum", [g.Node("Mul", [dyv, xhat]), g.Int64s(0)], Attr.Int("keepdims", 0));
            g.Output("dx", g.Cast(dxv, DType.F32, dtype), dtype, 2);
            g.Output("dw", g.Cast(dw, DType.F32, dtype), dtype, 1);
            if (dbias is not null)
            {
                string db = g.Node("ReduceSum", [dyv, g.Int64s(0)], Attr.Int("keepdims", 0));
                g.Output("db", g.Cast(db, DType.F32, dtype), dtype, 1);
            }
            return g;
        }, [As(dy, n, c), As(x, n, c), weight, As(mean, n, 1), As(rstd, n, 1)], [.. outputs]);
    }

    public void RmsNorm(Tensor x, Tensor weight, double eps, Tensor y, Tensor rstd)
    {
        var (n, c) = Rows(x);
        if (n == 0)
        {
            return;
        }
        DType dtype = x.DType;
        Run(Key("rms_norm", dtype, Bits(eps)), () =>
        {
            var g = new OnnxGraph();
            string xv = g.Cast(g.Input("x", dtype, 2), dtype, DType.F32);
            string w = g.Cast(g.Input("w", dtype, 1), dtype, DType.F32);
            string ms = g.Node("ReduceMean", [g.Node("Mul", [xv, xv])], Attr.Ints("axes", 1), Attr.Int("keepdims", 1));
            string r = g.Node("Reciprocal", [g.Node("Sqrt", [g.Node("Add", [ms, g.Scalar(eps, DType.F32)])])]);
            g.Output("y", g.Cast(g.Node("Mul", [g.Node("Mul", [xv, r]), w]), DType.F32, dtype), dtype, 2);
            g.Output("rstd", r, DType.F32, 2);
            return g;
        }, [As(x, n, c), weight], [As(y, n, c), As(rstd, n, 1)]);
    }

    public void RmsNormBackward(Tensor dy, Tensor x, Tensor weight, Tensor rstd, Tensor dx, Tensor dweight)
    {
        var (n, c) = Rows(x);
        if (n == 0)
        {
            Fill(dweight, 0);
            return;
        }
        DType dtype = x.DType;
        Run(Key("rms_norm_backward", dtype), () =>
        {
            var g = new OnnxGraph();
            string dyv = g.Cast(g.Input("dy", dtype, 2), dtype, DType.F32);
            string xv = g.Cast(g.Input("x", dtype, 2), dtype, DType.F32);
            string w = g.Cast(g.Input("w", dtype, 1), dtype, DType.F32);
            string r = g.Input("rstd", DType.F32, 2);
            // xhat = x·rstd; g = dy·w; dx = rstd·(g − xhat·mean(g·xhat)); dw = Σ dy·xhat.
            string xhat = g.Node("Mul", [xv, r]);
            string gw = g.Node("Mul", [dyv, w]);
            string meanGx = g.Node("ReduceMean", [g.Node("Mul", [gw, xhat])], Attr.Ints("axes", 1), Attr.Int("keepdims", 1));
            string dxv = g.Node("Mul", [r, g.Node("Sub", [gw, g.Node("Mul", [xhat, meanGx])])]);
            string dw = g.Node("ReduceSum", [g.Node("Mul", [dyv, xhat]), g.Int64s(0)], Attr.Int("keepdims", 0));
            g.Output("dx", g.Cast(dxv, DType.F32, dtype), dtype, 2);
            g.Output("dw", g.Cast(dw, DType.F32, dtype), dtype, 1);
            return g;
        }, [As(dy, n, c), As(x, n, c), weight, As(rstd, n, 1)], [As(dx, n, c), dweight]);
    }

    public void CrossEntropy(Tensor logits, Tensor targets, Tensor losses, Tensor lse)
    {
        var (n, v) = Rows(logits);
        CheckTargets(targets, v);
        if (n == 0)
        {
            return;
        }
        DType dtype = logits.DType;
        Run(Key("cross_entropy", dtype, targets.DType), () =>
        {
            var g = new OnnxGraph();
            string z = g.Cast(g.Input("logits", dtype, 2), dtype, DType.F32);
            string t = g.Cast(g.Input("targets", targets.DType, 1), targets.DType, DType.I64);
            string l = LogSumExpRows(g, z);
            // An ignored (negative) target gathers column 0 and its loss is then replaced by 0.
            string ignored = g.Node("Less", [t, g.Scalar(0, DType.I64)]);
            string safe = g.Node("Where", [ignored, g.Scalar(0, DType.I64), t]);
            string picked = g.Node("GatherElements", [z, g.Node("Unsqueeze", [safe, g.Int64s(1)])], Attr.Int("axis", 1));
            string loss = g.Node("Sub", [l, g.Node("Squeeze", [picked, g.Int64s(1)])]);
            g.Output("losses", g.Node("Where", [ignored, g.Scalar(0, DType.F32), loss]), DType.F32, 1);
            g.Output("lse", l, DType.F32, 1);
            return g;
        }, [As(logits, n, v), targets], [As(losses, n), As(lse, n)]);
    }

    public void CrossEntropyBackward(Tensor logits, Tensor targets, Tensor lse, Tensor dlosses, Tensor dlogits)
    {
        var (n, v) = Rows(logits);
        CheckTargets(targets, v);
        if (n == 0)
        {
            return;
        }
        DType dtype = logits.DType;
        Run(Key("cross_entropy_backward", dtype, targets.DType), () =>
        {
            var g = new OnnxGraph();
            string z = g.Cast(g.Input("logits", dtype, 2), dtype, DType.F32);
            string t = g.Cast(g.Input("targets", targets.DType, 1), targets.DType, DType.I64);
            string l = g.Input("lse", DType.F32, 1);
            string dl = g.Input("dlosses", DType.F32, 1);
            // (softmax − onehot(target)) · dloss per row; rows with an ignored target are zero.
            string p = g.Node("Exp", [g.Node("Sub", [z, g.Node("Unsqueeze", [l, g.Int64s(1)])])]);
            string columns = g.Node("Range", [g.Scalar(0, DType.I64), g.Node("Gather", [g.Node("Shape", [z]), g.Scalar(1, DType.I64)]), g.Scalar(1, DType.I64)]);
            string t2 = g.Node("Unsqueeze", [t, g.Int64s(1)]);
            string onehot = g.Cast(g.Node("Equal", [columns, t2]), DType.Bool, DType.F32);
            // Where rather than a multiply by 0, so that an ignored row's NaN or ±Inf logits still give 0.
            string d = g.Node("Where", [g.Node("GreaterOrEqual", [t2, g.Scalar(0, DType.I64)]), g.Node("Mul", [g.Node("Sub", [p, onehot]), g.Node("Unsqueeze", [dl, g.Int64s(1)])]), g.Scalar(0, DType.F32)]);
            g.Output("dlogits", g.Cast(d, DType.F32, dtype), dtype, 2);
            return g;
        }, [As(logits, n, v), targets, As(lse, n), As(dlosses, n)], [As(dlogits, n, v)]);
    }

    public void Embedding(Tensor weight, Tensor ids, Tensor y) =>
        IndexSelect(weight, 0, As1D(ids), y.View(0, new Shape(checked((int)ids.ElementCount), weight.Shape[1])));

    public void EmbeddingBackward(Tensor dy, Tensor ids, Tensor dweight)
    {
        var flatIds = As1D(ids);
        CheckIndices("embedding-backward", flatIds, dweight.Shape[0], 0);
        Fill(dweight, 0);
        IndexAdd(dy.View(0, new Shape(checked((int)ids.ElementCount), dweight.Shape[1])), 0, flatIds, dweight);
    }

    private static Tensor As1D(Tensor t) => t.View(0, new Shape(checked((int)t.ElementCount)));

    /// <summary>
    /// log Σ exp over axis 1 of z [N, V] F32, to [N]: ReduceLogSumExp, except that a row holding +Inf gives NaN (its
    /// terms exp(x − max) are NaN) and an all −Inf row (or V = 0) gives −Inf, as the contract's lse does.
    /// </summary>
    private static string LogSumExpRows(OnnxGraph g, string z)
    {
        string l = g.Node("ReduceLogSumExp", [z], Attr.Ints("axes", 1), Attr.Int("keepdims", 0));
        string posInf = g.Cast(g.Node("IsInf", [z], Attr.Int("detect_negative", 0)), DType.Bool, DType.F32);
        string hasPosInf = g.Node("Greater", [g.Node("ReduceMax", [posInf], Attr.Ints("axes", 1), Attr.Int("keepdims", 0)), g.Scalar(0, DType.F32)]);
        string negInf = g.Cast(g.Node("IsInf", [z], Attr.Int("detect_positive", 0)), DType.Bool, DType.F32);
        string allNegInf = g.Node("Greater", [g.Node("ReduceMin", [negInf], Attr.Ints("axes", 1), Attr.Int("keepdims", 0)), g.Scalar(0, DType.F32)]);
        l = g.Node("Where", [hasPosInf, g.Scalar(double.NaN, DType.F32), l]);
        return g.Node("Where", [allNegInf, g.Scalar(double.NegativeInfinity, DType.F32), l]);
    }

    /// <summary>Targets must be below V; negative ones are ignored.</summary>
    private static void CheckTargets(Tensor targets, long v)
    {
        byte* p = (byte*)((HostBuffer)targets.Buffer).Pointer + targets.OffsetBytes;
        for (long i = 0; i < targets.ElementCount; i++)
        {
            long k = targets.DType == DType.I32 ? ((int*)p)[i] : ((long*)p)[i];
            if (k >= v)
            {
                throw new ArgumentOutOfRangeException(nameof(targets), k, $"cross-entropy: target {k} at position {i} is outside the valid range [negative = ignored, 0, {v})");
            }
        }
    }

    /// <summary>op'(x) for the activations with a backward kernel, in F32; x is clamped to ±1e4 first (NaN stays).</summary>
    private static string Derivative(OnnxGraph g, UnaryOp op, string x, DType ct)
    {
        string one = g.Scalar(1, ct);
        if (op == UnaryOp.Relu)
        {
            // 1 for x > 0, else 0; a NaN x gives NaN like every other activation's derivative.
            string step = g.Cast(g.Node("Greater", [x, g.Scalar(0, ct)]), DType.Bool, ct);
            return g.Node("Where", [g.Node("IsNaN", [x]), x, step]);
        }
        if (op == UnaryOp.Tanh)
        {
            string t = g.Node("Tanh", [x]);
            return g.Node("Sub", [one, g.Node("Mul", [t, t])]);
        }
        // Silu and GELU derivatives have reached 0 or 1 long before ±1e4; the clamp avoids ∞·0 at ±∞.
        string hi = g.Scalar(1e4, ct);
        string lo = g.Scalar(-1e4, ct);
        string upper = g.Node("Where", [g.Node("Greater", [x, hi]), hi, x]);
        string xs = g.Node("Where", [g.Node("Less", [upper, lo]), lo, upper]);
        switch (op)
        {
            case UnaryOp.Sigmoid:
            {
                string s = Sigmoid(g, x, ct);
                return g.Node("Mul", [s, g.Node("Sub", [one, s])]);
            }
            case UnaryOp.Silu:
            {
                string s = Sigmoid(g, xs, ct);
                return g.Node("Mul", [s, g.Node("Add", [one, g.Node("Mul", [xs, g.Node("Sub", [one, s])])])]);
            }
            case UnaryOp.GeluErf:
            {
                // Φ(x) + x·φ(x)
                string cdf = g.Node("Mul", [g.Scalar(0.5, ct), g.Node("Add", [one, g.Node("Erf", [g.Node("Mul", [xs, g.Scalar(1 / Math.Sqrt(2), ct)])])])]);
                string pdf = g.Node("Mul", [g.Scalar(1 / Math.Sqrt(2 * Math.PI), ct), g.Node("Exp", [g.Node("Mul", [g.Node("Mul", [xs, xs]), g.Scalar(-0.5, ct)])])]);
                return g.Node("Add", [cdf, g.Node("Mul", [xs, pdf])]);
            }
            case UnaryOp.GeluTanh:
            {
                // With u = c·(x + a·x³), t = tanh(u): ½(1 + t) + ½x·(1 − t²)·c·(1 + 3a·x²).
                const double a = 0.044715;
                double c = Math.Sqrt(2 / Math.PI);
                string x2 = g.Node("Mul", [xs, xs]);
                string u = g.Node("Mul", [g.Node("Mul", [xs, g.Node("Add", [one, g.Node("Mul", [x2, g.Scalar(a, ct)])])]), g.Scalar(c, ct)]);
                string t = g.Node("Tanh", [u]);
                string du = g.Node("Mul", [g.Node("Add", [one, g.Node("Mul", [x2, g.Scalar(3 * a, ct)])]), g.Scalar(c, ct)]);
                string sech2 = g.Node("Sub", [one, g.Node("Mul", [t, t])]);
                string left = g.Node("Mul", [g.Scalar(0.5, ct), g.Node("Add", [one, t])]);
                string right = g.Node("Mul", [g.Node("Mul", [g.Node("Mul", [g.Scalar(0.5, ct), xs]), sech2]), du]);
                return g.Node("Add", [left, right]);
            }
            default:
                throw new ArgumentOutOfRangeException(nameof(op), op, "activation-backward supports Relu, Tanh, Sigmoid, GeluErf, GeluTanh and Silu");
        }
    }

    /// <summary>One input, one output, both [N, C], computed in F32.</summary>
    private void RowWise(string name, Tensor x, Tensor y, Func<OnnxGraph, string, DType, string> body)
    {
        var (n, c) = Rows(x);
        if (n * c == 0)
        {
            return;
        }
        DType dtype = x.DType;
        Run(Key(name, dtype), () =>
        {
            var g = new OnnxGraph();
            DType ct = ComputeType(dtype);
            string xv = g.Cast(g.Input("x", dtype, 2), dtype, ct);
            g.Output("y", g.Cast(body(g, xv, ct), ct, dtype), dtype, 2);
            return g;
        }, [As(x, n, c)], [As(y, n, c)]);
    }

    /// <summary>Two inputs and one output, all [N, C], computed in F32.</summary>
    private void RowWise2(string name, Tensor a, Tensor b, Tensor y, Func<OnnxGraph, string, string, DType, string> body)
    {
        var (n, c) = Rows(a);
        if (n * c == 0)
        {
            return;
        }
        DType dtype = a.DType;
        Run(Key(name, dtype), () =>
        {
            var g = new OnnxGraph();
            DType ct = ComputeType(dtype);
            string av = g.Cast(g.Input("a", dtype, 2), dtype, ct);
            string bv = g.Cast(g.Input("b", dtype, 2), dtype, ct);
            g.Output("y", g.Cast(body(g, av, bv, ct), ct, dtype), dtype, 2);
            return g;
        }, [As(a, n, c), As(b, n, c)], [As(y, n, c)]);
    }

    /// <summary>[rows, last axis] of a tensor.</summary>
    private static (long Rows, long Columns) Rows(Tensor t)
    {
        long c = t.Rank == 0 ? 1 : t.Shape[t.Rank - 1];
        return (c == 0 ? t.Shape.Product(0, Math.Max(t.Rank - 1, 0)) : t.ElementCount / c, c);
    }

    private static string Bits(double value) => BitConverter.DoubleToInt64Bits(value).ToString("x16", System.Globalization.CultureInfo.InvariantCulture);
}
