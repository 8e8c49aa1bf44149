namespace Hal.Backends.OpenCL;

// Fused tier-2 kernels. Legend: rows N (all axes but the last), C the last axis, V vocabulary, x [B, T, H, D] for
// rotary. Row kernels run one work-group per row (rows.cl); the rest are element-wise (elementwise.cl, index.cl).
// Ops without a kernel here (attention, LAMB, LARS, int8 quantisation) run Ops' composite fallback.
internal sealed partial class OpenClKernels
{
    /// <inheritdoc />
    public bool Supports(FusedOp op, DType dtype)
    {
        if (!dtype.IsFloatingPoint() || (dtype == DType.F64 && !_device.Info.HasFp64))
        {
            return false;
        }
        return op switch
        {
            FusedOp.Softmax or FusedOp.SoftmaxBackward or FusedOp.LogSoftmax or FusedOp.LogSoftmaxBackward
                or FusedOp.LayerNorm or FusedOp.LayerNormBackward or FusedOp.RmsNorm or FusedOp.RmsNormBackward
                or FusedOp.CrossEntropy or FusedOp.CrossEntropyBackward or FusedOp.Embedding
                or FusedOp.Rotary or FusedOp.RotaryBackward or FusedOp.ActivationBackward => true,
            // The embedding gradient accumulates in the table's dtype; 16-bit tables take the composite (F32) path.
            FusedOp.EmbeddingBackward => !dtype.Is16Bit(),
            // AdamW keeps F32 states and computes in F32: F32 and 16-bit parameters.
            FusedOp.AdamW => dtype != DType.F64,
            _ => false,
        };
    }

    private static (long Rows, long Cols) RowsCols(Tensor x) => (x.ElementCount / Math.Max(1, x.Shape[-1]), x.Shape[-1]);

    private void SoftmaxCore(int mode, Tensor x, Tensor y)
    {
        var (rows, c) = RowsCols(x);
        if (c == 0)
        {
            return;
        }
        int g = RowGroup(c);
        LaunchRows(RowsFile, Options(x.DType), "softmax", rows, g, KArg.I32(mode), Mem(x), Off(x), Mem(y), Off(y), KArg.I64(c), KArg.Local(g * AccSize(x.DType)));
    }

    private void SoftmaxBackwardCore(int mode, Tensor y, Tensor dy, Tensor dx)
    {
        var (rows, c) = RowsCols(y);
        if (c == 0)
        {
            return;
        }
        int g = RowGroup(c);
        LaunchRows(RowsFile, Options(y.DType), "softmax_backward", rows, g, KArg.I32(mode), Mem(y), Off(y), Mem(dy), Off(dy), Mem(dx), Off(dx),
            KArg.I64(c), KArg.Local(g * AccSize(y.DType)));
    }

    public void Softmax(Tensor x, Tensor y) => SoftmaxCore(0, x, y);

    public void LogSoftmax(Tensor x, Tensor y) => SoftmaxCore(1, x, y);

    public void SoftmaxBackward(Tensor y, Tensor dy, Tensor dx) => SoftmaxBackwardCore(0, y, dy, dx);

    public void LogSoftmaxBackward(Tensor y, Tensor dy, Tensor dx) => SoftmaxBackwardCore(1, y, dy, dx);

    private void NormForward(bool rms, Tensor x, Tensor weight, Tensor? bias, double eps, Tensor y, Tensor? mean, Tensor rstd)
    {
        var (rows, c) = RowsCols(x);
        int g = RowGroup(c);
        var b = bias ?? weight;
        var m = mean ?? rstd;
        LaunchRows(RowsFile, Options(x.DType), "norm_forward", rows, g, KArg.I32(rms ? 1 : 0), Mem(x), Off(x), Mem(weight), Off(weight),
            Mem(b), Off(b), KArg.I32(bias is null ? 0 : 1), Scalar(x.DType, eps), Mem(y), Off(y), Mem(m), Off(m), Mem(rstd), Off(rstd),
            KArg.I64(c), KArg.Local(g * AccSize(x.DType)));
    }

    private void NormBackward(bool rms, Tensor dy, Tensor x, Tensor weight, Tensor? mean, Tensor rstd, Tensor dx, Tensor dweight, Tensor? dbias)
    {
        var (rows, c) = RowsCols(x);
        int g = RowGroup(c);
        var m = mean ?? rstd;
        string options = Options(x.DType);
        LaunchRows(RowsFile, options, "norm_backward_dx", rows, g, KArg.I32(rms ? 1 : 0), Mem(dy), Off(dy), Mem(x), Off(x), Mem(weight), Off(weight),
            Mem(m), Off(m), Mem(rstd), Off(rstd), Mem(dx), Off(dx), KArg.I64(c), KArg.Local(g * AccSize(x.DType)));
        var db = dbias ?? dweight;
        Launch1D(RowsFile, options, "norm_backward_dw", c, KArg.I32(rms ? 1 : 0), Mem(dy), Off(dy), Mem(x), Off(x), Mem(m), Off(m), Mem(rstd), Off(rstd),
            Mem(dweight), Off(dweight), Mem(db), Off(db), KArg.I32(dbias is null ? 0 : 1), KArg.I64(rows), KArg.I64(c));
    }

    public void LayerNorm(Tensor x, Tensor weight, Tensor? bias, double eps, Tensor y, Tensor mean, Tensor rstd) =>
        NormForward(false, x, weight, bias, eps, y, mean, rstd);

    public void LayerNormBackward(Tensor dy, Tensor x, Tensor weight, Tensor mean, Tensor rstd, Tensor dx, Tensor dweight, Tensor? dbias) =>
        NormBackward(false, dy, x, weight, mean, rstd, dx, dweight, dbias);

