using System.Buffers;

namespace Hal.Memory;

/// <summary>
/// A <see cref="Memory{T}"/> over native bytes that do not move, so that asynchronous file I/O can read and write
/// host-tier payloads in place. The owner keeps the bytes alive for as long as the memory is used.
/// </summary>
internal sealed unsafe class NativeMemoryManager(IntPtr pointer, int length) : MemoryManager<byte>
{
    /// <inheritdoc />
    public override Span<byte> GetSpan() => new((void*)pointer, length);

    /// <inheritdoc />
    public override MemoryHandle Pin(int elementIndex = 0) => new((byte*)pointer + elementIndex);

    /// <inheritdoc />
    public override void Unpin()
    {
    }

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
    }
}
