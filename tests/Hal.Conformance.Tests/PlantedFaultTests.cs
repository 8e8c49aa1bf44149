using System.Globalization;
using Hal.Backends.Cpu;
using Hal.Conformance.Kernels;
using Xunit.Abstractions;

namespace Hal.Conformance.Tests;

/// <summary>
/// The suite catches bugs: a correct backend with exactly one subtly wrong kernel (<see cref="PlantedFaults"/>)
/// must fail at least one case of that kernel's own op, and every failure must be explained by the fault (the case
/// called the faulty kernel: its own op, or a composite path built on it); no case that did not call it may fail.
/// </summary>
public sealed class PlantedFaultTests(ITestOutputHelper log)
{
    /// <summary>Every planted fault, for the theory.</summary>
    public static TheoryData<PlantedFault> Faults() => new(Enum.GetValues<PlantedFault>());

    /// <summary>
    /// The cases a fault's run covers: the quick subset (every op × dtype, errors included: where a false positive
    /// would show in an unrelated op), every case of the faulty op, the full cases of the ops next to it, and the
    /// composite cases that can reach the faulty kernel (composites are built from tier-1 kernels, so they are
    /// where a tier-1 fault spreads); a fault limited to some dtypes adds only the composites of those dtypes.
    /// </summary>
    public static bool Selected(PlantedFault fault, KernelCase c)
    {
        ArgumentNullException.ThrowIfNull(c);
        if (c.Quick || c.Op == PlantedFaults.KernelOf(fault))
        {
            return true;
        }
        bool composite = c.Path == KernelPath.Composite && c.Fused is not null;
        return fault switch
        {
            PlantedFault.GeluErfAsTanh => c.Op.StartsWith("unary.gelu", StringComparison.Ordinal) || c.Op == KernelNames.Of(FusedOp.ActivationBackward),
            PlantedFault.SoftmaxWithoutMax => c.Op.Contains("softmax", StringComparison.Ordinal) || c.Op.StartsWith("cross_entropy", StringComparison.Ordinal)
                || c.Op.StartsWith("attention", StringComparison.Ordinal),
            PlantedFault.LayerNormUnbiased => c.Op.StartsWith("layer_norm", StringComparison.Ordinal) || c.Op.StartsWith("rms_norm", StringComparison.Ordinal),
            PlantedFault.GemmF16Accumulation => c.DType == DType.F16 && (composite || c.Op.StartsWith("attention", StringComparison.Ordinal)),
            PlantedFault.SumDropsTail => composite || c.Op.StartsWith("reduce.", StringComparison.Ordinal),
            PlantedFault.CastTruncates => composite && (c.DType is DType.F16 or DType.BF16),
            _ => false,
        };
    }

    [Theory]
    [MemberData(nameof(Faults))]
    public void PlantedFaultIsFlaggedOnItsOpAndNowhereElse(PlantedFault fault)
    {
        string target = PlantedFaults.KernelOf(fault);
        using var device = new CpuBackend().Open(0);
        var results = KernelConformance.Run(device, new KernelConformanceOptions
        {
            Filter = c => Selected(fault, c),
            KernelDecorator = inner => PlantedFaults.Wrap(fault, inner),
        });
        // A case that also fails on the correct backend says nothing about the fault (the control test below
        // reports it); every other failure is the fault's doing and must be explained by it.
        var baselineFailures = Baseline.Value.Where(r => r.IsUnexpectedFailure).Select(r => r.Case.Id).ToHashSet();
        var failed = results.Where(r => r.IsUnexpectedFailure && !baselineFailures.Contains(r.Case.Id)).ToList();
        string summary = Summary(fault, results, failed);
        log.WriteLine(summary);
        foreach (var group in results.Where(r => r.Case.Op == target && !r.Case.IsErrorCase).GroupBy(r => r.Case.DType))
        {
            var missed = group.Where(r => !failed.Contains(r)).Select(r => r.Case.Id).ToList();
            log.WriteLine($"  {target}/{group.Key.Name()}: {group.Count() - missed.Count} of {group.Count()} value cases caught it; not: {string.Join(" ", missed.Take(40))}");
        }
        foreach (var group in failed.GroupBy(r => $"{r.Case.Op}/{r.Case.DType.Name()}{(r.Case.Fused is null ? "" : "@" + r.Case.Path.ToString().ToLowerInvariant())}"))
        {
            log.WriteLine($"  failed {group.Key}: {group.Count()} cases, e.g. {group.First().Message}");
        }

        // The fault is seen on its own op.
        Assert.True(failed.Any(r => r.Case.Op == target),
            $"{fault}: no case of {target} failed.\n{summary}\n{ClosestPasses(results, target)}");

        // Every failure called the faulty kernel.
        var unexplained = failed.Where(r => !r.KernelsUsed.Contains(target)).ToList();
        Assert.True(unexplained.Count == 0,
            $"{fault}: {unexplained.Count} failed cases never called {target}:\n{Messages(unexplained)}");

        // A failure of another op is a composite path built on the faulty kernel.
        var elsewhere = failed.Where(r => r.Case.Op != target && r.Case.Path != KernelPath.Composite).ToList();
        Assert.True(elsewhere.Count == 0,
            $"{fault}: {elsewhere.Count} failed cases of other ops that are not @composite cases:\n{Messages(elsewhere)}");
    }

