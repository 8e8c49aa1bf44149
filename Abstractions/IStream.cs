namespace Hal;

/// <summary>
/// An ordered queue of work on a device. Synchronous backends (the CPU) complete work before returning,
/// so their streams and events are always complete; asynchronous backends map these onto their queues.
/// </summary>
public interface IStream
{
    /// <summary>Blocks until all work queued so far on this stream has finished.</summary>
    void Synchronize();

    /// <summary>Records an event after all work queued so far.</summary>
    IEvent RecordEvent();

    /// <summary>Makes later work on this stream wait for <paramref name="evt"/> (which may belong to another stream of the same device).</summary>
    void Wait(IEvent evt);
}

/// <summary>A point in a stream's work.</summary>
public interface IEvent : IDisposable
{
    /// <summary>True when the work before the event has finished.</summary>
    bool IsCompleted { get; }

    /// <summary>Blocks until the event completes.</summary>
    void Synchronize();
}
