namespace Hal.Conformance.Kernels.Catalogue;

// Empty extents: zero rows, zero keys or queries, zero ids, zero parameters. Outputs with no elements pass when the
// call does not fail; outputs that still have elements must be written (a norm's dweight over no rows is 0, attention
// over no keys gives output 0 and lse −Inf, the key gradients of no queries are 0). Shapes as in the per-op files.
public static partial class Tier2Cases
{
    private static readonly DType[] EmptyDTypes = [DType.F32, DType.BF16];

    private static IEnumerable<KernelCase> EmptyCases()
    {
        foreach (var dtype in EmptyDTypes)
        {
            bool quick = dtype == DType.F32;
            var cases = new[]
            {
                Both(FusedOp.Softmax, dtype, Dims(0, 7), "empty", quick, "zero rows", ctx => RunSoftmax(ctx, dtype, 0, 7, ValueKind.Normal, log: false)),
                Both(FusedOp.Softmax, dtype, Dims(3, 0), "empty-rows", quick, "rows of length 0", ctx => RunSoftmax(ctx, dtype, 3, 0, ValueKind.Normal, log: false)),
                Both(FusedOp.LogSoftmax, dtype, Dims(0, 7), "empty", quick, "zero rows", ctx => RunSoftmax(ctx, dtype, 0, 7, ValueKind.Normal, log: true)),
                Both(FusedOp.SoftmaxBackward, dtype, Dims(0, 7), "empty", quick, "zero rows", ctx => RunSoftmaxBackward(ctx, dtype, 0, 7, ValueKind.Normal, log: false)),
                Both(FusedOp.LogSoftmaxBackward, dtype, Dims(0, 7), "empty", quick, "zero rows", ctx => RunSoftmaxBackward(ctx, dtype, 0, 7, ValueKind.Normal, log: true)),
                Both(FusedOp.LayerNorm, dtype, Dims(0, 8), "empty", quick, "zero rows", ctx => RunLayerNorm(ctx, dtype, 0, 8, "normal", withBias: true), [DType.F32]),
                Both(FusedOp.LayerNormBackward, dtype, Dims(0, 8), "empty", quick, "zero rows: dweight and dbias are sums over no rows, 0",
                    ctx => RunLayerNormBackward(ctx, dtype, 0, 8, withBias: true), [DType.F32]),
                Both(FusedOp.RmsNorm, dtype, Dims(0, 8), "empty", quick, "zero rows", ctx => RunRmsNorm(ctx, dtype, 0, 8, "normal"), [DType.F32]),
                Both(FusedOp.RmsNormBackward, dtype, Dims(0, 8), "empty", quick, "zero rows: dweight is a sum over no rows, 0",
                    ctx => RunRmsNormBackward(ctx, dtype, 0, 8), [DType.F32]),
                Both(FusedOp.CrossEntropy, dtype, Dims(0, 9), "empty", quick, "zero rows", ctx => RunCrossEntropy(ctx, dtype, DType.I64, 0, 9, ValueKind.Normal), [DType.F32, DType.I64]),
                Both(FusedOp.CrossEntropyBackward, dtype, Dims(0, 9), "empty", quick, "zero rows", ctx => RunCrossEntropyBackward(ctx, dtype, DType.I64, 0, 9), [DType.F32, DType.I64]),
                Both(FusedOp.Embedding, dtype, $"w{Dims(4, 5)} ids{Dims(0)}", "empty", quick, "no ids",
                    ctx => RunEmbedding(ctx, dtype, DType.I64, 4, 5, [0], backward: false), [DType.I64]),
                Both(FusedOp.EmbeddingBackward, dtype, $"w{Dims(4, 5)} ids{Dims(0)}", "empty", quick, "no ids: dweight all 0",
                    ctx => RunEmbedding(ctx, dtype, DType.I64, 4, 5, [0], backward: true), [DType.I64]),
                Both(FusedOp.Rotary, dtype, $"x{Dims(1, 0, 2, 4)} cos{Dims(3, 2)}", "empty", quick, "zero positions", ctx => RunRotary(ctx, dtype, 1, 0, 2, 4, 1, backward: false), [DType.F32]),
                Both(FusedOp.RotaryBackward, dtype, $"x{Dims(1, 0, 2, 4)} cos{Dims(3, 2)}", "empty", quick, "zero positions", ctx => RunRotary(ctx, dtype, 1, 0, 2, 4, 1, backward: true), [DType.F32]),
                Both(FusedOp.ActivationBackward, dtype, Dims(0), "empty", quick, "no elements", ctx => RunActivationBackward(ctx, dtype, UnaryOp.GeluErf, 0, ValueKind.Normal)),
                Both(FusedOp.QuantizeInt8, dtype, Dims(0, 5), "empty", quick, "zero rows", ctx => RunQuantize(ctx, dtype, 0, 5, ValueKind.Normal), [DType.I8, DType.F32]),
                Both(FusedOp.DequantizeInt8, dtype, Dims(0, 5), "empty", quick, "zero rows", ctx => RunDequantize(ctx, dtype, 0, 5), [DType.I8, DType.F32]),
            };
            foreach (var c in cases.SelectMany(c => c))
            {
                yield return c;
            }
            var state = DType.F32;
            foreach (var c in Both(FusedOp.AdamW, dtype, Dims(0), "empty", quick, "no parameters",
                ctx => RunAdam(ctx, dtype, state, [0], new AdamWConfig(1e-2), lamb: false), [state])
                .Concat(Both(FusedOp.Lamb, dtype, Dims(0), "empty", quick, "no parameters",
                    ctx => RunAdam(ctx, dtype, state, [0], new AdamWConfig(1e-2), lamb: true), [state]))
                .Concat(Both(FusedOp.Lars, dtype, Dims(0), "empty", quick, "no parameters",
                    ctx => RunLars(ctx, dtype, state, [0], new LarsConfig(0.1)), [state])))
            {
                yield return c;
            }
            // Attention over no keys (every row masked: output 0, lse −Inf; backward dq 0) and over no queries
            // (backward: dk and dv are sums over no queries, 0).
            foreach (var a in new AttentionConfig[] { new(1, 2, 1, 3, 0, 4, false, 0.5, "no-keys"), new(1, 2, 2, 0, 5, 4, true, 0.5, "no-queries") })
            {
                foreach (var c in Both(FusedOp.Attention, dtype, a.Shape, a.Variant, quick, $"attention with {a.Variant}", ctx => RunAttention(ctx, dtype, a), [DType.F32])
                    .Concat(Both(FusedOp.AttentionBackward, dtype, a.Shape, a.Variant, quick, $"attention gradients with {a.Variant}", ctx => RunAttentionBackward(ctx, dtype, a), [DType.F32])))
                {
                    yield return c;
                }
            }
        }
    }
}
