namespace Hal.Abstractions.Tests;

public sealed class DeviceIdTests
{
    [Theory]
    [InlineData("cpu:0", "cpu", 0)]
    [InlineData("OpenCL:3", "opencl", 3)]
    [InlineData(" cuda ", "cuda", 0)]
    [InlineData("vendor:x:2", "vendor:x", 2)]
    public void ParsesAndPrints(string text, string backend, int index)
    {
        var id = DeviceId.Parse(text);
        Assert.Equal(new DeviceId(backend, index), id);
        Assert.Equal($"{backend}:{index}", id.ToString());
    }

    [Theory]
    [InlineData("")]
    [InlineData(":1")]
    [InlineData("cpu:")]
    [InlineData("cpu:-1")]
    [InlineData("cpu:one")]
    public void RejectsMalformedIds(string text)
    {
        var e = Assert.Throws<FormatException>(() => DeviceId.Parse(text));
        Assert.Contains("cpu:0", e.Message);
    }
}
