using Hal.Models.Checkpoints;
using Hal.Numerics;

namespace Hal.Models.Tests;

// Round trips through the safetensors writer and reader. Shapes: [n] sweeps and small 2-D/3-D tensors.
public sealed class CheckpointSafeTensorsTests
{
    private static readonly int[] Sizes = [0, 1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65];

    /// <summary>Values every dtype can hold exactly after its own rounding, with the specials floats allow.</summary>
    private static double[] RandomValues(DType dtype, int count, int seed)
    {
        var random = new Random(seed);
        var values = new double[count];
        for (int i = 0; i < count; i++)
        {
            values[i] = dtype switch
            {
                DType.Bool => random.Next(2),
                DType.U8 => random.Next(256),
                DType.I8 => random.Next(-128, 128),
                DType.I32 => random.Next(int.MinValue, int.MaxValue),
                DType.I64 => random.NextInt64(-(1L << 53), 1L << 53),
                _ => (i % 9) switch
                {
                    0 => double.NaN,
                    1 => double.PositiveInfinity,
                    2 => double.NegativeInfinity,
                    3 => DenormalOf(dtype),
                    4 => -0.0,
                    _ => (random.NextDouble() - 0.5) * 1000,
                },
            };
        }
        return values;
    }

    private static double DenormalOf(DType dtype) => dtype switch
    {
        DType.F16 => Math.Pow(2, -20),
        DType.BF16 or DType.F32 => Math.Pow(2, -130),
        _ => 5e-320,
    };

    /// <summary>The value after storage in <paramref name="dtype"/> (NaN stays NaN), computed with the host converter.</summary>
    private static double[] Stored(double[] values, DType dtype)
    {
        var bytes = new byte[values.Length * dtype.SizeInBytes()];
        HostConvert.FromDoubles(values, dtype, bytes);
        var back = new double[values.Length];
        HostConvert.ToDoubles(bytes, dtype, back);
        return back;
    }

    public static TheoryData<DType> AllDTypes() => [.. DTypeInfo.All];

    [Theory]
    [MemberData(nameof(AllDTypes))]
    public void EveryDTypeRoundTripsBitExactly(DType dtype)
    {
        using var cpu = new CpuFixture();
        using var dir = new TempDir();
        var ops = cpu.Ops;
        var tensors = new List<NamedTensor>();
        var expected = new Dictionary<string, double[]>();
        foreach (int n in Sizes)
        {
            int seed = 1000 + n;
            var values = Stored(RandomValues(dtype, n, seed), dtype);
            var t = ops.FromArray(values, new Shape(n), dtype);
            tensors.Add(new NamedTensor($"t{n}", t));
            expected[$"t{n}"] = values;
        }
        string path = dir["all.safetensors"];
        SafeTensors.Write(path, tensors, ops, new Dictionary<string, string> { ["k"] = "v" });

        using var reader = SafeTensors.Open(path);
        Assert.Equal("v", reader.Metadata["k"]);
        Assert.Equal(Sizes.Select(n => $"t{n}"), reader.Tensors.Keys);
        foreach (int n in Sizes)
        {
            var (storedDType, shape) = reader.Tensors[$"t{n}"];
            Assert.Equal(SafeTensors.DTypeName(dtype), storedDType);
            Assert.Equal(new long[] { n }, shape);
            using var back = ops.Empty(new Shape(n), dtype);
            reader.ReadInto($"t{n}", back, ops);
            // Bit-exact: a copy with no conversion, so the tolerance is zero (NaN compared by bits through Equal's NaN rule).
            Assert.Equal(expected[$"t{n}"], ops.ToDoubleArray(back));
        }
        foreach (var t in tensors)
        {
            t.Tensor.Dispose();
        }
    }

