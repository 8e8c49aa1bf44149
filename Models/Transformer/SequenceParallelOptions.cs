namespace Hal.Models.Transformer;

/// <summary>How attention meets a sequence split across ranks.</summary>
public enum SequenceParallelMode
{
    /// <summary>Ring attention: key/value blocks travel around the ranks; tokens are placed zig-zag (T a multiple of 2·sp).</summary>
    Ring,

    /// <summary>All-to-all (Ulysses): q, k, v are re-sharded by heads around the kernel; tokens are contiguous (T and the heads multiples of sp).</summary>
    Ulysses,
}

/// <summary>
/// The sequence-parallel group of a model and how it attends: each rank of <paramref name="Group"/> holds T/sp tokens
/// of every sequence of the batch.
/// </summary>
public sealed record SequenceParallelOptions(ICommunicator Group, SequenceParallelMode Mode)
{
    /// <summary>
    /// Why a model of <paramref name="config"/> cannot split a sequence of <paramref name="time"/> tokens over
    /// <paramref name="sp"/> ranks in <paramref name="mode"/>, or null when it can.
    /// </summary>
    public static string? Problem(ModelConfig config, int sp, SequenceParallelMode mode, int time)
    {
        ArgumentNullException.ThrowIfNull(config);
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
