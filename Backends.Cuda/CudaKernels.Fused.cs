using Hal.Backends.Cuda.Kernels;
using ILGPU;
using ILGPU.Runtime;

namespace Hal.Backends.Cuda;

// Tier 2: fused kernels for every float dtype (16-bit storage computes in double registers and rounds once).
// LAMB, LARS and int8 quantisation run the composite fallback.
// Legend: N rows, C columns (last axis), V vocabulary; attention q [B, H, Tq, D], k/v [B, Hkv, Tk, D].
internal sealed partial class CudaKernels
{
    private static readonly HashSet<FusedOp> FusedOps =
    [
        FusedOp.Softmax, FusedOp.SoftmaxBackward, FusedOp.LogSoftmax, FusedOp.LogSoftmaxBackward,
        FusedOp.LayerNorm, FusedOp.LayerNormBackward, FusedOp.RmsNorm, FusedOp.RmsNormBackward,
        FusedOp.CrossEntropy, FusedOp.CrossEntropyBackward, FusedOp.Embedding, FusedOp.EmbeddingBackward,
        FusedOp.Rotary, FusedOp.RotaryBackward, FusedOp.Attention, FusedOp.AttentionBackward,
        FusedOp.ActivationBackward, FusedOp.AdamW,
    ];

    public bool Supports(FusedOp op, DType dtype) => dtype.IsFloatingPoint() && FusedOps.Contains(op);

    private static long Columns(Tensor t) => t.Rank == 0 ? 1 : t.Shape[-1];

    private static long Rows(Tensor t) => t.ElementCount / Math.Max(Columns(t), 1);

    private KernelConfig RowConfig(long rows) => new((int)rows, RowGroupSize);

    public void Softmax(Tensor x, Tensor y) => SoftmaxCore(x, y, log: 0);

    public void LogSoftmax(Tensor x, Tensor y) => SoftmaxCore(x, y, log: 1);

    private void SoftmaxCore(Tensor x, Tensor y, int log)
    {
        if (x.ElementCount == 0)
        {
            return;
        }
        var kernel = Load("softmax", a => a.LoadStreamKernel<DeviceTensor, DeviceTensor, long, int>(RowKernels.Softmax));
        var xt = Arg(x);
        var yt = Arg(y);
        Run(() => kernel(RowConfig(Rows(x)), xt, yt, Columns(x), log), "softmax");
    }

    public void SoftmaxBackward(Tensor y, Tensor dy, Tensor dx) => SoftmaxBackwardCore(y, dy, dx, log: 0);

    public void LogSoftmaxBackward(Tensor y, Tensor dy, Tensor dx) => SoftmaxBackwardCore(y, dy, dx, log: 1);

    private void SoftmaxBackwardCore(Tensor y, Tensor dy, Tensor dx, int log)
    {
        if (y.ElementCount == 0)
        {
            return;
        }
        var kernel = Load("softmax_backward", a => a.LoadStreamKernel<DeviceTensor, DeviceTensor, DeviceTensor, long, int>(RowKernels.SoftmaxBackward));
        var yt = Arg(y);
        var gt = Arg(dy);
        var dt = Arg(dx);
        Run(() => kernel(RowConfig(Rows(y)), yt, gt, dt, Columns(y), log), "softmax backward");
    }

    public void LayerNorm(Tensor x, Tensor weight, Tensor? bias, double eps, Tensor y, Tensor mean, Tensor rstd) =>
        NormCore(x, weight, bias, eps, y, mean, rstd, rms: 0);

    public void RmsNorm(Tensor x, Tensor weight, double eps, Tensor y, Tensor rstd) =>
        NormCore(x, weight, null, eps, y, rstd, rstd, rms: 1);

    private void NormCore(Tensor x, Tensor weight, Tensor? bias, double eps, Tensor y, Tensor mean, Tensor rstd, int rms)
    {
        if (Rows(x) == 0)
        {
            return;
        }
        var kernel = Load("norm", a => a.LoadStreamKernel<DeviceTensor, DeviceTensor, DeviceTensor, int, double, DeviceTensor, DeviceTensor, DeviceTensor, long, int>(RowKernels.Norm));
        var xt = Arg(x);
        var wt = Arg(weight);
        var bt = bias is null ? wt : Arg(bias);
        var yt = Arg(y);
        var mt = Arg(mean);
        var rt = Arg(rstd);
        Run(() => kernel(RowConfig(Rows(x)), xt, wt, bt, bias is null ? 0 : 1, eps, yt, mt, rt, Columns(x), rms), rms != 0 ? "rms norm" : "layer norm");
    }

    public void LayerNormBackward(Tensor dy, Tensor x, Tensor weight, Tensor mean, Tensor rstd, Tensor dx, Tensor dweight, Tensor? dbias) =>
        NormBackwardCore(dy, x, weight, mean, rstd, dx, dweight, dbias, rms: 0);

