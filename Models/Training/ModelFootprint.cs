namespace Hal.Models.Training;

/// <summary>
/// Bytes one rank needs: parameters, gradients and optimizer states (the model states) and an estimate of the
/// activations kept for backward.
/// </summary>
public sealed record ModelFootprint(long Parameters, long ParameterBytes, long GradientBytes, long OptimizerBytes, long ActivationBytes)
{
    /// <summary>Model states plus activations.</summary>
    public long TotalBytes => ParameterBytes + GradientBytes + OptimizerBytes + ActivationBytes;

    /// <summary>Parameters, gradients and optimizer states.</summary>
    public long ModelStateBytes => ParameterBytes + GradientBytes + OptimizerBytes;
}
