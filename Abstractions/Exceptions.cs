namespace Hal;

/// <summary>Base of every error Hal raises on purpose. Messages say what was wrong and what to do.</summary>
public class HalException : Exception
{
    public HalException(string message)
        : base(message)
    {
    }

    public HalException(string message, Exception? inner)
        : base(message, inner)
    {
    }
}

/// <summary>A backend cannot run here (no driver, no device, library missing); <see cref="Reason"/> says which.</summary>
public sealed class BackendUnavailableException(string backend, string reason)
    : HalException($"backend '{backend}' is not available: {reason}")
{
    public string Backend { get; } = backend;

    public string Reason { get; } = reason;
}

/// <summary>An allocation would exceed a device's memory or its configured limit.</summary>
public sealed class OutOfDeviceMemoryException(DeviceId device, long bytesRequested, long bytesInUse, long limitBytes, Exception? inner = null)
    : HalException(
        $"out of memory on {device}: asked for {bytesRequested} bytes with {bytesInUse} in use and a limit of {limitBytes} bytes; " +
        "free tensors, use a smaller batch, or raise the limit (--device-memory)", inner)
{
    public DeviceId Device { get; } = device;

    public long BytesRequested { get; } = bytesRequested;

    public long BytesInUse { get; } = bytesInUse;

    public long LimitBytes { get; } = limitBytes;
}

/// <summary>Operands of an op have shapes that do not fit together.</summary>
public sealed class ShapeMismatchException(string op, Shape expected, Shape actual, string? detail = null)
    : HalException($"{op}: shape mismatch, {expected} vs {actual}" + (detail is null ? "" : $" ({detail})"))
{
    public string Op { get; } = op;

    public Shape Expected { get; } = expected;

    public Shape Actual { get; } = actual;
}

/// <summary>An op was called with a dtype the backend (or the op) does not support.</summary>
public sealed class DTypeNotSupportedException(string op, DType dtype, string backend, string? detail = null)
    : HalException($"{op}: dtype {dtype.Name()} is not supported by backend '{backend}'" + (detail is null ? "" : $" ({detail})"))
{
    public string Op { get; } = op;

    public DType DType { get; } = dtype;

    public string Backend { get; } = backend;
}

/// <summary>Operands of one op live on different devices.</summary>
public sealed class DeviceMismatchException(string op, DeviceId expected, DeviceId actual)
    : HalException($"{op}: operands are on different devices, {expected} and {actual}; copy them to one device first")
{
    public string Op { get; } = op;

    public DeviceId Expected { get; } = expected;

    public DeviceId Actual { get; } = actual;
}

/// <summary>A plugin assembly could not be loaded or was built against an incompatible contract.</summary>
public sealed class PluginLoadException(string path, string reason, Exception? inner = null)
    : HalException($"cannot load backend plugin '{path}': {reason}", inner)
{
    public string PluginPath { get; } = path;
}

/// <summary>Operands of one op have different dtypes where the op needs one.</summary>
public sealed class DTypeMismatchException(string op, DType a, DType b)
    : HalException($"{op}: dtype mismatch, {a.Name()} vs {b.Name()}; cast one operand first")
{
    public string Op { get; } = op;
}

/// <summary>A collective did not complete in time: a peer died, stopped answering, or called a different collective.</summary>
public sealed class CollectiveTimeoutException(int rank, string op, string waitingFor, TimeSpan timeout)
    : HalException($"rank {rank}: {op} timed out after {timeout.TotalSeconds:0.###} s waiting for {waitingFor}; " +
        "check that every rank calls the same collectives in the same order, and that no rank died (raise the timeout for slow steps)")
{
    public int Rank { get; } = rank;

    public string Op { get; } = op;

    public string WaitingFor { get; } = waitingFor;

    public TimeSpan Timeout { get; } = timeout;
}

/// <summary>Ranks called one collective with arguments that do not match (op, element count, dtype, root).</summary>
public sealed class CollectiveMismatchException(int rank, string op, string detail)
    : HalException($"rank {rank}: {op} arguments differ across ranks: {detail}")
{
    public int Rank { get; } = rank;

    public string Op { get; } = op;
}