    public void RmsNormBackward(Tensor dy, Tensor x, Tensor weight, Tensor rstd, Tensor dx, Tensor dweight) =>
        NormBackwardCore(dy, x, weight, rstd, rstd, dx, dweight, null, rms: 1);

    private void NormBackwardCore(Tensor dy, Tensor x, Tensor weight, Tensor mean, Tensor rstd, Tensor dx, Tensor dweight, Tensor? dbias, int rms)
    {
        long rows = Rows(x);
        long cols = Columns(x);
        var gt = Arg(dy);
        var xt = Arg(x);
        var wt = Arg(weight);
        var mt = Arg(mean);
        var rt = Arg(rstd);
        if (rows > 0)
        {
            var kernel = Load("norm_backward", a => a.LoadStreamKernel<DeviceTensor, DeviceTensor, DeviceTensor, DeviceTensor, DeviceTensor, DeviceTensor, long, int>(RowKernels.NormBackward));
            var dxt = Arg(dx);
            Run(() => kernel(RowConfig(rows), gt, xt, wt, mt, rt, dxt, cols, rms), "norm backward");
        }
        var columns = Load("norm_weight_grad", a => a.LoadAutoGroupedStreamKernel<Index1D, DeviceTensor, DeviceTensor, DeviceTensor, DeviceTensor, DeviceTensor, DeviceTensor, long, long, long, int, int>(FusedKernels.NormWeightGrad));
        var dwt = Arg(dweight);
        var dbt = dbias is null ? dwt : Arg(dbias);
        Run(() => Chunked(cols, (n, s) => columns(n, gt, xt, mt, rt, dwt, dbt, s, rows, cols, rms, dbias is null ? 0 : 1)), "norm weight gradient");
    }

    public void CrossEntropy(Tensor logits, Tensor targets, Tensor losses, Tensor lse)
    {
        long rows = Rows(logits);
        long cols = Columns(logits);
        CheckTargets(targets, cols);
        if (rows == 0)
        {
            return;
        }
        var kernel = Load("cross_entropy", a => a.LoadStreamKernel<DeviceTensor, DeviceTensor, DeviceTensor, DeviceTensor, long>(RowKernels.CrossEntropy));
        var lt = Arg(logits);
        var tt = Arg(targets);
        var ls = Arg(losses);
        var le = Arg(lse);
        Run(() => kernel(RowConfig(rows), lt, tt, ls, le, cols), "cross entropy");
    }

    public void CrossEntropyBackward(Tensor logits, Tensor targets, Tensor lse, Tensor dlosses, Tensor dlogits)
    {
        long cols = Columns(logits);
        CheckTargets(targets, cols);
        long rows = Rows(logits);
        if (rows == 0)
        {
            return;
        }
        var kernel = Load("cross_entropy_backward", a => a.LoadStreamKernel<DeviceTensor, DeviceTensor, DeviceTensor, DeviceTensor, long>(RowKernels.CrossEntropyBackward));
        var lt = Arg(logits);
        var tt = Arg(targets);
        var dl = Arg(dlosses);
        var dt = Arg(dlogits);
        Run(() => kernel(RowConfig(rows), lt, tt, dl, dt, cols), "cross entropy backward");
    }

    /// <summary>Targets must be negative (ignored) or a valid class.</summary>
    private void CheckTargets(Tensor targets, long classes)
    {
        var values = DownloadIndices(targets);
        for (long i = 0; i < values.Length; i++)
        {
            if (values[i] >= classes)
            {
                throw new ArgumentOutOfRangeException("targets", values[i], $"cross entropy: target {values[i]} at position {i} is outside [0, {classes}) (negative targets are ignored)");
            }
        }
    }

    public void Embedding(Tensor weight, Tensor ids, Tensor y)
    {
        long cols = Columns(weight);
        CheckIndices("embedding", DownloadIndices(ids), weight.Shape[0]);
        var kernel = Load("embedding", a => a.LoadAutoGroupedStreamKernel<Index1D, DeviceTensor, DeviceTensor, DeviceTensor, long, long>(FusedKernels.Embedding));
        var wt = Arg(weight);
        var it = Arg(ids);
        var yt = Arg(y);
        Run(() => Chunked(y.ElementCount, (n, s) => kernel(n, wt, it, yt, s, Math.Max(cols, 1))), "embedding");
    }