    public void RmsNorm(Tensor x, Tensor weight, double eps, Tensor y, Tensor rstd) =>
        NormForward(true, x, weight, null, eps, y, null, rstd);

    public void RmsNormBackward(Tensor dy, Tensor x, Tensor weight, Tensor rstd, Tensor dx, Tensor dweight) =>
        NormBackward(true, dy, x, weight, null, rstd, dx, dweight, null);

    public void CrossEntropy(Tensor logits, Tensor targets, Tensor losses, Tensor lse)
    {
        var (rows, v) = RowsCols(logits);
        CheckIndices("cross-entropy", targets, v, negativeIgnored: true);
        int g = RowGroup(v);
        LaunchRows(RowsFile, Options(logits.DType, IndexOption(targets)), "cross_entropy", rows, g, Mem(logits), Off(logits), Mem(targets), Off(targets),
            Mem(losses), Off(losses), Mem(lse), Off(lse), KArg.I64(v), KArg.Local(g * AccSize(logits.DType)));
    }

    public void CrossEntropyBackward(Tensor logits, Tensor targets, Tensor lse, Tensor dlosses, Tensor dlogits)
    {
        var (rows, v) = RowsCols(logits);
        CheckIndices("cross-entropy-backward", targets, v, negativeIgnored: true);
        int g = RowGroup(v);
        LaunchRows(RowsFile, Options(logits.DType, IndexOption(targets)), "cross_entropy_backward", rows, g, Mem(logits), Off(logits),
            Mem(targets), Off(targets), Mem(lse), Off(lse), Mem(dlosses), Off(dlosses), Mem(dlogits), Off(dlogits), KArg.I64(v),
            KArg.Local(g * AccSize(logits.DType)));
    }

    public void Embedding(Tensor weight, Tensor ids, Tensor y)
    {
        long vocab = weight.Shape[0], c = weight.Shape[1], n = ids.ElementCount;
        CheckIndices("embedding", ids, vocab, negativeIgnored: false);
        Launch1D(IndexFile, Options(weight.DType, IndexOption(ids)), "index_select", n * c,
            Mem(weight), Off(weight), Mem(ids), Off(ids), Mem(y), Off(y), KArg.I64(1), KArg.I64(vocab), KArg.I64(n), KArg.I64(c));
    }

    public void EmbeddingBackward(Tensor dy, Tensor ids, Tensor dweight)
    {
        long vocab = dweight.Shape[0], c = dweight.Shape[1], n = ids.ElementCount;
        CheckIndices("embedding-backward", ids, vocab, negativeIgnored: false);
        Fill(dweight, 0);
        if (n == 0)
        {
            return;
        }
        Launch1D(IndexFile, Options(dweight.DType, IndexOption(ids)), "index_add", c,
            Mem(dy), Off(dy), Mem(ids), Off(ids), Mem(dweight), Off(dweight), KArg.I64(1), KArg.I64(vocab), KArg.I64(n), KArg.I64(c));
    }

    private void RotaryCore(float sign, Tensor x, Tensor cos, Tensor sin, int positionOffset, Tensor y)
    {
        long t = x.Shape[1], h = x.Shape[2], d = x.Shape[3];
        long count = x.ElementCount / 2;
        Launch1D(IndexFile, Options(x.DType), "rotary", count, Mem(x), Off(x), Mem(cos), Off(cos), Mem(sin), Off(sin), Mem(y), Off(y),
            KArg.I64(t), KArg.I64(h), KArg.I64(d), KArg.I64(positionOffset), KArg.F32(sign), KArg.I64(count));
    }

    public void Rotary(Tensor x, Tensor cos, Tensor sin, int positionOffset, Tensor y) => RotaryCore(1f, x, cos, sin, positionOffset, y);

    public void RotaryBackward(Tensor dy, Tensor cos, Tensor sin, int positionOffset, Tensor dx) => RotaryCore(-1f, dy, cos, sin, positionOffset, dx);

    public void ActivationBackward(UnaryOp op, Tensor x, Tensor dy, Tensor dx)
    {
        if (op is not (UnaryOp.Relu or UnaryOp.Tanh or UnaryOp.Sigmoid or UnaryOp.GeluErf or UnaryOp.GeluTanh or UnaryOp.Silu))
        {
            throw new NotSupportedException($"ActivationBackward has no {op}; it covers Relu, Tanh, Sigmoid, GeluErf, GeluTanh and Silu");
        }
        Launch1D(ElementwiseFile, Options(x.DType), "activation_backward", x.ElementCount, KArg.I32((int)op), Mem(x), Off(x), Mem(dy), Off(dy),
            Mem(dx), Off(dx), KArg.I64(x.ElementCount));
    }

    public void AdamW(Tensor param, Tensor grad, Tensor m, Tensor v, AdamWConfig config, long step)
    {
        double c1 = 1 - Math.Pow(config.Beta1, step), c2 = 1 - Math.Pow(config.Beta2, step);
        // The kernel's OPT type is F64 where the device has fp64, else F32.
        bool f64 = _device.Info.HasFp64;
        KArg H(double x) => f64 ? KArg.F64(x) : KArg.F32((float)x);
        Launch1D(ElementwiseFile, Options(param.DType), "adamw", param.ElementCount, Mem(param), Off(param), Mem(grad), Off(grad),
            Mem(m), Off(m), Mem(v), Off(v), KArg.I64(param.ElementCount), H(config.LearningRate), H(config.Beta1), H(config.Beta2),
            H(config.Epsilon), H(config.WeightDecay), H(c1), H(c2), H(1 - config.Beta1), H(1 - config.Beta2));
    }
}
