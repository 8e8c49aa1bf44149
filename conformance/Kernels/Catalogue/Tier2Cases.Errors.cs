namespace Hal.Conformance.Kernels.Catalogue;

// Error cases: bad calls that Ops must reject with the documented exception, before any kernel runs.
// Shapes are printed per case; every tensor is F32 unless the case says otherwise; :foreign marks a tensor on another device.
public static partial class Tier2Cases
{
    private static IEnumerable<KernelCase> Errors() =>
        GemmErrors().Concat(FusedErrors().SelectMany(e =>
            Both(e.Op, e.DType, e.Shape, e.Variant, quick: true, e.Description,
                ctx =>
                {
                    e.Call(ctx);
                    return [];
                },
                e.AlsoNeeds, e.Expects)));

    /// <summary>One bad tier-2 call.</summary>
    private sealed record FusedError(FusedOp Op, DType DType, string Shape, string Variant, Type Expects, string Description, Action<CaseContext> Call, DType[]? AlsoNeeds = null);

    private static Tensor Z(CaseContext ctx, DType dtype, params int[] dims) => ctx.Empty(new Shape(dims), dtype);

    /// <summary>A zero tensor on a second device, not the one under test.</summary>
    private static Tensor Away(CaseContext ctx, DType dtype, params int[] dims)
    {
        var device = ctx.Own(new ForeignDevice());
        return ctx.Own(device.Zeros(new Shape(dims), dtype));
    }

    private static IEnumerable<KernelCase> GemmErrors()
    {
        const DType f = DType.F32;
        var cases = new (string Shape, string Variant, Type Expects, string Description, Action<CaseContext> Call, DType[] Also)[]
        {
            ("a[3,4] b[5,6] c[3,6]", "error-inner", typeof(ShapeMismatchException), "inner dimensions differ (K = 4 vs 5)",
                ctx => ctx.Ops.Gemm(Z(ctx, f, 3, 4), Z(ctx, f, 5, 6), Z(ctx, f, 3, 6)), []),
            ("a[3,4] b[6,5] c[3,6] transB", "error-inner-transposed", typeof(ShapeMismatchException), "transB: b is [N, K] with K = 5 ≠ 4",
                ctx => ctx.Ops.Gemm(Z(ctx, f, 3, 4), Z(ctx, f, 6, 5), Z(ctx, f, 3, 6), transB: true), []),
            ("a[3,4] b[4,6] c[3,7]", "error-output", typeof(ShapeMismatchException), "c is not [M, N]",
                ctx => ctx.Ops.Gemm(Z(ctx, f, 3, 4), Z(ctx, f, 4, 6), Z(ctx, f, 3, 7)), []),
            ("a[3,4] b[4,6] c[3,6] bias[7]", "error-bias", typeof(ShapeMismatchException), "bias is not [N]",
                ctx => ctx.Ops.Gemm(Z(ctx, f, 3, 4), Z(ctx, f, 4, 6), Z(ctx, f, 3, 6), bias: Z(ctx, f, 7)), []),
            ("a[3,4] b[4,6] c[3,6] bias[1,6]", "error-bias-rank", typeof(ShapeMismatchException), "bias is [1, N], not [N]",
                ctx => ctx.Ops.Gemm(Z(ctx, f, 3, 4), Z(ctx, f, 4, 6), Z(ctx, f, 3, 6), bias: Z(ctx, f, 1, 6)), []),
            ("a[2,3,4] b[3,4,6] c[2,3,6]", "error-batch", typeof(ShapeMismatchException), "b's batch (3) is neither 1 nor c's (2)",
                ctx => ctx.Ops.Gemm(Z(ctx, f, 2, 3, 4), Z(ctx, f, 3, 4, 6), Z(ctx, f, 2, 3, 6)), []),
            ("a[4] b[4,6] c[1,6]", "error-rank", typeof(ShapeMismatchException), "a is rank 1",
                ctx => ctx.Ops.Gemm(Z(ctx, f, 4), Z(ctx, f, 4, 6), Z(ctx, f, 1, 6)), []),
            ("a[3,4] b[4,6]:f64 c[3,6]", "error-dtype", typeof(DTypeMismatchException), "a is f32, b f64",
                ctx => ctx.Ops.Gemm(Z(ctx, f, 3, 4), Z(ctx, DType.F64, 4, 6), Z(ctx, f, 3, 6)), [DType.F64]),
            ("a[3,4] b[4,6] c[3,6] bias[6]:f16", "error-bias-dtype", typeof(DTypeMismatchException), "bias f16 with f32 operands",
                ctx => ctx.Ops.Gemm(Z(ctx, f, 3, 4), Z(ctx, f, 4, 6), Z(ctx, f, 3, 6), bias: Z(ctx, DType.F16, 6)), [DType.F16]),
            ("a[3,4] b[4,6]:foreign c[3,6]", "error-foreign-device", typeof(DeviceMismatchException), "b lives on another device",
                ctx => ctx.Ops.Gemm(Z(ctx, f, 3, 4), Away(ctx, f, 4, 6), Z(ctx, f, 3, 6)), []),
            ("a[3,4] b[4,6] c[3,6] bias[6]:foreign", "error-foreign-bias", typeof(DeviceMismatchException), "bias lives on another device",
                ctx => ctx.Ops.Gemm(Z(ctx, f, 3, 4), Z(ctx, f, 4, 6), Z(ctx, f, 3, 6), bias: Away(ctx, f, 6)), []),
            ("a[3,4]:i32 b[4,6]:i32 c[3,6]:i32", "error-integer", typeof(DTypeNotSupportedException), "GEMM needs a floating-point dtype",
                ctx => ctx.Ops.Gemm(Z(ctx, DType.I32, 3, 4), Z(ctx, DType.I32, 4, 6), Z(ctx, DType.I32, 3, 6)), [DType.I32]),
        };
        foreach (var (shape, variant, expects, description, call, also) in cases)
        {
            yield return new KernelCase
            {
                Id = $"{KernelNames.Gemm}/f32/{shape}/{variant}",
                Op = KernelNames.Gemm,
                DType = f,
                AlsoNeeds = also,
                Shape = shape,
                Quick = true,
                Expects = expects,
                Description = $"{description}: {expects.Name}",
                Run = ctx =>
                {
                    call(ctx);
                    return [];
                },
            };
        }
    }

