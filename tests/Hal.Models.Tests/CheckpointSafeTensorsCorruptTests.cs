using System.Text;
using Hal.Models.Checkpoints;

namespace Hal.Models.Tests;

// Hand-made broken files: every one must raise CheckpointException naming the file and the fault.
public sealed class CheckpointSafeTensorsCorruptTests
{
    /// <summary>A file with <paramref name="header"/> as its JSON and <paramref name="dataBytes"/> zero data bytes.</summary>
    private static string WriteRaw(TempDir dir, string header, int dataBytes, ulong? declaredLength = null)
    {
        byte[] json = Encoding.UTF8.GetBytes(header);
        string path = dir["bad.safetensors"];
        using var stream = File.Create(path);
        stream.Write(BitConverter.GetBytes(declaredLength ?? (ulong)json.Length));
        stream.Write(json);
        stream.Write(new byte[dataBytes]);
        return path;
    }

    private static CheckpointException OpenFails(string path)
    {
        var e = Assert.Throws<CheckpointException>(() => SafeTensors.Open(path).Dispose());
        Assert.Contains(path, e.Message);
        return e;
    }

    [Fact]
    public void AValidHandMadeFileOpens()
    {
        using var dir = new TempDir();
        string path = WriteRaw(dir, """{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}""", 8);
        using var reader = SafeTensors.Open(path);
        Assert.Equal(new long[] { 2 }, reader.Tensors["a"].Shape);
    }

    [Fact]
    public void TruncatedDataIsReported()
    {
        using var dir = new TempDir();
        string path = WriteRaw(dir, """{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}""", 5);
        var e = OpenFails(path);
        Assert.Contains("truncated", e.Message);
        Assert.Contains("'a'", e.Message);
    }

    [Fact]
    public void AHeaderLengthPastTheEndIsReported()
    {
        using var dir = new TempDir();
        string path = WriteRaw(dir, """{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}""", 8, declaredLength: 1_000_000);
        var e = OpenFails(path);
        Assert.Contains("header length 1000000", e.Message);
    }

    [Fact]
    public void AFileShorterThanTheLengthFieldIsReported()
    {
        using var dir = new TempDir();
        string path = dir["short.safetensors"];
        File.WriteAllBytes(path, [1, 2, 3]);
        Assert.Contains("too short", OpenFails(path).Message);
    }

    [Fact]
    public void OverlappingOffsetsAreReported()
    {
        using var dir = new TempDir();
        string path = WriteRaw(dir,
            """{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}""", 12);
        var e = OpenFails(path);
        Assert.Contains("overlap", e.Message);
        Assert.Contains("'a'", e.Message);
        Assert.Contains("'b'", e.Message);
    }

    [Fact]
    public void BadJsonIsReported()
    {
        using var dir = new TempDir();
        string path = WriteRaw(dir, """{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]""", 8);
        Assert.Contains("not valid JSON", OpenFails(path).Message);
    }

    [Fact]
    public void AnUnknownDTypeIsReported()
    {
        using var dir = new TempDir();
        string path = WriteRaw(dir, """{"a":{"dtype":"F17","shape":[2],"data_offsets":[0,8]}}""", 8);
        var e = OpenFails(path);
        Assert.Contains("unknown dtype 'F17'", e.Message);
    }

    [Fact]
    public void OffsetsThatDisagreeWithTheShapeAreReported()
    {
        using var dir = new TempDir();
        string path = WriteRaw(dir, """{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}""", 12);
        var e = OpenFails(path);
        Assert.Contains("needs 3 × 4", e.Message);
    }

    [Theory]
    [InlineData("""[1,2]""", "not an object")]
    [InlineData("""{"a":{"shape":[2],"data_offsets":[0,8]}}""", "no dtype")]
    [InlineData("""{"a":{"dtype":"F32","data_offsets":[0,8]}}""", "no shape")]
    [InlineData("""{"a":{"dtype":"F32","shape":[2]}}""", "data_offsets")]
    [InlineData("""{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}""", "bad shape")]
    [InlineData("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}""", "data_offsets")]
    [InlineData("""{"a":{"dtype":"F32","shape":[2],"data_offsets":["0",8]}}""", "data_offsets")]
    [InlineData("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}""", "twice")]
    [InlineData("""{"__metadata__":{"k":1}}""", "not a string")]
    public void MalformedHeaderEntriesAreReported(string header, string expectedText)
    {
        using var dir = new TempDir();
        string path = WriteRaw(dir, header, 16);
        Assert.Contains(expectedText, OpenFails(path).Message);
    }

    [Fact]
    public void AMissingFileIsReported()
    {
        using var dir = new TempDir();
        Assert.Contains("not found", OpenFails(dir["none.safetensors"]).Message);
    }

    [Fact]
    public void AKnownDTypeHalHasNoTensorsOfIsListedButNotRead()
    {
        using var cpu = new CpuFixture();
        using var dir = new TempDir();
        string path = WriteRaw(dir, """{"a":{"dtype":"I16","shape":[2],"data_offsets":[0,4]}}""", 4);
        using var reader = SafeTensors.Open(path);
        Assert.Equal("I16", reader.Tensors["a"].DType);
        using var t = cpu.Ops.Empty(new Shape(2), DType.I32);
        Assert.Contains("I16", Assert.Throws<CheckpointException>(() => reader.ReadInto("a", t, cpu.Ops)).Message);
    }
}
