namespace Hal.Conformance.Kernels;

/// <summary>What became of a case.</summary>
public enum CaseStatus
{
    /// <summary>Every output within its bound, or the error case raised the documented exception.</summary>
    Passed,

    /// <summary>An output out of bounds, or an error case that raised nothing or the wrong exception.</summary>
    Failed,

    /// <summary>The kernel raised where it should have computed, or the case could not finish (timeout).</summary>
    Errored,

    /// <summary>Not applicable to this device, with the reason: a dtype it does not declare, or no fused kernel for a @fused case.</summary>
    Unsupported,

    /// <summary>Failed or errored, and the expectations file says it would, with a reason.</summary>
    ExpectedFailure,

    /// <summary>Passed although the expectations file says it fails: the expectation is stale.</summary>
    UnexpectedPass,
}

/// <summary>The result of one case on one device.</summary>
/// <param name="Case">the case.</param>
/// <param name="Device">the device it ran on (<c>cpu:0</c>).</param>
/// <param name="Status">the verdict.</param>
/// <param name="PathTaken">for tier-2 cases, the path that ran.</param>
/// <param name="Verdicts">one per output (empty for error and unsupported cases).</param>
/// <param name="Message">for anything but a pass: what happened, with the case id, seed, shape, worst element, expected and actual values.</param>
/// <param name="KernelsUsed">the kernels the case called (sorted <see cref="KernelNames"/>).</param>
/// <param name="Seconds">wall time of the case.</param>
/// <param name="ExpectationReason">the reason from the expectations file, when one matched.</param>
/// <param name="Outputs">the outputs themselves, when the run was asked to keep them (for <c>--compare</c>).</param>
public sealed record KernelCaseResult(
    KernelCase Case,
    string Device,
    CaseStatus Status,
    KernelPath? PathTaken,
    IReadOnlyList<OutputVerdict> Verdicts,
    string Message,
    IReadOnlyList<string> KernelsUsed,
    double Seconds,
    string? ExpectationReason = null,
    IReadOnlyList<CaseOutput>? Outputs = null)
{
    /// <summary>The output verdict with the largest normalised error (null when there is none).</summary>
    public OutputVerdict? Worst => Verdicts.Count == 0 ? null : Verdicts.MaxBy(v => double.IsNaN(v.NormalisedError) ? double.PositiveInfinity : v.NormalisedError);

    /// <summary>True when this result makes a run fail (failed or errored without an expectation).</summary>
    public bool IsUnexpectedFailure => Status is CaseStatus.Failed or CaseStatus.Errored;
}
