namespace Hal.Models.Checkpoints;

/// <summary>A tensor and the name it is stored under (a Hugging Face name for model weights).</summary>
/// <param name="Name">Name in the file.</param>
/// <param name="Tensor">The tensor (any device; contiguous row-major).</param>
public sealed record NamedTensor(string Name, Tensor Tensor);

/// <summary>A named fp32 tensor in host memory (a model state gathered from chunks for a checkpoint).</summary>
/// <param name="Name">Its name in the file.</param>
/// <param name="Shape">Its shape.</param>
/// <param name="Data">Shape.ElementCount values, row-major.</param>
public sealed record HostTensor(string Name, Shape Shape, float[] Data);
