using Hal.Backends.Cpu;
using Hal.Conformance.Kernels;

namespace Hal.Conformance.Tests;

/// <summary>Backend comparison: divergence in allowed-error units and ULPs, cases one side cannot run, and a real cpu-vs-vendor run.</summary>
public sealed class ComparisonTests
{
    private static KernelCaseResult Result(string device, CaseStatus status, double[] actual, double[] expected, string op = "binary.add")
    {
        var c = ReportFixtures.Case($"{op}/f32/[3]/x", op, DType.F32);
        var output = new CaseOutput("y", DType.F32, actual, expected, ToleranceTable.For(op));
        var verdict = OutputCheck.Check(output);
        return new KernelCaseResult(c, device, status, null, [verdict], "", [], 0, Outputs: status == CaseStatus.Unsupported ? null : [output]);
    }

    [Fact]
    public void OneUlpApartUnderAHalfUlpRuleIsTwiceTheAllowedError()
    {
        double ulp = Math.ScaleB(1, -22); // spacing of F32 at 2
        var a = Result("cpu:0", CaseStatus.Passed, [1, 2, -0.5], [1, 2, -0.5]);
        var b = Result("vendor:0", CaseStatus.Failed, [1, 2 + ulp, -0.5], [1, 2, -0.5]);
        var d = KernelComparison.Measure(a, b);
        Assert.Null(d.NotCompared);
        Assert.Equal(2, d.Normalised, 12); // |a − b| = 1 ULP, allowed 0.5 ULP (binary.add row)
        Assert.Equal(1, d.Ulps, 12);
        Assert.Equal("y", d.Output);
        Assert.Equal(1, d.WorstIndex);
    }

    [Fact]
    public void ANanOnOneSideIsAnInfiniteDivergenceAndNanOnBothIsNone()
    {
        var a = Result("cpu:0", CaseStatus.Passed, [double.NaN, 1], [double.NaN, 1]);
        Assert.Equal(0, KernelComparison.Measure(a, Result("v:0", CaseStatus.Passed, [double.NaN, 1], [double.NaN, 1])).Normalised);
        Assert.Equal(double.PositiveInfinity, KernelComparison.Measure(a, Result("v:0", CaseStatus.Failed, [0, 1], [double.NaN, 1])).Normalised);
    }

    [Fact]
    public void ACaseOneBackendCannotRunIsListedWithWhy()
    {
        var a = Result("cpu:0", CaseStatus.Passed, [1], [1]);
        var b = Result("vendor:0", CaseStatus.Unsupported, [1], [1]) with { Message = "the device does not declare f32" };
        var d = KernelComparison.Measure(a, b);
        Assert.Equal("vendor:0 cannot run it: the device does not declare f32", d.NotCompared);
        Assert.True(double.IsNaN(d.Normalised));
        var op = Assert.Single(KernelComparison.ByOp([d]));
        Assert.Equal(0, op.Compared);
        Assert.Single(op.NotCompared);
        Assert.Null(op.Worst);
    }

    [Fact]
    public void CpuAndTheVendorSampleAgreeWithinTheTableOnTheQuickCases()
    {
        using var cpu = new CpuBackend().Open(0);
        using var vendor = VendorKernelConformanceTests.LoadVendorBackend(VendorKernelConformanceTests.VendorPluginPath).Open(0);
        var cases = KernelComparison.Run(cpu, vendor, new KernelConformanceOptions { Quick = true });
        Assert.NotEmpty(cases);
        Assert.All(cases, c => Assert.Equal(c.First.Case.Seed, c.Second.Case.Seed));
        var compared = cases.Where(c => c.NotCompared is null).ToList();
        Assert.NotEmpty(compared);
        // Each backend is within its bound of the oracle (normalised ≤ 1), so two of them are at most 2 apart.
        Assert.All(compared, c => Assert.True(c.Normalised <= 2, $"{c.Case.Id}: divergence {c.Normalised} at {c.Output}[{c.WorstIndex}]"));
        Assert.All(cases.Where(c => c.NotCompared is not null), c => Assert.True(c.Case.IsErrorCase || c.NotCompared!.Contains("cannot run", StringComparison.Ordinal), c.NotCompared));
    }
}
