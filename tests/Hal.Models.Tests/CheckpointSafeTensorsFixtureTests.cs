using Hal.Models.Checkpoints;

namespace Hal.Models.Tests;

// fixtures/fixture.safetensors is written by fixtures/generate_safetensors_fixture.py (torch rounding, header built by
// hand with json/struct); the expected values below are what that script prints. Reads must be exact.
public sealed class CheckpointSafeTensorsFixtureTests
{
    private static readonly string FixturePath = Path.Combine(AppContext.BaseDirectory, "fixtures", "fixture.safetensors");

    [Fact]
    public void TheHeaderListsEveryTensorWithItsDTypeAndShape()
    {
        using var reader = SafeTensors.Open(FixturePath);
        Assert.Equal(["weights.f32", "weights.f16", "weights.bf16", "tokens.i64", "scalar.f32", "empty.f32"], reader.Tensors.Keys);
        Assert.Equal("F32", reader.Tensors["weights.f32"].DType);
        Assert.Equal(new long[] { 2, 3 }, reader.Tensors["weights.f32"].Shape);
        Assert.Equal("F16", reader.Tensors["weights.f16"].DType);
        Assert.Equal(new long[] { 5 }, reader.Tensors["weights.f16"].Shape);
        Assert.Equal("BF16", reader.Tensors["weights.bf16"].DType);
        Assert.Equal(new long[] { 2, 2 }, reader.Tensors["weights.bf16"].Shape);
        Assert.Equal("I64", reader.Tensors["tokens.i64"].DType);
        Assert.Equal(new long[] { 4 }, reader.Tensors["tokens.i64"].Shape);
        Assert.Empty(reader.Tensors["scalar.f32"].Shape);
        Assert.Equal(new long[] { 0, 3 }, reader.Tensors["empty.f32"].Shape);
        Assert.Equal("pt", reader.Metadata["format"]);
        Assert.Equal("generate_safetensors_fixture.py", reader.Metadata["source"]);
    }

    [Fact]
    public void F32ValuesIncludingDenormalAndInfinitiesAreExact()
    {
        using var cpu = new CpuFixture();
        using var reader = SafeTensors.Open(FixturePath);
        using var t = cpu.Ops.Empty(new Shape(2, 3), DType.F32);
        reader.ReadInto("weights.f32", t, cpu.Ops);
        double[] expected = [0.0, -2.5, 3.1415927410125732, 9.99994610111476e-41, double.PositiveInfinity, double.NegativeInfinity];
        Assert.Equal(expected, cpu.Ops.ToDoubleArray(t));
    }

    [Fact]
    public void F16ValuesAreExactInTheirOwnDTypeAndWidenedToF32()
    {
        using var cpu = new CpuFixture();
        using var reader = SafeTensors.Open(FixturePath);
        // −1/3 and 0.1 as rounded by torch; 2^-24 is F16's smallest denormal.
        double[] expected = [1.0, -0.333251953125, 65504.0, 5.960464477539063e-08, 0.0999755859375];
        using var same = cpu.Ops.Empty(new Shape(5), DType.F16);
        reader.ReadInto("weights.f16", same, cpu.Ops);
        Assert.Equal(expected, cpu.Ops.ToDoubleArray(same));
        using var wide = cpu.Ops.Empty(new Shape(5), DType.F32);
        reader.ReadInto("weights.f16", wide, cpu.Ops);
        // Every F16 value is an F32 value: widening is exact.
        Assert.Equal(expected, cpu.Ops.ToDoubleArray(wide));
    }

    [Fact]
    public void Bf16ValuesAreExactInTheirOwnDTypeAndWidenedToF64()
    {
        using var cpu = new CpuFixture();
        using var reader = SafeTensors.Open(FixturePath);
        double[] expected = [1.0, -0.333984375, 3.00405527047391e+38, 1.0101904577379033e-39];
        using var same = cpu.Ops.Empty(new Shape(2, 2), DType.BF16);
        reader.ReadInto("weights.bf16", same, cpu.Ops);
        Assert.Equal(expected, cpu.Ops.ToDoubleArray(same));
        using var wide = cpu.Ops.Empty(new Shape(2, 2), DType.F64);
        reader.ReadInto("weights.bf16", wide, cpu.Ops);
        Assert.Equal(expected, cpu.Ops.ToDoubleArray(wide));
    }

    [Fact]
    public void I64ValuesBeyondDoublePrecisionAreExact()
    {
        using var cpu = new CpuFixture();
        using var reader = SafeTensors.Open(FixturePath);
        using var t = cpu.Ops.Empty(new Shape(4), DType.I64);
        reader.ReadInto("tokens.i64", t, cpu.Ops);
        Assert.Equal(new long[] { 0, -1, 9007199254740993, -4611686018427387904 }, cpu.Ops.ToArray<long>(t));
    }

    [Fact]
    public void AScalarIsOneElementOfShapeEmpty()
    {
        using var cpu = new CpuFixture();
        using var reader = SafeTensors.Open(FixturePath);
        using var t = cpu.Ops.Empty(Shape.Scalar, DType.F32);
        reader.ReadInto("scalar.f32", t, cpu.Ops);
        Assert.Equal(new[] { 7.5 }, cpu.Ops.ToDoubleArray(t));
    }
}
