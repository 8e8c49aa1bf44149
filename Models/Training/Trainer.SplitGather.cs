using Hal.Models.Transformer;

namespace Hal.Models.Training;

// Legend: p tp ranks, N = (B/dp/grad-accum)·T tokens of one rank's micro-batch.

public static partial class Trainer
{
    /// <summary>
    /// <c>--sp-mode split-gather</c> splits every micro-batch's N tokens over the tp ranks themselves: it needs tp ≥ 2,
    /// takes no extra ranks (--sp 1, or --sp equal to --tp naming the same ranks, which becomes sp 1 here), and N
    /// divisible by tp. Other modes pass through unchanged.
    /// </summary>
    /// <exception cref="TrainConfigException">a combination split-gather cannot run, saying what to give.</exception>
    private static TrainConfig ResolveSplitGather(TrainConfig config)
    {
        if (config.SpMode != SequenceParallelMode.SplitGather)
        {
            return config;
        }
        if (SequenceParallelOptions.SplitGatherProblem(config.Tp, config.Sp) is { } problem)
        {
            throw new TrainConfigException(problem);
        }
        if (config.Pp > 1 || config.Zero >= 1)
        {
            string what = config.Pp > 1 ? $"--pp {config.Pp}" : $"--zero {config.Zero}";
            throw new TrainConfigException($"--sp-mode split-gather and {what} do not run together yet; use split-gather with --pp 1 and --zero 0, or plain --tp with {what}");
        }
        long split = (long)config.Dp * config.GradAccum;
        if (split > 0 && config.Batch > 0 && config.Batch % split == 0 && config.Seq > 0)
        {
            long tokens = config.Batch / split * config.Seq;
            if (tokens % config.Tp != 0)
            {
                throw new TrainConfigException(
                    $"--sp-mode split-gather splits each micro-batch's (batch/dp/grad-accum)·seq = {tokens} tokens over --tp {config.Tp} ranks: give a --batch or --seq that makes it a multiple of {config.Tp}");
            }
        }
        return config with { Sp = 1 };
    }
}
