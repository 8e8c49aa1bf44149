using Hal.Backends.Cpu;

namespace Hal.Backends.Npu;

/// <summary>
/// Runs a tier-1 kernel with the CPU backend on copies of the operands, for kernels that have no ONNX operator
/// (Philox random numbers, casts with Hal's saturation rules) or whose graph no provider implements for a dtype.
/// The operands are host memory, so each copy is one memcpy.
/// </summary>
internal sealed class NpuHostFallback : IDisposable
{
    private readonly IDevice _cpu = new CpuBackend(new CpuBackendOptions()).Open(0);

    /// <summary>
    /// Copies <paramref name="operands"/> (nulls allowed) to the CPU device, runs <paramref name="body"/> there with a
    /// map from each operand to its copy, and copies <paramref name="written"/> back.
    /// </summary>
    public void Run(Tensor?[] operands, Tensor[] written, Action<IKernels, Func<Tensor?, Tensor?>> body)
    {
        var map = new Dictionary<Tensor, Tensor>(ReferenceEqualityComparer.Instance);
        try
        {
            foreach (var t in operands)
            {
                if (t is not null && !map.ContainsKey(t))
                {
                    map[t] = ToCpu(t);
                }
            }
            body(_cpu.Kernels, t => t is null ? null : map[t]);
            foreach (var t in written)
            {
                Back(map[t], t);
            }
        }
        finally
        {
            foreach (var c in map.Values)
            {
                c.Dispose();
            }
        }
    }

    public void Dispose() => _cpu.Dispose();

    private unsafe Tensor ToCpu(Tensor t)
    {
        var copy = new Tensor(_cpu.Allocator.Allocate(t.SizeInBytes), 0, t.Shape, t.DType, ownsBuffer: true);
        if (t.SizeInBytes > 0)
        {
            var src = new ReadOnlySpan<byte>((byte*)((HostBuffer)t.Buffer).Pointer + t.OffsetBytes, checked((int)t.SizeInBytes));
            _cpu.CopyFromHost(src, copy.Buffer, 0);
        }
        return copy;
    }

    private static unsafe void Back(Tensor cpu, Tensor dst)
    {
        if (dst.SizeInBytes > 0)
        {
            var span = new Span<byte>((byte*)((HostBuffer)dst.Buffer).Pointer + dst.OffsetBytes, checked((int)dst.SizeInBytes));
            cpu.Device.CopyToHost(cpu.Buffer, 0, span);
        }
    }
}
