namespace Hal.Backends.Cpu;

/// <summary>
/// The CPU backend's kernels: every tier-1 kernel, and fused tier-2 kernels (IFusedKernels).
/// Split by concern over CpuKernels.*.cs files.
/// </summary>
internal sealed partial class CpuKernels : IKernels, IFusedKernels
{
    internal CpuKernels(int threads)
    {
        Threads = Math.Max(1, threads);
    }

    /// <summary>Worker threads used by parallel kernels.</summary>
    internal int Threads { get; }

    public void Fill(Tensor dst, double value) => throw new NotImplementedException();

    public void Copy(Tensor src, Tensor dst) => throw new NotImplementedException();

    public void Cast(Tensor src, Tensor dst) => throw new NotImplementedException();

    public void Unary(UnaryOp op, Tensor x, Tensor y) => throw new NotImplementedException();

    public void Binary(BinaryOp op, Tensor a, Tensor b, Tensor y) => throw new NotImplementedException();

    public void Reduce(ReduceOp op, Tensor x, int axis, Tensor y) => throw new NotImplementedException();

    public void ArgMax(Tensor x, int axis, Tensor indices) => throw new NotImplementedException();

    public void IndexSelect(Tensor src, int axis, Tensor index, Tensor dst) => throw new NotImplementedException();

    public void IndexAdd(Tensor src, int axis, Tensor index, Tensor dst) => throw new NotImplementedException();

    public void Gather(Tensor src, int axis, Tensor index, Tensor dst) => throw new NotImplementedException();

    public void ScatterAdd(Tensor src, int axis, Tensor index, Tensor dst) => throw new NotImplementedException();

    public void Random(RandomDistribution distribution, Tensor dst, ulong seed, ulong offset, double a, double b) => throw new NotImplementedException();
}
