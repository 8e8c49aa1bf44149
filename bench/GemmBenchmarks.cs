using BenchmarkDotNet.Attributes;
using Hal.Backends.Cpu;
using Hal.Numerics;

namespace Hal.Bench;

// Legend: C[N, N] = A[N, N] · B[N, N] on the CPU backend, one square GEMM per invocation.

/// <summary>Square GEMM on the CPU backend through <see cref="Ops.Gemm"/>, per dtype and size.</summary>
[MemoryDiagnoser]
public class GemmBenchmarks
{
    private IDevice _device = null!;
    private Ops _ops = null!;
    private Tensor _a = null!;
    private Tensor _b = null!;
    private Tensor _c = null!;

    /// <summary>Edge length of the square matrices.</summary>
    [Params(256, 1024)]
    public int Size { get; set; }

    /// <summary>Element type of all three operands.</summary>
    [Params(DType.F32, DType.F64, DType.BF16)]
    public DType DType { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _device = new CpuBackend().Open(0);
        _ops = new Ops(_device);
        _a = Upload(offset: 0);
        _b = Upload(offset: (ulong)Size * (ulong)Size);
        _c = _ops.Empty(new Shape(Size, Size), DType);
    }

    [Benchmark]
    public void Gemm() => _ops.Gemm(_a, _b, _c);

    [GlobalCleanup]
    public void Cleanup()
    {
        _a.Dispose();
        _b.Dispose();
        _c.Dispose();
        _device.Dispose();
    }

    private Tensor Upload(ulong offset)
    {
        var values = new float[Size * Size];
        Philox.FillUniform(values, 7, offset, -1f, 1f);
        return _ops.FromArray(values, new Shape(Size, Size), DType);
    }
}
