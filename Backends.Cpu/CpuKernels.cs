using System.Runtime.Intrinsics.X86;

namespace Hal.Backends.Cpu;

/// <summary>
/// The CPU backend's kernels: every tier-1 kernel, and fused tier-2 kernels (IFusedKernels).
/// Split by concern over CpuKernels.*.cs files.
/// </summary>
internal sealed unsafe partial class CpuKernels : IKernels, IFusedKernels
{
    internal CpuKernels(int threads, int gemmMaxVectorBits = 512)
    {
        Threads = Math.Max(1, threads);
        GemmVectorBits = gemmMaxVectorBits >= 512 && Avx512F.IsSupported ? 512 : 256;
    }

    /// <summary>Worker threads used by parallel kernels.</summary>
    internal int Threads { get; }

    /// <summary>Address of a tensor's first element.</summary>
    internal static byte* Ptr(Tensor t) => (byte*)((HostBuffer)t.Buffer).Pointer + t.OffsetBytes;

    /// <summary>[outer, axis, inner] view of a shape around <paramref name="axis"/>.</summary>
    private static (long Outer, long Axis, long Inner) Split(Shape shape, int axis) =>
        (shape.Product(0, axis), shape[axis], shape.Product(axis + 1, shape.Rank));
}
