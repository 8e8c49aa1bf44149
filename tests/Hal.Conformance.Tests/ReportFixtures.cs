using Hal.Conformance.Kernels;
using Hal.Conformance.Reports;

namespace Hal.Conformance.Tests;

/// <summary>Hand-made results covering every status, for the report writers' tests.</summary>
internal static class ReportFixtures
{
    /// <summary>Text that must come out escaped in every format: markup, quotes, an ampersand, a control character.</summary>
    public const string Hostile = "<script>alert('x')</script> & \"q\" \u0001 [red]";

    public static KernelCase Case(string id, string op, DType dtype, FusedOp? fused = null, KernelPath path = KernelPath.Fused, Type? expects = null) => new()
    {
        Id = id,
        Op = op,
        DType = dtype,
        Shape = "[3]",
        Seed = 12345678901234567890UL,
        Fused = fused,
        Path = path,
        Expects = expects,
        Description = "a hand-made case",
        Run = _ => [],
    };

    public static OutputVerdict Verdict(bool passed, double ulps, double norm) =>
        new("y", passed, 2, 1.5, passed ? 1.5 : 1.75, norm, ulps, 0.25, passed ? 0 : 1, 3);

    /// <summary>One result of each status on cpu:0, and an unavailable backend.</summary>
    public static IReadOnlyList<BackendRun> Runs()
    {
        var results = new List<KernelCaseResult>
        {
            new(Case("unary.exp/f32/[3]/normal", "unary.exp", DType.F32), "cpu:0", CaseStatus.Passed, null, [Verdict(true, 0.75, 0.25)], "", ["unary.exp"], 0.001),
            new(Case("unary.exp/f32/[3]/edge", "unary.exp", DType.F32), "cpu:0", CaseStatus.Failed, null, [Verdict(false, 16, 5.3)],
                "case unary.exp/f32/[3]/edge, seed 1, shape [3]: output y[2]: expected 1.5, actual 1.75 " + Hostile, ["unary.exp"], 0.002),
            new(Case("unary.exp/i32/[3]/bad", "unary.exp", DType.I32, expects: typeof(DTypeNotSupportedException)), "cpu:0", CaseStatus.Errored, null, [],
                "raised InvalidOperationException: boom", [], 0.003),
            new(Case("softmax/f16/[3]/normal@fused", "softmax", DType.F16, FusedOp.Softmax), "cpu:0", CaseStatus.Unsupported, KernelPath.Composite, [],
                "no fused softmax kernel at F16: the composite fallback serves it", [], 0),
            new(Case("softmax/f16/[3]/normal@composite", "softmax", DType.F16, FusedOp.Softmax, KernelPath.Composite), "cpu:0", CaseStatus.ExpectedFailure, KernelPath.Composite,
                [Verdict(false, double.PositiveInfinity, double.NaN)], "softmax went wrong", ["reduce.max"], 0.004, "known gap " + Hostile),
            new(Case("gemm/f32/[3]/normal", "gemm", DType.F32), "cpu:0", CaseStatus.UnexpectedPass, null, [Verdict(true, 0.5, 0.125)],
                "passed, but the expectations mark it as failing (stale); remove the entry 'gemm/*'", ["gemm"], 0.005, "stale"),
            new(Case("unary.exp/u8/[3]/normal", "unary.exp", DType.U8), "cpu:0", CaseStatus.Unsupported, null, [], "the device does not declare u8", [], 0),
        };
        return [BackendRun.Ran("cpu", "cpu:0", results), BackendRun.Unavailable("absent", "no absent accelerator " + Hostile)];
    }
}