    private static IEnumerable<FusedError> FusedErrors()
    {
        const DType f = DType.F32;
        var shape = typeof(ShapeMismatchException);
        var mismatch = typeof(DTypeMismatchException);
        var notSupported = typeof(DTypeNotSupportedException);
        var range = typeof(ArgumentOutOfRangeException);
        var device = typeof(DeviceMismatchException);

        // A tensor on another device, one per op family (Ops checks every operand's device first).
        yield return new(FusedOp.Softmax, f, "x[3,5] y[3,5]:foreign", "error-foreign-device", device, "y lives on another device", ctx => ctx.Ops.Softmax(Z(ctx, f, 3, 5), Away(ctx, f, 3, 5)));
        yield return new(FusedOp.LayerNorm, f, "x[4,6] rstd[4]:foreign", "error-foreign-device", device, "rstd lives on another device",
            ctx => ctx.Ops.LayerNorm(Z(ctx, f, 4, 6), Z(ctx, f, 6), null, 1e-5, Z(ctx, f, 4, 6), Z(ctx, f, 4), Away(ctx, f, 4)));
        yield return new(FusedOp.CrossEntropy, f, "logits[4,9] targets[4]:foreign", "error-foreign-device", device, "targets live on another device",
            ctx => ctx.Ops.CrossEntropy(Z(ctx, f, 4, 9), Away(ctx, DType.I64, 4), Z(ctx, f, 4), Z(ctx, f, 4)), [DType.I64]);
        yield return new(FusedOp.Embedding, f, "w[10,4]:foreign ids[3]", "error-foreign-device", device, "the table lives on another device",
            ctx => ctx.Ops.Embedding(Away(ctx, f, 10, 4), Z(ctx, DType.I64, 3), Z(ctx, f, 3, 4)), [DType.I64]);
        yield return new(FusedOp.Rotary, f, "x[1,2,1,4] sin[4,2]:foreign", "error-foreign-device", device, "sin lives on another device",
            ctx => ctx.Ops.Rotary(Z(ctx, f, 1, 2, 1, 4), Z(ctx, f, 4, 2), Away(ctx, f, 4, 2), 0, Z(ctx, f, 1, 2, 1, 4)));
        yield return new(FusedOp.AttentionBackward, f, "q[1,2,4,8] dv[1,2,5,8]:foreign", "error-foreign-device", device, "dv lives on another device",
            ctx => ctx.Ops.AttentionBackward(Z(ctx, f, 1, 2, 4, 8), Z(ctx, f, 1, 2, 5, 8), Z(ctx, f, 1, 2, 5, 8), Z(ctx, f, 1, 2, 4, 8), Z(ctx, f, 1, 2, 4),
                Z(ctx, f, 1, 2, 4, 8), false, 1, Z(ctx, f, 1, 2, 4, 8), Z(ctx, f, 1, 2, 5, 8), Away(ctx, f, 1, 2, 5, 8)));
        yield return new(FusedOp.ActivationBackward, f, "x[5] dy[5]:foreign", "error-foreign-device", device, "dy lives on another device",
            ctx => ctx.Ops.ActivationBackward(UnaryOp.Silu, Z(ctx, f, 5), Away(ctx, f, 5), Z(ctx, f, 5)));
        yield return new(FusedOp.AdamW, f, "p[5] v[5]:foreign", "error-foreign-device", device, "v lives on another device",
            ctx => ctx.Ops.AdamW(Z(ctx, f, 5), Z(ctx, f, 5), Z(ctx, f, 5), Away(ctx, f, 5), new AdamWConfig(1e-3), 1));
        yield return new(FusedOp.QuantizeInt8, f, "x[3,4] q[3,4]:foreign", "error-foreign-device", device, "q lives on another device",
            ctx => ctx.Ops.QuantizeInt8(Z(ctx, f, 3, 4), Away(ctx, DType.I8, 3, 4), Z(ctx, f, 3)), [DType.I8]);

        yield return new(FusedOp.Softmax, f, "x[3,5] y[3,6]", "error-shape", shape, "y's shape differs from x's", ctx => ctx.Ops.Softmax(Z(ctx, f, 3, 5), Z(ctx, f, 3, 6)));
        yield return new(FusedOp.Softmax, f, "x[3,5] y[3,5]:f64", "error-dtype", mismatch, "y's dtype differs from x's", ctx => ctx.Ops.Softmax(Z(ctx, f, 3, 5), Z(ctx, DType.F64, 3, 5)), [DType.F64]);
        yield return new(FusedOp.Softmax, DType.I32, "x[3,5]:i32", "error-integer", notSupported, "integer input", ctx => ctx.Ops.Softmax(Z(ctx, DType.I32, 3, 5), Z(ctx, DType.I32, 3, 5)));
        yield return new(FusedOp.SoftmaxBackward, f, "y[3,5] dy[3,4]", "error-shape", shape, "dy's shape differs from y's", ctx => ctx.Ops.SoftmaxBackward(Z(ctx, f, 3, 5), Z(ctx, f, 3, 4), Z(ctx, f, 3, 5)));
        yield return new(FusedOp.LogSoftmax, f, "x[3,5] y[5,3]", "error-shape", shape, "y's shape differs from x's", ctx => ctx.Ops.LogSoftmax(Z(ctx, f, 3, 5), Z(ctx, f, 5, 3)));
        yield return new(FusedOp.LogSoftmaxBackward, f, "y[3,5] dx[3,5]:f16", "error-dtype", mismatch, "dx's dtype differs", ctx => ctx.Ops.LogSoftmaxBackward(Z(ctx, f, 3, 5), Z(ctx, f, 3, 5), Z(ctx, DType.F16, 3, 5)), [DType.F16]);

        yield return new(FusedOp.LayerNorm, f, "x[4,6] w[7]", "error-weight", shape, "weight is not [C]",
            ctx => ctx.Ops.LayerNorm(Z(ctx, f, 4, 6), Z(ctx, f, 7), null, 1e-5, Z(ctx, f, 4, 6), Z(ctx, f, 4), Z(ctx, f, 4)));
        yield return new(FusedOp.LayerNorm, f, "x[4,6] b[6]:f64", "error-bias-dtype", mismatch, "bias's dtype differs from x's",
            ctx => ctx.Ops.LayerNorm(Z(ctx, f, 4, 6), Z(ctx, f, 6), Z(ctx, DType.F64, 6), 1e-5, Z(ctx, f, 4, 6), Z(ctx, f, 4), Z(ctx, f, 4)), [DType.F64]);
        yield return new(FusedOp.LayerNorm, DType.F64, "x[4,6]:f64 mean[4]:f64", "error-stat-dtype", notSupported, "mean must be F32 whatever x's dtype",
            ctx => ctx.Ops.LayerNorm(Z(ctx, DType.F64, 4, 6), Z(ctx, DType.F64, 6), null, 1e-5, Z(ctx, DType.F64, 4, 6), Z(ctx, DType.F64, 4), Z(ctx, f, 4)), [DType.F32]);
        yield return new(FusedOp.LayerNorm, f, "x[4,6] rstd[5]", "error-stat-shape", shape, "rstd has 5 elements for 4 rows",
            ctx => ctx.Ops.LayerNorm(Z(ctx, f, 4, 6), Z(ctx, f, 6), null, 1e-5, Z(ctx, f, 4, 6), Z(ctx, f, 4), Z(ctx, f, 5)));
        yield return new(FusedOp.LayerNormBackward, f, "x[4,6] dweight[5]", "error-dweight", shape, "dweight is not [C]",
            ctx => ctx.Ops.LayerNormBackward(Z(ctx, f, 4, 6), Z(ctx, f, 4, 6), Z(ctx, f, 6), Z(ctx, f, 4), Z(ctx, f, 4), Z(ctx, f, 4, 6), Z(ctx, f, 5), null));
        yield return new(FusedOp.LayerNormBackward, DType.F16, "x[4,6]:f16 rstd[4]:f16", "error-stat-dtype", notSupported, "rstd must be F32",
            ctx => ctx.Ops.LayerNormBackward(Z(ctx, DType.F16, 4, 6), Z(ctx, DType.F16, 4, 6), Z(ctx, DType.F16, 6), Z(ctx, f, 4), Z(ctx, DType.F16, 4), Z(ctx, DType.F16, 4, 6), Z(ctx, DType.F16, 6), null), [DType.F32]);
        yield return new(FusedOp.RmsNorm, f, "x[4,6] rstd[4]:f64", "error-stat-dtype", notSupported, "rstd must be F32",
            ctx => ctx.Ops.RmsNorm(Z(ctx, f, 4, 6), Z(ctx, f, 6), 1e-5, Z(ctx, f, 4, 6), Z(ctx, DType.F64, 4)), [DType.F64]);
        yield return new(FusedOp.RmsNorm, f, "x[4,6] w[4]", "error-weight", shape, "weight is not [C]",
            ctx => ctx.Ops.RmsNorm(Z(ctx, f, 4, 6), Z(ctx, f, 4), 1e-5, Z(ctx, f, 4, 6), Z(ctx, f, 4)));
        yield return new(FusedOp.RmsNormBackward, f, "x[4,6] dx[4,5]", "error-shape", shape, "dx's shape differs from x's",
            ctx => ctx.Ops.RmsNormBackward(Z(ctx, f, 4, 6), Z(ctx, f, 4, 6), Z(ctx, f, 6), Z(ctx, f, 4), Z(ctx, f, 4, 5), Z(ctx, f, 6)));

        yield return new(FusedOp.CrossEntropy, f, "logits[4,9] targets[4]:f32", "error-index-dtype", notSupported, "targets must be I32/I64",
            ctx => ctx.Ops.CrossEntropy(Z(ctx, f, 4, 9), Z(ctx, f, 4), Z(ctx, f, 4), Z(ctx, f, 4)));
        yield return new(FusedOp.CrossEntropy, f, "logits[4,9] targets[5]", "error-targets", shape, "5 targets for 4 rows",
            ctx => ctx.Ops.CrossEntropy(Z(ctx, f, 4, 9), Z(ctx, DType.I64, 5), Z(ctx, f, 4), Z(ctx, f, 4)), [DType.I64]);
        yield return new(FusedOp.CrossEntropy, f, "logits[4,0]", "error-empty-vocab", shape, "the vocabulary axis is empty",
            ctx => ctx.Ops.CrossEntropy(Z(ctx, f, 4, 0), Z(ctx, DType.I64, 4), Z(ctx, f, 4), Z(ctx, f, 4)), [DType.I64]);
        yield return new(FusedOp.CrossEntropy, DType.F16, "logits[4,9]:f16 losses[4]:f16", "error-stat-dtype", notSupported, "losses must be F32",
            ctx => ctx.Ops.CrossEntropy(Z(ctx, DType.F16, 4, 9), Z(ctx, DType.I32, 4), Z(ctx, DType.F16, 4), Z(ctx, f, 4)), [DType.I32, DType.F32]);
        yield return new(FusedOp.CrossEntropyBackward, f, "logits[4,9] dlogits[4,8]", "error-shape", shape, "dlogits' shape differs from logits'",
            ctx => ctx.Ops.CrossEntropyBackward(Z(ctx, f, 4, 9), Z(ctx, DType.I64, 4), Z(ctx, f, 4), Z(ctx, f, 4), Z(ctx, f, 4, 8)), [DType.I64]);

        yield return new(FusedOp.Embedding, f, "w[10,4] ids[3]:f32", "error-index-dtype", notSupported, "ids must be I32/I64",
            ctx => ctx.Ops.Embedding(Z(ctx, f, 10, 4), Z(ctx, f, 3), Z(ctx, f, 3, 4)));
        yield return new(FusedOp.Embedding, f, "w[10,4] ids[3] y[3,5]", "error-shape", shape, "y is not [N, C]",
            ctx => ctx.Ops.Embedding(Z(ctx, f, 10, 4), Z(ctx, DType.I64, 3), Z(ctx, f, 3, 5)), [DType.I64]);
        yield return new(FusedOp.Embedding, f, "w[2,5,4] ids[3]", "error-table-rank", shape, "the table is not [V, C]",
            ctx => ctx.Ops.Embedding(Z(ctx, f, 2, 5, 4), Z(ctx, DType.I64, 3), Z(ctx, f, 3, 4)), [DType.I64]);
        yield return new(FusedOp.EmbeddingBackward, f, "dw[10,4] ids[3] dy[3,4]:f64", "error-dtype", mismatch, "dy's dtype differs from dweight's",
            ctx => ctx.Ops.EmbeddingBackward(Z(ctx, DType.F64, 3, 4), Z(ctx, DType.I32, 3), Z(ctx, f, 10, 4)), [DType.I32, DType.F64]);

        yield return new(FusedOp.Rotary, f, "x[1,2,1,5]", "error-odd-head", shape, "D is odd",
            ctx => ctx.Ops.Rotary(Z(ctx, f, 1, 2, 1, 5), Z(ctx, f, 4, 2), Z(ctx, f, 4, 2), 0, Z(ctx, f, 1, 2, 1, 5)));
        yield return new(FusedOp.Rotary, DType.F64, "x[1,2,1,4]:f64 cos[4,2]:f64", "error-table-dtype", notSupported, "cos/sin must be F32",
            ctx => ctx.Ops.Rotary(Z(ctx, DType.F64, 1, 2, 1, 4), Z(ctx, DType.F64, 4, 2), Z(ctx, DType.F64, 4, 2), 0, Z(ctx, DType.F64, 1, 2, 1, 4)));
        yield return new(FusedOp.Rotary, f, "x[1,3,1,4] cos[4,2] offset 2", "error-positions", shape, "positions 2..4 need 5 cos/sin rows",
            ctx => ctx.Ops.Rotary(Z(ctx, f, 1, 3, 1, 4), Z(ctx, f, 4, 2), Z(ctx, f, 4, 2), 2, Z(ctx, f, 1, 3, 1, 4)));
        yield return new(FusedOp.Rotary, f, "x[1,2,1,4] offset -1", "error-negative-offset", range, "a negative position offset",
            ctx => ctx.Ops.Rotary(Z(ctx, f, 1, 2, 1, 4), Z(ctx, f, 4, 2), Z(ctx, f, 4, 2), -1, Z(ctx, f, 1, 2, 1, 4)));
        yield return new(FusedOp.RotaryBackward, f, "dy[2,1,4]", "error-rank", shape, "dy is not [B, T, H, D]",
            ctx => ctx.Ops.RotaryBackward(Z(ctx, f, 2, 1, 4), Z(ctx, f, 4, 2), Z(ctx, f, 4, 2), 0, Z(ctx, f, 2, 1, 4)));

        yield return new(FusedOp.Attention, f, "q[1,3,4,8] kv[1,2,5,8]", "error-heads", shape, "3 query heads are not a multiple of 2 key/value heads",
            ctx => ctx.Ops.Attention(Z(ctx, f, 1, 3, 4, 8), Z(ctx, f, 1, 2, 5, 8), Z(ctx, f, 1, 2, 5, 8), false, 1, Z(ctx, f, 1, 3, 4, 8), Z(ctx, f, 1, 3, 4)));
        yield return new(FusedOp.Attention, f, "q[1,2,4,8] kv[1,2,5,7]", "error-head-size", shape, "k's head size differs from q's",
            ctx => ctx.Ops.Attention(Z(ctx, f, 1, 2, 4, 8), Z(ctx, f, 1, 2, 5, 7), Z(ctx, f, 1, 2, 5, 7), false, 1, Z(ctx, f, 1, 2, 4, 8), Z(ctx, f, 1, 2, 4)));
        yield return new(FusedOp.Attention, DType.F16, "q[1,2,4,8]:f16 lse[1,2,4]:f16", "error-lse-dtype", notSupported, "lse must be F32",
            ctx => ctx.Ops.Attention(Z(ctx, DType.F16, 1, 2, 4, 8), Z(ctx, DType.F16, 1, 2, 5, 8), Z(ctx, DType.F16, 1, 2, 5, 8), false, 1, Z(ctx, DType.F16, 1, 2, 4, 8), Z(ctx, DType.F16, 1, 2, 4)));
        yield return new(FusedOp.Attention, f, "q[1,2,4,8] lse[1,2,5]", "error-lse-shape", shape, "lse is not [B, H, Tq]",
            ctx => ctx.Ops.Attention(Z(ctx, f, 1, 2, 4, 8), Z(ctx, f, 1, 2, 5, 8), Z(ctx, f, 1, 2, 5, 8), false, 1, Z(ctx, f, 1, 2, 4, 8), Z(ctx, f, 1, 2, 5)));
        yield return new(FusedOp.Attention, f, "q[1,2,4,8] k[1,2,5,8]:f64", "error-dtype", mismatch, "k's dtype differs from q's",
            ctx => ctx.Ops.Attention(Z(ctx, f, 1, 2, 4, 8), Z(ctx, DType.F64, 1, 2, 5, 8), Z(ctx, f, 1, 2, 5, 8), false, 1, Z(ctx, f, 1, 2, 4, 8), Z(ctx, f, 1, 2, 4)), [DType.F64]);
        yield return new(FusedOp.AttentionBackward, f, "q[1,2,4,8] kv[1,1,5,8] dk[1,2,5,8]", "error-dk", shape, "dk is not shaped like k",
            ctx => ctx.Ops.AttentionBackward(Z(ctx, f, 1, 2, 4, 8), Z(ctx, f, 1, 1, 5, 8), Z(ctx, f, 1, 1, 5, 8), Z(ctx, f, 1, 2, 4, 8), Z(ctx, f, 1, 2, 4),
                Z(ctx, f, 1, 2, 4, 8), false, 1, Z(ctx, f, 1, 2, 4, 8), Z(ctx, f, 1, 2, 5, 8), Z(ctx, f, 1, 1, 5, 8)));

        yield return new(FusedOp.ActivationBackward, f, "x[5]", "error-op", range, "Exp has no activation backward",
            ctx => ctx.Ops.ActivationBackward(UnaryOp.Exp, Z(ctx, f, 5), Z(ctx, f, 5), Z(ctx, f, 5)));
        yield return new(FusedOp.ActivationBackward, f, "x[5] dy[6]", "error-shape", shape, "dy's shape differs from x's",
            ctx => ctx.Ops.ActivationBackward(UnaryOp.Relu, Z(ctx, f, 5), Z(ctx, f, 6), Z(ctx, f, 5)));

        yield return new(FusedOp.AdamW, DType.F16, "p[5]:f16 m[5]:f16", "error-state-dtype", notSupported, "states must be F32 (F64 only for F64 params)",
            ctx => ctx.Ops.AdamW(Z(ctx, DType.F16, 5), Z(ctx, DType.F16, 5), Z(ctx, DType.F16, 5), Z(ctx, f, 5), new AdamWConfig(1e-3), 1), [DType.F32]);
        yield return new(FusedOp.AdamW, f, "p[5] g[6]", "error-grad", shape, "grad's shape differs from param's",
            ctx => ctx.Ops.AdamW(Z(ctx, f, 5), Z(ctx, f, 6), Z(ctx, f, 5), Z(ctx, f, 5), new AdamWConfig(1e-3), 1));
        yield return new(FusedOp.AdamW, f, "p[5] step 0", "error-step", range, "step must be ≥ 1",
            ctx => ctx.Ops.AdamW(Z(ctx, f, 5), Z(ctx, f, 5), Z(ctx, f, 5), Z(ctx, f, 5), new AdamWConfig(1e-3), 0));
        yield return new(FusedOp.Lamb, f, "p[5] v[5]:f64", "error-state-dtype", notSupported, "F64 states need F64 params",
            ctx => ctx.Ops.Lamb(Z(ctx, f, 5), Z(ctx, f, 5), Z(ctx, f, 5), Z(ctx, DType.F64, 5), new AdamWConfig(1e-3), 1), [DType.F64]);
        yield return new(FusedOp.Lars, f, "p[5] buf[4]", "error-buffer", shape, "the buffer's shape differs from param's",
            ctx => ctx.Ops.Lars(Z(ctx, f, 5), Z(ctx, f, 5), Z(ctx, f, 4), new LarsConfig(0.1)));
        yield return new(FusedOp.Lars, f, "p[5] g[5]:f64", "error-grad-dtype", mismatch, "grad's dtype differs from param's",
            ctx => ctx.Ops.Lars(Z(ctx, f, 5), Z(ctx, DType.F64, 5), Z(ctx, f, 5), new LarsConfig(0.1)), [DType.F64]);

        yield return new(FusedOp.QuantizeInt8, f, "x[3,4] q[3,4]:i32", "error-q-dtype", notSupported, "q must be I8",
            ctx => ctx.Ops.QuantizeInt8(Z(ctx, f, 3, 4), Z(ctx, DType.I32, 3, 4), Z(ctx, f, 3)), [DType.I32]);
        yield return new(FusedOp.QuantizeInt8, f, "x[3,4] scale[4]", "error-scale", shape, "scale has 4 elements for 3 rows",
            ctx => ctx.Ops.QuantizeInt8(Z(ctx, f, 3, 4), Z(ctx, DType.I8, 3, 4), Z(ctx, f, 4)), [DType.I8]);
        yield return new(FusedOp.DequantizeInt8, f, "q[3,4]:f32 y[3,4]", "error-q-dtype", notSupported, "q must be I8",
            ctx => ctx.Ops.DequantizeInt8(Z(ctx, f, 3, 4), Z(ctx, f, 3), Z(ctx, f, 3, 4)));
        yield return new(FusedOp.DequantizeInt8, f, "q[3,4] y[3,4]:i32", "error-integer-output", notSupported, "y must be a float dtype",
            ctx => ctx.Ops.DequantizeInt8(Z(ctx, DType.I8, 3, 4), Z(ctx, f, 3), Z(ctx, DType.I32, 3, 4)), [DType.I8, DType.I32]);
    }
}