    public void EmbeddingBackward(Tensor dy, Tensor ids, Tensor dweight)
    {
        long vocab = dweight.Shape[0];
        long cols = Columns(dweight);
        var values = DownloadIndices(ids);
        CheckIndices("embedding backward", values, vocab);
        // Counting sort of the rows by id: rowStart[v] .. rowStart[v + 1] lists, in ascending order, the rows with id v.
        var rowStart = new long[vocab + 1];
        foreach (long v in values)
        {
            rowStart[v + 1]++;
        }
        for (long v = 0; v < vocab; v++)
        {
            rowStart[v + 1] += rowStart[v];
        }
        var rows = new long[values.Length];
        var next = (long[])rowStart.Clone();
        for (long n = 0; n < values.Length; n++)
        {
            rows[next[values[n]]++] = n;
        }
        using var startT = Upload(rowStart);
        using var rowsT = Upload(rows.Length == 0 ? [0] : rows);
        var kernel = Load("embedding_backward", a => a.LoadAutoGroupedStreamKernel<Index1D, DeviceTensor, DeviceTensor, DeviceTensor, DeviceTensor, long, long>(FusedKernels.EmbeddingBackward));
        var gt = Arg(dy);
        var st = Arg(startT);
        var rt = Arg(rowsT);
        var dt = Arg(dweight);
        Run(() => Chunked(dweight.ElementCount, (n, s) => kernel(n, gt, st, rt, dt, s, Math.Max(cols, 1))), "embedding backward");
    }

