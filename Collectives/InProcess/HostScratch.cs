using System.Runtime.InteropServices;

namespace Hal.Collectives.InProcess;

/// <summary>
/// One rank's reusable host staging area: 64-byte aligned native memory that grows to the largest request and is
/// kept between calls, so a steady training loop allocates nothing per collective.
/// </summary>
internal sealed unsafe class HostScratch : IDisposable
{
    private const int AlignmentBytes = 64;
    private const long GrowthQuantumBytes = 4096;

    private void* _pointer;
    private long _capacityBytes;

    /// <summary>An address with room for <paramref name="bytes"/>; earlier contents are not kept when it grows.</summary>
    public IntPtr Ensure(long bytes)
    {
        ObjectDisposedException.ThrowIf(_capacityBytes < 0, this);
        if (_pointer == null || bytes > _capacityBytes)
        {
            long capacity = Math.Max(GrowthQuantumBytes, (bytes + GrowthQuantumBytes - 1) / GrowthQuantumBytes * GrowthQuantumBytes);
            if (_pointer != null)
            {
                NativeMemory.AlignedFree(_pointer);
                _pointer = null;
            }
            _pointer = NativeMemory.AlignedAlloc((nuint)capacity, AlignmentBytes);
            if (_pointer == null)
            {
                throw new OutOfMemoryException($"NativeMemory.AlignedAlloc({capacity}) returned null");
            }
            _capacityBytes = capacity;
        }
        return (IntPtr)_pointer;
    }

    public void Dispose()
    {
        if (_pointer != null)
        {
            NativeMemory.AlignedFree(_pointer);
            _pointer = null;
        }
        _capacityBytes = -1;
    }
}