    [Theory]
    [InlineData(DType.F32, DType.BF16)]
    [InlineData(DType.F32, DType.F16)]
    [InlineData(DType.F32, DType.F64)]
    [InlineData(DType.BF16, DType.F32)]
    [InlineData(DType.F16, DType.F32)]
    [InlineData(DType.F64, DType.F32)]
    [InlineData(DType.BF16, DType.F16)]
    [InlineData(DType.F64, DType.BF16)]
    public void FloatDTypesConvertOnReadWithRoundToNearestEven(DType fileDType, DType readDType)
    {
        using var cpu = new CpuFixture();
        using var dir = new TempDir();
        var ops = cpu.Ops;
        const int seed = 77;
        var values = Stored(RandomValues(fileDType, 65, seed), fileDType);
        using var t = ops.FromArray(values, new Shape(5, 13), fileDType);
        SafeTensors.Write(dir["c.safetensors"], [new NamedTensor("x", t)], ops);
        using var reader = SafeTensors.Open(dir["c.safetensors"]);
        using var back = ops.Empty(new Shape(5, 13), readDType);
        reader.ReadInto("x", back, ops);
        // The reference is one RNE rounding of the stored value into the target dtype (HostConvert follows the
        // contract's cast rule), so the comparison is exact.
        Assert.True(Stored(values, readDType).SequenceEqual(ops.ToDoubleArray(back)), $"seed {seed}: {fileDType} → {readDType}");
    }

    [Fact]
    public void WriteCanStoreFloatsInAnotherDTypeAndLeavesIntegersAlone()
    {
        using var cpu = new CpuFixture();
        using var dir = new TempDir();
        var ops = cpu.Ops;
        // 1 + 2^-10 is exact in F32 and rounds to 1 in BF16 (7 stored mantissa bits; RNE to even).
        using var f = ops.FromArray(new double[] { 1 + Math.Pow(2, -10), -3 }, new Shape(2), DType.F32);
        using var i = ops.FromArray(new long[] { 5, -6 }, new Shape(2), DType.I64);
        SafeTensors.Write(dir["s.safetensors"], [new("f", f), new("i", i)], ops, null, DType.BF16);
        using var reader = SafeTensors.Open(dir["s.safetensors"]);
        Assert.Equal("BF16", reader.Tensors["f"].DType);
        Assert.Equal("I64", reader.Tensors["i"].DType);
        using var back = ops.Empty(new Shape(2), DType.F32);
        reader.ReadInto("f", back, ops);
        Assert.Equal(new double[] { 1, -3 }, ops.ToDoubleArray(back));
    }

    [Fact]
    public void ATensorLargerThanTheStagingBufferStreamsInChunks()
    {
        using var cpu = new CpuFixture();
        using var dir = new TempDir();
        var ops = cpu.Ops;
        // 1.25 Mi F32 elements = 5 MiB, past the 4 MiB staging buffer of a raw copy and two 512 Ki-element
        // chunks of a converting copy, so chunk boundaries and the final partial chunk all run.
        int n = (1 << 20) + (1 << 18) + 3;
        var values = new double[n];
        for (int k = 0; k < n; k++)
        {
            values[k] = (k % 1000) - 500;
        }
        using var t = ops.FromArray(values, new Shape(n), DType.F32);
        SafeTensors.Write(dir["big.safetensors"], [new("big", t)], ops);
        Assert.Equal(8 + (long)n * 4, new FileInfo(dir["big.safetensors"]).Length - HeaderLength(dir["big.safetensors"]));
        using var reader = SafeTensors.Open(dir["big.safetensors"]);
        using var same = ops.Empty(new Shape(n), DType.F32);
        reader.ReadInto("big", same, ops);
        Assert.Equal(values, ops.ToDoubleArray(same));
        using var wide = ops.Empty(new Shape(n), DType.F64);
        reader.ReadInto("big", wide, ops);
        // Integers below 2^8 are exact in every float dtype: no tolerance.
        Assert.Equal(values, ops.ToDoubleArray(wide));
    }

    [Fact]
    public void TheHeaderIsPaddedSoDataStartsEightByteAligned()
    {
        using var cpu = new CpuFixture();
        using var dir = new TempDir();
        using var t = cpu.Ops.FromArray(new double[] { 1 }, new Shape(1), DType.F32);
        foreach (string name in new[] { "a", "ab", "abc", "abcd", "abcde", "abcdef", "abcdefg", "abcdefgh" })
        {
            string path = dir[name + ".safetensors"];
            SafeTensors.Write(path, [new(name, t)], cpu.Ops);
            Assert.Equal(0, (8 + HeaderLength(path)) % 8);
        }
    }