    /// <summary>A device I64 tensor holding <paramref name="values"/> (freed by the caller; freeing waits for queued work).</summary>
    private Tensor Upload(long[] values)
    {
        var buffer = _device.Allocator.Allocate(values.LongLength * 8);
        var t = new Tensor(buffer, 0, new Shape(values.Length), DType.I64, ownsBuffer: true);
        _device.CopyFromHost(System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()), buffer, 0);
        return t;
    }

    public void Rotary(Tensor x, Tensor cos, Tensor sin, int positionOffset, Tensor y) => RotaryCore(x, cos, sin, positionOffset, y, 1.0);

    public void RotaryBackward(Tensor dy, Tensor cos, Tensor sin, int positionOffset, Tensor dx) => RotaryCore(dy, cos, sin, positionOffset, dx, -1.0);

    private void RotaryCore(Tensor x, Tensor cos, Tensor sin, int positionOffset, Tensor y, double sinSign)
    {
        var kernel = Load("rotary", a => a.LoadAutoGroupedStreamKernel<Index1D, DeviceTensor, DeviceTensor, DeviceTensor, DeviceTensor, long, long, long, long, long, double>(FusedKernels.Rotary));
        long seqLen = x.Shape[1], heads = x.Shape[2], headDim = x.Shape[3];
        var xt = Arg(x);
        var ct = Arg(cos);
        var st = Arg(sin);
        var yt = Arg(y);
        Run(() => Chunked(x.ElementCount, (n, s) => kernel(n, xt, ct, st, yt, s, seqLen, heads, headDim, positionOffset, sinSign)), "rotary");
    }

    public void ActivationBackward(UnaryOp op, Tensor x, Tensor dy, Tensor dx)
    {
        var kernel = Load("activation_backward", a => a.LoadAutoGroupedStreamKernel<Index1D, DeviceTensor, DeviceTensor, DeviceTensor, long, int>(FusedKernels.ActivationBackward));
        var xt = Arg(x);
        var gt = Arg(dy);
        var dt = Arg(dx);
        Run(() => Chunked(x.ElementCount, (n, s) => kernel(n, xt, gt, dt, s, (int)op)), "activation backward");
    }

    public void AdamW(Tensor param, Tensor grad, Tensor m, Tensor v, AdamWConfig config, long step)
    {
        var kernel = Load("adamw", a => a.LoadAutoGroupedStreamKernel<Index1D, DeviceTensor, DeviceTensor, DeviceTensor, DeviceTensor, long, FusedKernels.AdamArgs>(FusedKernels.AdamW));
        var args = new FusedKernels.AdamArgs
        {
            LearningRate = config.LearningRate,
            Beta1 = config.Beta1,
            Beta2 = config.Beta2,
            Epsilon = config.Epsilon,
            WeightDecay = config.WeightDecay,
            Correction1 = 1 - Math.Pow(config.Beta1, step),
            Correction2 = 1 - Math.Pow(config.Beta2, step),
        };
        var pt = Arg(param);
        var gt = Arg(grad);
        var mt = Arg(m);
        var vt = Arg(v);
        Run(() => Chunked(param.ElementCount, (n, s) => kernel(n, pt, gt, mt, vt, s, args)), "adamw");
    }

    public void Attention(Tensor q, Tensor k, Tensor v, bool causal, double scale, Tensor output, Tensor lse)
    {
        var shape = AttentionShapeOf(q, k, causal, scale);
        if (shape.HeadDim > AttentionKernels.MaxHeadDim)
        {
            Composite.Attention(new Ops(_device), q, k, v, causal, scale, output, lse);
            return;
        }
        if (q.ElementCount == 0 && lse.ElementCount == 0)
        {
            return;
        }
        var kernel = Load("attention", a => a.LoadStreamKernel<DeviceTensor, DeviceTensor, DeviceTensor, DeviceTensor, DeviceTensor, AttentionKernels.AttentionShape>(AttentionKernels.Forward));
        long tiles = (long)shape.Batch * shape.Heads * ((shape.QueryLen + AttentionKernels.QueryTile - 1) / AttentionKernels.QueryTile);
        var qt = Arg(q);
        var kt = Arg(k);
        var vt = Arg(v);
        var ot = Arg(output);
        var lt = Arg(lse);
        Run(() => kernel(new KernelConfig((int)tiles, AttentionKernels.QueryTile), qt, kt, vt, ot, lt, shape), "attention");
    }

    public void AttentionBackward(Tensor q, Tensor k, Tensor v, Tensor output, Tensor lse, Tensor dOutput, bool causal, double scale, Tensor dq, Tensor dk, Tensor dv)
    {
        var shape = AttentionShapeOf(q, k, causal, scale);
        if (shape.HeadDim > AttentionKernels.MaxHeadDim)
        {
            Composite.AttentionBackward(new Ops(_device), q, k, v, output, lse, dOutput, causal, scale, dq, dk, dv);
            return;
        }
        long queryRows = (long)shape.Batch * shape.Heads * shape.QueryLen;
        long keyRows = (long)shape.Batch * shape.KvHeads * shape.KeyLen;
        using var delta = new Tensor(_device.Allocator.Allocate(Math.Max(queryRows, 1) * 8), 0, new Shape((int)Math.Max(queryRows, 1)), DType.F64, ownsBuffer: true);
        var qt = Arg(q);
        var kt = Arg(k);
        var vt = Arg(v);
        using var lseF64 = new Tensor(_device.Allocator.Allocate(Math.Max(queryRows, 1) * 8), 0, new Shape((int)Math.Max(queryRows, 1)), DType.F64, ownsBuffer: true);
        var lt = Arg(lseF64);
        var gt = Arg(dOutput);
        var dt = Arg(delta);
        if (queryRows > 0)
        {
            var rowDot = Load("attention_row_dot", a => a.LoadAutoGroupedStreamKernel<Index1D, DeviceTensor, DeviceTensor, DeviceTensor, long, int>(AttentionKernels.RowDot));
            var ot = Arg(output);
            Run(() => Chunked(queryRows, (n, s) => rowDot(n, ot, gt, dt, s, shape.HeadDim)), "attention backward");
            var refine = Load("attention_lse", a => a.LoadAutoGroupedStreamKernel<Index1D, DeviceTensor, DeviceTensor, DeviceTensor, DeviceTensor, long, AttentionKernels.AttentionShape>(AttentionKernels.RefineLse));
            var savedLse = Arg(lse);
            Run(() => Chunked(queryRows, (n, s) => refine(n, qt, kt, savedLse, lt, s, shape)), "attention backward");
            var queryGrad = Load("attention_dq", a => a.LoadAutoGroupedStreamKernel<Index1D, DeviceTensor, DeviceTensor, DeviceTensor, DeviceTensor, DeviceTensor, DeviceTensor, DeviceTensor, long, AttentionKernels.AttentionShape>(AttentionKernels.QueryGrad));
            var dqt = Arg(dq);
            Run(() => Chunked(queryRows, (n, s) => queryGrad(n, qt, kt, vt, lt, gt, dt, dqt, s, shape)), "attention backward");
        }
        if (keyRows > 0)
        {
            var keyGrad = Load("attention_dkv", a => a.LoadAutoGroupedStreamKernel<Index1D, DeviceTensor, DeviceTensor, DeviceTensor, DeviceTensor, DeviceTensor, DeviceTensor, DeviceTensor, DeviceTensor, long, AttentionKernels.AttentionShape>(AttentionKernels.KeyValueGrad));
            var dkt = Arg(dk);
            var dvt = Arg(dv);
            Run(() => Chunked(keyRows, (n, s) => keyGrad(n, qt, kt, vt, lt, gt, dt, dkt, dvt, s, shape)), "attention backward");
        }
    }

    private static AttentionKernels.AttentionShape AttentionShapeOf(Tensor q, Tensor k, bool causal, double scale) => new()
    {
        Batch = q.Shape[0],
        Heads = q.Shape[1],
        KvHeads = k.Shape[1],
        QueryLen = q.Shape[2],
        KeyLen = k.Shape[2],
        HeadDim = q.Shape[3],
        Causal = causal ? 1 : 0,
        Scale = scale,
    };
}