    [Fact]
    public void UnwrappedCpuBackendPassesEveryFaultSelection()
    {
        var results = Baseline.Value;
        var failed = results.Where(r => r.IsUnexpectedFailure).ToList();
        Assert.True(failed.Count == 0, $"{failed.Count} of {results.Count} cases fail without a fault:\n{Messages(failed)}");
        Assert.Contains(results, r => r.Status == CaseStatus.Passed);
    }

    /// <summary>The correct CPU backend on the union of every fault's selection (run once, shared by the tests).</summary>
    private static readonly Lazy<IReadOnlyList<KernelCaseResult>> Baseline = new(() =>
    {
        using var device = new CpuBackend().Open(0);
        var faults = Enum.GetValues<PlantedFault>();
        return KernelConformance.Run(device, new KernelConformanceOptions
        {
            Filter = c => faults.Any(f => Selected(f, c)),
        });
    });

    [Fact]
    public void TruncatingCastRoundsTowardZero()
    {
        // The fault itself must be what it claims, on values whose nearest and truncated results differ.
        using var device = new CpuBackend().Open(0);
        var ops = new Ops(device, PlantedFaults.Wrap(PlantedFault.CastTruncates, device.Kernels));
        double[] values = [1 + 255.0 / 256 * Math.ScaleB(1, -7), -(1 + 255.0 / 256 * Math.ScaleB(1, -7)), 65519, 70000, 0.1];
        using var src = ops.FromArray(values, new Shape(values.Length), DType.F32);
        using var bf16 = ops.Empty(new Shape(values.Length), DType.BF16);
        using var f16 = ops.Empty(new Shape(values.Length), DType.F16);
        ops.Cast(src, bf16);
        ops.Cast(src, f16);
        double[] b = ops.ToDoubleArray(bf16);
        double[] h = ops.ToDoubleArray(f16);
        // BF16 spacing at 1 is 2⁻⁷: 1 + 255·2⁻¹⁵ (just below 1 + 2⁻⁷) truncates to 1, where rounding gives 1 + 2⁻⁷.
        Assert.Equal(1, b[0]);
        Assert.Equal(-1, b[1]);
        // F16: 65519 and 70000 truncate to the largest finite 65504 (rounding gives 65504 and +Inf).
        Assert.Equal(65504, h[2]);
        Assert.Equal(65504, h[3]);
        // 0.1 (F32 0x3DCCCCCD) truncates to F16 0x2E66 = 0.0999755859375 (rounding gives 0x2E66 too) and to BF16
        // 0x3DCC = 0.099609375 (rounding gives 0x3DCD = 0.10009765625).
        Assert.Equal(0.0999755859375, h[4]);
        Assert.Equal(0.099609375, b[4]);
    }

    [Fact]
    public void DroppedTailIsCaughtInALongF32ReductionOfPositiveValues()
    {
        // At n = 4099 the F32 sum bound γ(n)·Σ|x| can hide three dropped normal values (their signs cancel);
        // with positive values the three missing terms exceed it, so the long reductions run on those too.
        using var device = new CpuBackend().Open(0);
        var options = new KernelConformanceOptions
        {
            Filter = c => c.Id == "reduce.sum/f32/[4099]/axis0-positive",
            KernelDecorator = k => PlantedFaults.Wrap(PlantedFault.SumDropsTail, k),
        };
        var results = KernelConformance.Run(device, options);
        var result = Assert.Single(results);
        Assert.Equal(CaseStatus.Failed, result.Status);
        Assert.True(result.Worst!.NormalisedError > 1, result.Message);
    }