    [Fact]
    public void WriteReplacesAnExistingFileAndLeavesNoTemporary()
    {
        using var cpu = new CpuFixture();
        using var dir = new TempDir();
        using var a = cpu.Ops.FromArray(new double[] { 1, 2 }, new Shape(2), DType.F32);
        using var b = cpu.Ops.FromArray(new double[] { 3 }, new Shape(1), DType.F64);
        string path = dir["w.safetensors"];
        SafeTensors.Write(path, [new("a", a)], cpu.Ops);
        SafeTensors.Write(path, [new("b", b)], cpu.Ops);
        using (var reader = SafeTensors.Open(path))
        {
            Assert.Equal(["b"], reader.Tensors.Keys);
        }
        Assert.Equal(["w.safetensors"], Directory.GetFileSystemEntries(dir.Path).Select(Path.GetFileName));
    }

    [Fact]
    public void AFailedWriteKeepsTheOldFileAndLeavesNoTemporary()
    {
        using var cpu = new CpuFixture();
        using var dir = new TempDir();
        using var good = cpu.Ops.FromArray(new double[] { 4, 5 }, new Shape(2), DType.F32);
        var gone = cpu.Ops.FromArray(new double[] { 6 }, new Shape(1), DType.F32);
        gone.Dispose();
        string path = dir["w.safetensors"];
        SafeTensors.Write(path, [new("good", good)], cpu.Ops);
        long before = new FileInfo(path).Length;
        Assert.Throws<ObjectDisposedException>(() => SafeTensors.Write(path, [new("good", good), new("gone", gone)], cpu.Ops));
        Assert.Equal(before, new FileInfo(path).Length);
        Assert.Equal(["w.safetensors"], Directory.GetFileSystemEntries(dir.Path).Select(Path.GetFileName));
    }

    [Fact]
    public void RepeatedOrReservedNamesAreRefused()
    {
        using var cpu = new CpuFixture();
        using var dir = new TempDir();
        using var t = cpu.Ops.FromArray(new double[] { 1 }, new Shape(1), DType.F32);
        Assert.Throws<ArgumentException>(() => SafeTensors.Write(dir["x"], [new("a", t), new("a", t)], cpu.Ops));
        Assert.Throws<ArgumentException>(() => SafeTensors.Write(dir["x"], [new("__metadata__", t)], cpu.Ops));
        Assert.Throws<ArgumentException>(() => SafeTensors.Write(dir["x"], [new("", t)], cpu.Ops));
        Assert.False(File.Exists(dir["x"]));
    }

    [Fact]
    public void ReadIntoRefusesAnotherShapeAnUnknownNameAndIntegerConversion()
    {
        using var cpu = new CpuFixture();
        using var dir = new TempDir();
        var ops = cpu.Ops;
        using var t = ops.FromArray(new double[] { 1, 2, 3, 4, 5, 6 }, new Shape(2, 3), DType.F32);
        using var i = ops.FromArray(new long[] { 1, 2 }, new Shape(2), DType.I64);
        SafeTensors.Write(dir["r.safetensors"], [new("t", t), new("i", i)], ops);
        using var reader = SafeTensors.Open(dir["r.safetensors"]);
        using var transposed = ops.Empty(new Shape(3, 2), DType.F32);
        var shape = Assert.Throws<CheckpointException>(() => reader.ReadInto("t", transposed, ops));
        Assert.Contains("[2, 3]", shape.Message);
        Assert.Contains("[3, 2]", shape.Message);
        var missing = Assert.Throws<CheckpointException>(() => reader.ReadInto("nope", transposed, ops));
        Assert.Contains("'nope'", missing.Message);
        using var asFloat = ops.Empty(new Shape(2), DType.F32);
        var conversion = Assert.Throws<CheckpointException>(() => reader.ReadInto("i", asFloat, ops));
        Assert.Contains("I64", conversion.Message);
    }

    private static long HeaderLength(string path)
    {
        using var stream = File.OpenRead(path);
        var bytes = new byte[8];
        stream.ReadExactly(bytes);
        return (long)BitConverter.ToUInt64(bytes);
    }
}
