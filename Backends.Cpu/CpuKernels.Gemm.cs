namespace Hal.Backends.Cpu;

internal sealed partial class CpuKernels
{
    public void Gemm(Tensor a, Tensor b, Tensor c, bool transA, bool transB, double alpha, double beta, Tensor? bias) => throw new NotImplementedException();
}
