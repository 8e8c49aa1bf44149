namespace Hal.Models.Transformer;

// Legend: tp tensor-parallel ranks, sp sequence-parallel ranks, H query heads, Hkv key/value heads.

public sealed partial class TransformerModel
{
    /// <summary>
    /// What <see cref="TransformerOptions.SequenceParallel"/> (ring or Ulysses over extra ranks) combines with: a 1-D
    /// tensor-parallel group (each tp rank attends with its H/tp and Hkv/tp heads over the sp group; Ulysses needs those
    /// divisible by sp), not a chunked backing, not split-gather regions (those split the sequence over tp itself).
    /// </summary>
    /// <exception cref="ArgumentException">a combination that cannot run, saying which.</exception>
    private void CheckSequenceParallelOptions(ModelConfig config)
    {
        if (Options.SequenceParallel is not { } sp)
        {
            return;
        }
        if (Options.Backing is not null)
        {
            throw new ArgumentException("sequence parallelism with a chunked parameter backing (ZeRO 2/3, offload) does not run together yet", "options");
        }
        if (Options.SequenceParallelRegions)
        {
            throw new ArgumentException("sequence parallelism over extra ranks (ring, Ulysses) and split-gather regions inside the tensor-parallel group do not run together", "options");
        }
        int tp = Options.TensorParallel?.Size ?? 1;
        if (sp.Mode == SequenceParallelMode.Ulysses
            && SequenceParallelOptions.Problem(config, sp.Group.Size, sp.Mode, sp.Group.Size, tp) is { } headProblem)
        {
            throw new ArgumentException(headProblem, "options");
        }
    }
}
