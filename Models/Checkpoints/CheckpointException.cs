namespace Hal.Models.Checkpoints;

/// <summary>
/// A checkpoint, safetensors file or Hugging Face directory cannot be used: the message names the file and says what
/// is wrong with it (missing, truncated, corrupt header, a tensor missing or of another shape, a config that differs).
/// </summary>
public sealed class CheckpointException : HalException
{
    /// <summary>Creates the exception with a message that names the file.</summary>
    public CheckpointException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message that names the file and the error underneath.</summary>
    public CheckpointException(string message, Exception? inner)
        : base(message, inner)
    {
    }
}
