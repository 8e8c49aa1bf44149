namespace Hal.Models.Checkpoints;

/// <summary>A tensor and the name it is stored under (a Hugging Face name for model weights).</summary>
/// <param name="Name">Name in the file.</param>
/// <param name="Tensor">The tensor (any device; contiguous row-major).</param>
public sealed record NamedTensor(string Name, Tensor Tensor);
