namespace Hal.Models.Transformer;

/// <summary>How attention meets a sequence split across ranks.</summary>
public enum SequenceParallelMode
{
    /// <summary>Ring attention: key/value blocks travel around the ranks; tokens are placed zig-zag (T a multiple of 2·sp).</summary>
    Ring,

    /// <summary>All-to-all (Ulysses): q, k, v are re-sharded by heads around the kernel; tokens are contiguous (T and the heads multiples of sp).</summary>
    Ulysses,

    /// <summary>
    /// Megatron sequence parallelism inside the tensor-parallel group (<c>--sp-mode split-gather</c>): between the
    /// tensor-parallel linears each tp rank holds N/tp contiguous rows of the [N, C] residual stream; rows are
    /// all-gathered entering attention and the MLP and reduce-scattered leaving them. Uses no extra ranks.
    /// </summary>
    SplitGather,
}

/// <summary>
/// The sequence-parallel group of a model and how it attends: each rank of <paramref name="Group"/> holds T/sp tokens
/// of every sequence of the batch.
/// </summary>
public sealed record SequenceParallelOptions(ICommunicator Group, SequenceParallelMode Mode)
{
    /// <summary>The name users write for a mode: ring, ulysses, split-gather.</summary>
    public static string ModeName(SequenceParallelMode mode) => mode switch
    {
        SequenceParallelMode.Ring => "ring",
        SequenceParallelMode.Ulysses => "ulysses",
        SequenceParallelMode.SplitGather => "split-gather",
        _ => mode.ToString().ToLowerInvariant(),
    };

    /// <summary>
    /// Why <c>--sp-mode split-gather</c> cannot run with <paramref name="tp"/> tensor-parallel and <paramref name="sp"/>
    /// sequence-parallel ranks, or null when it can. Split-gather splits the sequence over the tp ranks themselves, so
    /// it needs tp ≥ 2 and takes no extra ranks: --sp must be 1 (the default) or equal to --tp (the same ranks).
    /// </summary>
    public static string? SplitGatherProblem(int tp, int sp)
    {
        if (tp < 2)
        {
            return $"--sp-mode split-gather splits the sequence over the tensor-parallel ranks, so it needs --tp 2 or more (got --tp {tp}); give --tp N with N ≥ 2, or --sp-mode ring|ulysses with --sp N";
        }
        if (sp != 1 && sp != tp)
        {
            return $"--sp {sp} with --sp-mode split-gather: the sequence is split over the {tp} tensor-parallel ranks and no extra ranks are used; give --sp 1 (or leave it out) or --sp {tp}";
        }
        return null;
    }

    /// <summary>
    /// Why a model of <paramref name="config"/> cannot split a sequence of <paramref name="time"/> tokens over
    /// <paramref name="sp"/> ranks in <paramref name="mode"/>, or null when it can.
    /// </summary>
    public static string? Problem(ModelConfig config, int sp, SequenceParallelMode mode, int time) => Problem(config, sp, mode, time, tp: 1);

    /// <summary>
    /// Why a model of <paramref name="config"/> split over <paramref name="tp"/> tensor-parallel ranks cannot split a
    /// sequence of <paramref name="time"/> tokens over <paramref name="sp"/> ranks in <paramref name="mode"/>, or null
    /// when it can. Each tp rank attends with its H/tp query and Hkv/tp key/value heads, so Ulysses re-shards those
    /// (the heads themselves must divide by tp: <see cref="TensorParallelLayout.Problem"/> says so first).
    /// </summary>
    public static string? Problem(ModelConfig config, int sp, SequenceParallelMode mode, int time, int tp)
    {
        ArgumentNullException.ThrowIfNull(config);
        if (tp > 1 && sp > 1 && mode == SequenceParallelMode.Ulysses && time % sp == 0 && config.Heads % tp == 0 && config.KvHeads % tp == 0
            && ((config.Heads / tp) % sp != 0 || (config.KvHeads / tp) % sp != 0))
        {
            return $"--tp {tp} --sp {sp} --sp-mode ulysses re-shards each tensor-parallel rank's attention by heads, so its query heads ({config.Heads}/{tp} = {config.Heads / tp}) " +
                $"and key/value heads ({config.KvHeads}/{tp} = {config.KvHeads / tp}) of {config.Name} must be multiples of {sp}; use --sp-mode ring, another --sp, or a smaller --tp";
        }
        if (sp < 1)
        {
            return $"--sp {sp}: the number of sequence-parallel ranks must be at least 1";
        }
        if (sp == 1)
        {
            return null;
        }
        if (mode == SequenceParallelMode.Ring && time % (2 * sp) != 0)
        {
            return $"--seq {time} with --sp {sp} --sp-mode ring: zig-zag placement cuts each sequence into 2·sp = {2 * sp} chunks, so --seq must be a multiple of {2 * sp}";
        }
        if (mode == SequenceParallelMode.Ulysses && time % sp != 0)
        {
            return $"--seq {time} with --sp {sp} --sp-mode ulysses: each rank holds seq/sp tokens, so --seq must be a multiple of {sp}";
        }
        if (mode == SequenceParallelMode.Ulysses && (config.Heads % sp != 0 || config.KvHeads % sp != 0))
        {
            return $"--sp {sp} --sp-mode ulysses re-shards attention by heads, so the query heads ({config.Heads}) and key/value heads ({config.KvHeads}) of {config.Name} must be multiples of {sp}; use --sp-mode ring or another --sp";
        }
        return null;
    }
}
