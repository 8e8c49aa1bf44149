using Hal.Backends.Npu.Onnx;

namespace Hal.Backends.Npu.Tests;

/// <summary>Providers, device ids, the session cache and the typed ONNX Runtime error.</summary>
[Collection("npu")]
public sealed class NpuDeviceTests(NpuFixture f)
{
    [Fact]
    public void ProbeListsTheCpuProviderAsDeviceZeroAndSaysWhyOthersCannotRun()
    {
        var probe = new NpuBackend().Probe();
        Assert.True(probe.Available, probe.Reason);
        Assert.Equal("npu:0", probe.Devices[0].Id.ToString());
        Assert.StartsWith("(cpu)", probe.Devices[0].Name, StringComparison.Ordinal);
        foreach (var p in OrtRuntime.Providers.Where(p => !p.Usable))
        {
            Assert.Contains($"{p.Name} not usable (", probe.Reason, StringComparison.Ordinal);
        }
        Assert.Equal("cpu", f.Npu.Provider);
    }

    [Fact]
    public void AnUnknownProviderMakesTheBackendUnavailableWithTheReportedList()
    {
        var backend = new NpuBackend(new NpuBackendOptions { ExecutionProvider = "warp-drive" });
        Assert.False(backend.Probe().Available);
        var e = Assert.Throws<BackendUnavailableException>(() => backend.Open(0));
        Assert.Contains("--ep warp-drive", e.Message, StringComparison.Ordinal);
        Assert.Contains("cpu", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AProviderThatCannotBeCreatedReportsWhy()
    {
        var unusable = OrtRuntime.Providers.FirstOrDefault(p => !p.Usable);
        if (unusable is null)
        {
            // Every provider the runtime lists works on this machine: nothing to refuse.
            Assert.All(OrtRuntime.Providers, p => Assert.Null(p.Reason));
            return;
        }
        var e = Assert.Throws<BackendUnavailableException>(() => new NpuBackend(new NpuBackendOptions { ExecutionProvider = unusable.Name }).Open(0));
        Assert.Contains(unusable.Reason!, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ARepeatedKernelReusesItsSession()
    {
        using var x = f.NpuOps.FromArray(new double[] { 1, 2, 3 }, new Shape(3));
        using var y = f.NpuOps.Empty(new Shape(3));
        f.NpuOps.Unary(UnaryOp.Exp, x, y);
        var before = f.Npu.SessionCacheStats;
        using var x2 = f.NpuOps.FromArray(new double[] { 1, 2, 3, 4, 5 }, new Shape(5));
        using var y2 = f.NpuOps.Empty(new Shape(5));
        f.NpuOps.Unary(UnaryOp.Exp, x2, y2);
        var after = f.Npu.SessionCacheStats;
        // Another length of the same rank-1 graph: a hit, no new session.
        Assert.Equal(before.Sessions, after.Sessions);
        Assert.Equal(before.Hits + 1, after.Hits);
        Assert.True(after.HitRate > 0);
    }

    [Fact]
    public void AGraphTheRuntimeRejectsRaisesATypedErrorNamingKernelAndProvider()
    {
        using var cache = new NpuSessionCache("cpu");
        var e = Assert.Throws<OnnxRuntimeKernelException>(() => cache.Get("test.bad_attribute", () =>
        {
            var g = new OnnxGraph();
            string x = g.Input("x", DType.F32, 2);
            g.Output("y", g.Node("Transpose", [x], Attr.Ints("perm", 0, 5)), DType.F32, 2);
            return g;
        }));
        Assert.Equal("test.bad_attribute", e.Kernel);
        Assert.Equal("cpu", e.Provider);
        Assert.Contains("test.bad_attribute", e.Message, StringComparison.Ordinal);
    }
}
