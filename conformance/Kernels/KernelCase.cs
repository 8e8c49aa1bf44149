namespace Hal.Conformance.Kernels;

/// <summary>
/// One kernel conformance case: an op at one dtype on one input set, checked against the fp64 oracle
/// (a value case), or a bad call that must raise a documented exception (an error case).
/// </summary>
/// <remarks>
/// A value case's <see cref="Run"/> builds its inputs from <see cref="Seed"/> through the context (so that two
/// backends see the same values), runs the op through <see cref="CaseContext.Ops"/>, and returns one
/// <see cref="CaseOutput"/> per output tensor with the oracle's values and the rule they are held to.
/// An error case's <see cref="Run"/> makes the bad call and returns nothing; the runner expects
/// <see cref="Expects"/> (or a subclass) to be thrown.
/// </remarks>
public sealed record KernelCase
{
    /// <summary>Stable, unique id: <c>op/dtype/shape/variant</c>, plus <c>@fused</c> or <c>@composite</c> for tier-2 ops, e.g. <c>softmax/f32/[7,33]/edge@composite</c>.</summary>
    public required string Id { get; init; }

    /// <summary>The op this case checks (a <see cref="KernelNames"/> name): the row of the op × dtype table.</summary>
    public required string Op { get; init; }

    /// <summary>The dtype column; a device that does not declare it reports the case as unsupported.</summary>
    public required DType DType { get; init; }

    /// <summary>Other dtypes the case needs (index tensors, a cast's target, F32 statistics); each must be declared too.</summary>
    public IReadOnlyList<DType> AlsoNeeds { get; init; } = [];

    /// <summary>Shapes as printed in reports, e.g. <c>[7,33]</c> or <c>a[2,1,5] b[3,5]</c>.</summary>
    public required string Shape { get; init; }

    /// <summary>The seed of the case's inputs (printed with every failure so it can be rerun).</summary>
    public ulong Seed { get; init; }

    /// <summary>True when the case belongs to the <c>--quick</c> subset.</summary>
    public bool Quick { get; init; }

    /// <summary>For tier-2 ops: the op, and the path this case asks for (the runner sets <see cref="Ops.ForceComposite"/> for <see cref="KernelPath.Composite"/>).</summary>
    public FusedOp? Fused { get; init; }

    /// <summary>The path asked for (tier-2 cases only).</summary>
    public KernelPath Path { get; init; } = KernelPath.Fused;

    /// <summary>For error cases: the documented exception type the call must raise.</summary>
    public Type? Expects { get; init; }

    /// <summary>What the case does, in one line (shown in the HTML drill-down).</summary>
    public string Description { get; init; } = "";

    /// <summary>Runs the case on a device (see remarks).</summary>
    public required Func<CaseContext, IReadOnlyList<CaseOutput>> Run { get; init; }

    /// <summary>True for an error case.</summary>
    public bool IsErrorCase => Expects is not null;

    /// <inheritdoc/>
    public override string ToString() => Id;
}

/// <summary>
/// One output of a value case: what the device computed and what the oracle computed, element by element
/// (as doubles; integer and bool outputs as their values), and the rule from the tolerance table.
/// </summary>
/// <param name="Name">which output (<c>y</c>, <c>lse</c>, <c>dweight</c>, …).</param>
/// <param name="DType">the output tensor's dtype (its ULPs measure the error).</param>
/// <param name="Actual">the device's values.</param>
/// <param name="Expected">the oracle's exact (fp64) values.</param>
/// <param name="Rule">the tolerance rule (<see cref="ToleranceTable"/>).</param>
/// <param name="Length">the reduction length n that the rule's γ term uses (K of a GEMM, the row length of a norm); 0 when the rule has none.</param>
/// <param name="Scale">per element, the magnitude the rule's γ term multiplies (Σ|a||b| for a GEMM, Σ|x| for a sum); null when the rule has none.</param>
public sealed record CaseOutput(string Name, DType DType, double[] Actual, double[] Expected, ToleranceRule Rule, int Length = 0, double[]? Scale = null);
