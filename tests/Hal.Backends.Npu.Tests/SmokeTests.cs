namespace Hal.Backends.Npu.Tests;

[Collection("npu")]
public sealed class SmokeTests(NpuFixture f)
{
    [Fact]
    public void AddAndGemmMatchPlainLoops()
    {
        using var a = f.NpuOps.FromArray(new double[] { 1, 2, 3, 4, 5, 6 }, new Shape(2, 3));
        using var b = f.NpuOps.FromArray(new double[] { 1, 0, 0, 1, 1, 1 }, new Shape(3, 2));
        using var c = f.NpuOps.Empty(new Shape(2, 2), DType.F32);
        f.NpuOps.Gemm(a, b, c);
        // [1 2 3; 4 5 6] · [1 0; 0 1; 1 1] = [4 5; 10 11], exact in F32.
        Assert.Equal(new double[] { 4, 5, 10, 11 }, f.NpuOps.ToDoubleArray(c));
    }
}
