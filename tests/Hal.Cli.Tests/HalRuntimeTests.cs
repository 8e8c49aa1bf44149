using Hal.Backends.Cpu;
using Hal.Registration;
using Microsoft.Extensions.DependencyInjection;

namespace Hal.Cli.Tests;

public class HalRuntimeTests
{
    private sealed class NamedBackend(string name) : IBackend
    {
        public string Name => name;

        public BackendProbe Probe() => BackendProbe.Unavailable(name, "a test backend");

        public IDevice Open(int index) => throw new BackendUnavailableException(name, "a test backend");
    }

    private sealed class ThrowingProbeBackend : IBackend
    {
        public string Name => "broken";

        public BackendProbe Probe() => throw new InvalidOperationException("driver went away");

        public IDevice Open(int index) => throw new InvalidOperationException("driver went away");
    }

    [Fact]
    public void DuplicateBackendNamesAreRejected()
    {
        var e = Assert.Throws<HalException>(() => new HalRuntime([new NamedBackend("x"), new NamedBackend("y"), new NamedBackend("x")]));
        Assert.Contains("'x'", e.Message);
    }

    [Fact]
    public void DuplicateRegistrationThroughDependencyInjectionIsRejected()
    {
        var services = new ServiceCollection();
        services.AddHal().AddCpuBackend().AddCpuBackend();
        using var provider = services.BuildServiceProvider();
        var e = Assert.Throws<HalException>(() => provider.GetRequiredService<HalRuntime>());
        Assert.Contains("'cpu'", e.Message);
    }

    [Fact]
    public void UnknownBackendMessageListsTheRegisteredOnes()
    {
        var runtime = new HalRuntime([new NamedBackend("alpha"), new NamedBackend("beta")]);
        var e = Assert.Throws<BackendUnavailableException>(() => runtime.GetBackend("gamma"));
        Assert.Equal("gamma", e.Backend);
        Assert.Contains("registered: alpha, beta", e.Message);
    }

    [Fact]
    public void BackendsKeepRegistrationOrderAndLookupIgnoresCase()
    {
        var runtime = new HalRuntime([new NamedBackend("alpha"), new NamedBackend("beta")]);
        Assert.Equal(["alpha", "beta"], runtime.Backends.Select(b => b.Name).ToArray());
        Assert.Equal("beta", runtime.GetBackend("BETA").Name);
    }

    [Fact]
    public void ProbeAllTurnsAThrowingProbeIntoAReason()
    {
        var runtime = new HalRuntime([new ThrowingProbeBackend(), new NamedBackend("ok")]);
        var probes = runtime.ProbeAll();
        Assert.Equal(2, probes.Count);
        Assert.False(probes[0].Available);
        Assert.Contains("driver went away", probes[0].Reason);
        Assert.Equal("ok", probes[1].Backend);
    }

    [Fact]
    public void OpenByDeviceIdReachesTheCpuDevice()
    {
        var services = new ServiceCollection();
        services.AddHal().AddCpuBackend();
        using var provider = services.BuildServiceProvider();
        var runtime = provider.GetRequiredService<HalRuntime>();
        using var device = runtime.Open(DeviceId.Parse("cpu:0"));
        Assert.Equal("cpu:0", device.Id.ToString());
    }
}