    [Fact]
    public void SumWithoutTailIgnoresTheLastLengthMod8Elements()
    {
        // Rows of lengths 7, 8, 9 and 17 of ones, summed along the row: 0, 8, 8 and 16 (the correct sums are the lengths).
        using var device = new CpuBackend().Open(0);
        var ops = new Ops(device, PlantedFaults.Wrap(PlantedFault.SumDropsTail, device.Kernels));
        foreach (int length in new[] { 7, 8, 9, 17 })
        {
            using var x = ops.Full(new Shape(2, length), 1, DType.F32);
            using var y = ops.Empty(new Shape(2, 1), DType.F32);
            ops.Reduce(ReduceOp.Sum, x, 1, y);
            Assert.Equal(length / 8 * 8, ops.ToDoubleArray(y)[1]);
            // Along axis 0 (length 2 < 8) nothing is kept.
            using var z = ops.Empty(new Shape(1, length), DType.F32);
            ops.Reduce(ReduceOp.Sum, x, 0, z);
            Assert.Equal(0, ops.ToDoubleArray(z)[length - 1]);
        }
    }

    [Fact]
    public void GeluErfFaultIsTheTanhApproximation()
    {
        // At x = −2: the erf form gives −0.0455003…, the tanh form −0.0454023… (a difference of ~1e-4, thousands of F32 ULP).
        using var device = new CpuBackend().Open(0);
        var ops = new Ops(device, PlantedFaults.Wrap(PlantedFault.GeluErfAsTanh, device.Kernels));
        using var x = ops.FromArray(new double[] { -2, 1 }, new Shape(2), DType.F64);
        using var y = ops.Empty(new Shape(2), DType.F64);
        ops.Unary(UnaryOp.GeluErf, x, y);
        double[] v = ops.ToDoubleArray(y);
        double tanhForm = -1 * (1 + Math.Tanh(Math.Sqrt(2 / Math.PI) * (-2 - 0.044715 * 8)));
        Assert.Equal(tanhForm, v[0], 15);
        Assert.True(Math.Abs(v[0] - (-0.04550026389635842)) > 5e-5, $"gelu(−2) = {v[0]:R} is the erf form");
        // Other unary ops still go to the correct kernel.
        ops.Unary(UnaryOp.GeluTanh, x, y);
        Assert.Equal(tanhForm, ops.ToDoubleArray(y)[0], 12);
    }

    private static string Messages(IEnumerable<KernelCaseResult> results) =>
        string.Join("\n", results.Take(15).Select(r => $"  [{string.Join(",", r.KernelsUsed)}] {r.Message}"));

    private static string Summary(PlantedFault fault, IReadOnlyList<KernelCaseResult> results, IReadOnlyList<KernelCaseResult> failed) =>
        string.Create(CultureInfo.InvariantCulture,
            $"{fault} ({PlantedFaults.KernelOf(fault)}): {results.Count} cases run, {results.Count(r => r.Status == CaseStatus.Passed)} passed, {failed.Count} failed, {results.Count(r => r.Status == CaseStatus.Unsupported)} unsupported");

    /// <summary>For an uncaught fault: the target's cases that came closest to failing, with their errors vs the allowance.</summary>
    private static string ClosestPasses(IReadOnlyList<KernelCaseResult> results, string target) =>
        $"{results.Count(r => r.Case.Op == target && !r.Case.IsErrorCase)} value cases of {target} ran; the closest to failing:\n  " + string.Join("\n  ", results
            .Where(r => r.Case.Op == target && r.Worst is not null)
            .OrderByDescending(r => r.Worst!.NormalisedError)
            .Take(8)
            .Select(r => string.Create(CultureInfo.InvariantCulture,
                $"{r.Case.Id}: worst {KernelConformance.FormatNorm(r.Worst!.NormalisedError)}× allowed ({KernelConformance.FormatUlps(r.Worst.UlpError)} ULP) at {r.Worst.WorstIndex}: expected {r.Worst.Expected:R}, actual {r.Worst.Actual:R}")));
}
