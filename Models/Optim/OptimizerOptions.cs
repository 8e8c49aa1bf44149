using Hal.Models.Training;

namespace Hal.Models.Optim;

/// <summary>How <see cref="Optimizer"/> updates the parameters: the algorithm, its hyper-parameters, clipping and precision.</summary>
public sealed record OptimizerOptions
{
    /// <summary>The update rule.</summary>
    public OptimizerKind Kind { get; init; } = OptimizerKind.AdamW;

    /// <summary>Decoupled decay (AdamW, LAMB) or L2 term added to the gradient (SGD, LARS); applied only where <see cref="Nn.ParameterInfo.Decay"/>.</summary>
    public double WeightDecay { get; init; }

    /// <summary>Decay rate of the first moment (AdamW, LAMB).</summary>
    public double Beta1 { get; init; } = 0.9;

    /// <summary>Decay rate of the second moment (AdamW, LAMB).</summary>
    public double Beta2 { get; init; } = 0.999;

    /// <summary>Added to the denominator: √v̂ + eps (AdamW, LAMB), ‖g‖ + wd·‖p‖ + eps (LARS).</summary>
    public double Eps { get; init; } = 1e-8;

    /// <summary>Momentum factor μ of SGD and LARS (buf = μ·buf + …).</summary>
    public double Momentum { get; init; } = 0.9;

    /// <summary>LARS trust coefficient η (local rate η·‖p‖/(‖g‖ + wd·‖p‖ + eps)).</summary>
    public double TrustCoefficient { get; init; } = 0.001;

    /// <summary>Global-norm gradient clipping threshold; 0 turns clipping off.</summary>
    public double Clip { get; init; } = 1.0;

    /// <summary>The store's precision: <see cref="Precision.Fp32"/> needs an F32 (or F64) store, Bf16 a BF16 one, Fp16 an F16 one.</summary>
    public Precision Precision { get; init; } = Precision.Fp32;

    /// <summary>Dynamic loss scaling; used for <see cref="Precision.Fp16"/> only (bf16 has fp32's exponent range and needs none).</summary>
    public bool DynamicLossScaling { get; init; } = true;

    /// <summary>The first loss scale of dynamic loss scaling.</summary>
    public double InitialLossScale { get; init; } = 65536;

    /// <summary>Clean (finite) steps after which dynamic loss scaling doubles the scale.</summary>
    public int LossScaleGrowthInterval { get; init; } = 2000;
}

/// <summary>What one <see cref="Optimizer.Step"/> did.</summary>
/// <param name="GradNorm">Global L2 norm of the unscaled gradients before clipping (non-finite when the step was skipped).</param>
/// <param name="Skipped">True when a gradient was not finite and the parameters and states were left untouched.</param>
/// <param name="LossScale">The loss scale for the next step (after any halving or growth).</param>
public readonly record struct StepOutcome(double GradNorm, bool Skipped, double LossScale);
