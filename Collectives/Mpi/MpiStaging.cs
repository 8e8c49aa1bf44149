using System.Runtime.InteropServices;

namespace Hal.Collectives.Mpi;

/// <summary>
/// Host buffers for tensors whose device cannot hand MPI a host pointer: two slots (send side, receive side), each
/// grown to the largest message seen and reused, so staging costs two copies and no allocation in steady state.
/// Native memory never moves, so MPI may keep the address for the whole non-blocking call.
/// </summary>
internal sealed unsafe class MpiStaging : IDisposable
{
    private const int Alignment = 64;
    private const int Slots = 2;

    private readonly void*[] _buffers = new void*[Slots];
    private readonly long[] _capacities = new long[Slots];

    /// <summary>A host buffer of at least <paramref name="bytes"/> bytes for slot 0 (send) or 1 (receive).</summary>
    public IntPtr Get(int slot, long bytes)
    {
        if (_capacities[slot] < bytes || _buffers[slot] is null)
        {
            NativeMemory.AlignedFree(_buffers[slot]);
            _buffers[slot] = null;
            long capacity = Math.Max(bytes, Alignment);
            _buffers[slot] = NativeMemory.AlignedAlloc((nuint)capacity, Alignment);
            _capacities[slot] = capacity;
        }
        return (IntPtr)_buffers[slot];
    }

    public void Dispose()
    {
        for (int i = 0; i < Slots; i++)
        {
            NativeMemory.AlignedFree(_buffers[i]);
            _buffers[i] = null;
            _capacities[i] = 0;
        }
    }
}
