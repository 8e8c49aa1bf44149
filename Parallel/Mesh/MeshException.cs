namespace Hal.Parallel.Mesh;

/// <summary>A device mesh whose axis sizes do not fit the communicator it is built over.</summary>
public sealed class MeshException(string message) : HalException(message);
