using System.Globalization;
using Hal.Models.Training;
using Hal.Models.Zero;

namespace Hal.Cli.Bench;

/// <summary>One engine variant of <c>hal bench step</c>: its name in <c>runs[]</c>, the ZeRO stage and the placement.</summary>
/// <param name="Name"><c>zero2</c>/<c>zero3</c> for everything on the device, else <c>offload-</c> and the <c>--offload</c> value.</param>
/// <param name="Stage">2 or 3.</param>
/// <param name="Offload">The placement.</param>
internal sealed record EngineVariant(string Name, int Stage, OffloadSpec Offload);

// The variants that run the steps through the chunked ZeRO engine, and the device budget of the auto policy.
internal static partial class StepBench
{
    /// <summary>Bytes of model state per parameter under AdamW: fp32 master (or the parameter), gradient and two moments.</summary>
    public const long ModelStateBytesPerParameter = 16;

    /// <summary>
    /// The engine variants after the baseline, in order: <c>zero{stage}</c> (everything on the device) when
    /// <see cref="StepBenchSpec.Zero"/> is 2 or 3 or <c>--offload none</c> was given; <c>zero3</c> when auto is asked
    /// for and it is not there yet (its peak is the reference of the auto budget); then each other offload, once.
    /// The stage is max(2, Zero), as <c>hal train</c> chooses it.
    /// </summary>
    internal static IReadOnlyList<EngineVariant> EngineVariants(StepBenchSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        int stage = Math.Max(2, spec.Zero);
        var offloads = spec.Offloads ?? [];
        var variants = new List<EngineVariant>();
        if (spec.Zero >= 2 || offloads.Any(o => o.Policy == OffloadPolicy.None))
        {
            variants.Add(new EngineVariant($"zero{stage}", stage, OffloadSpec.None));
        }
        if (offloads.Any(o => o.Policy == OffloadPolicy.Auto))
        {
            variants.Add(new EngineVariant($"offload-{AutoReference}", 3, AutoReference));
        }
        foreach (var offload in offloads.Where(o => o.Policy != OffloadPolicy.None && o != AutoReference).Distinct())
        {
            variants.Add(new EngineVariant($"offload-{offload}", stage, offload));
        }
        return variants;
    }

    /// <summary>The variant whose peak the auto budget starts from: stage 3, everything on the device.</summary>
    /// <summary>
    /// The auto variant's reference: stage 3 with every state on the device but the placement machinery of offload on
    /// (vocabulary tiles, so no [B·T, V] logits): its peak less half the states is a budget that sends about half off.
    /// </summary>
    internal static readonly OffloadSpec AutoReference = new(OffloadPolicy.Static, 0, 0);

    internal static bool IsAutoReference(EngineVariant variant) => variant.Stage == 3 && variant.Offload == AutoReference;

    /// <summary>What the engine cannot run, refused before any work.</summary>
    /// <exception cref="UsageException">a stage other than 0, 2 or 3; fp16 with engine variants; auto without a warm-up step.</exception>
    private static void ValidateVariants(StepBenchSpec spec)
    {
        if (spec.Zero is not (0 or 2 or 3))
        {
            throw new UsageException($"--zero {spec.Zero}: give 0 (the baseline only), 2 or 3 (ZeRO-1 on one device is the baseline)");
        }
        if (EngineVariants(spec).Count == 0)
        {
            return;
        }
        if (spec.Precision == Precision.Fp16)
        {
            throw new UsageException("--zero 2|3 and --offload compute in fp32 or bf16; use --precision fp32 or bf16");
        }
        if (spec.WarmupSteps < 1 && EngineVariants(spec).Any(v => v.Offload.Policy == OffloadPolicy.Auto))
        {
            throw new UsageException("--offload auto plans from the first step's memory use: give --warmup 1 or more so that step is not timed");
        }
    }

    /// <summary>
    /// The auto policy's device budget: the allocator peak of the same engine with everything on the device (stage 3,
    /// <c>zero3</c>) minus half of the model states (<see cref="ModelStateBytesPerParameter"/> per parameter), so that
    /// about half of them must live off the device. The engine's own peak, not the baseline's: its vocabulary-tiled
    /// LM head needs far less than the baseline's whole [B·T, V] logits, and the baseline's peak less half of the
    /// states leaves room for all of them (gpt2-small, B8 × T256: 1.48 GB budget, every state chunk on the device).
    /// </summary>
    internal static long AutoBudgetBytes(long inMemoryEnginePeakBytes, long parameters) => inMemoryEnginePeakBytes - (ModelStateBytesPerParameter * parameters / 2);

    /// <summary>
    /// Runs one engine variant. Auto runs under <see cref="AutoBudgetBytes"/> of <paramref name="referencePeakBytes"/> (or a lower limit already set, such as
    /// <c>--device-memory</c>): the device allocator's byte limit is lowered for the variant and restored after.
    /// </summary>
    /// <exception cref="UsageException">the budget leaves nothing for the model (a batch too small for the model).</exception>
    private static StepTimes TimeVariant(IDevice device, Models.Transformer.ModelConfig config, StepBenchSpec spec, EngineVariant variant, long referencePeakBytes, TextWriter progress)
    {
        if (variant.Offload.Policy != OffloadPolicy.Auto)
        {
            return TimeSteps(device, config, spec, variant, progress);
        }
        var allocator = device.Allocator;
        long? previous = allocator.LimitBytes;
        long budget = Math.Min(AutoBudgetBytes(referencePeakBytes, config.ParameterCount), previous ?? long.MaxValue);
        long inUse = allocator.Stats.BytesInUse;
        if (budget <= inUse)
        {
            throw new UsageException(string.Create(CultureInfo.InvariantCulture,
                $"--offload auto: the budget of {budget:N0} bytes (offload-static:0,0 peak {referencePeakBytes:N0} − ½·16 bytes × {config.ParameterCount:N0} parameters) leaves nothing for the model; use a larger --batch or --seq"));
        }
        progress.WriteLine(F($"step: {variant.Name}: device budget {budget:N0} bytes = offload-static:0,0 peak {referencePeakBytes:N0} − half of {ModelStateBytesPerParameter * config.ParameterCount:N0} bytes of model states"));
        allocator.LimitBytes = budget;
        try
        {
            return TimeSteps(device, config, spec, variant, progress) with { DeviceBudgetBytes = budget };
        }
        finally
        {
            allocator.LimitBytes = previous;
        }
    }
}
