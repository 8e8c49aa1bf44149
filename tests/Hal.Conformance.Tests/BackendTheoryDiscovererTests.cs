using Xunit.Abstractions;
using Xunit.Sdk;

namespace Hal.Conformance.Tests;

/// <summary>The discoverer marks a fixture's tests skipped, with the probe's reason, exactly when its backend is unavailable.</summary>
public sealed class BackendTheoryDiscovererTests
{
    private const string Reason = "no such accelerator on this machine";

    [Fact]
    public void AnUnavailableBackendSkipsEveryOpWithTheProbeReason()
    {
        var cases = Discover(typeof(UnavailableFixture));
        Assert.Equal(KernelConformanceTests.OpNames().Cast<object[]>().Count(), cases.Count);
        Assert.All(cases, c =>
        {
            Assert.IsType<BackendSkippedTestCase>(c);
            Assert.Equal($"backend unavailable: {Reason}", c.SkipReason);
            Assert.Single(c.TestMethodArguments);
        });
    }

    [Fact]
    public void AnAvailableBackendRunsEveryOp()
    {
        var cases = Discover(typeof(CpuKernelConformanceTests));
        Assert.Equal(KernelConformanceTests.OpNames().Cast<object[]>().Count(), cases.Count);
        Assert.All(cases, c => Assert.Null(c.SkipReason));
    }

    [Fact]
    public void TheSkipReasonSurvivesSerialization()
    {
        var original = Assert.IsType<BackendSkippedTestCase>(Discover(typeof(UnavailableFixture))[0]);
        var copy = SerializationHelper.Deserialize<IXunitTestCase>(SerializationHelper.Serialize(original));
        Assert.Equal(original.SkipReason, copy.SkipReason);
        Assert.Equal(original.TestMethodArguments, copy.TestMethodArguments);
    }

    private static List<IXunitTestCase> Discover(Type fixture)
    {
        var method = fixture.GetMethod(nameof(KernelConformanceTests.Op))!;
        var assembly = new TestAssembly(Reflector.Wrap(fixture.Assembly));
        var collection = new TestCollection(assembly, null, "discovery");
        var testMethod = new TestMethod(new TestClass(collection, Reflector.Wrap(fixture)), Reflector.Wrap(method));
        var attribute = Reflector.Wrap(method.CustomAttributes.Single(a => a.AttributeType == typeof(BackendTheoryAttribute)));
        var discoverer = new BackendTheoryDiscoverer(new NullMessageSink());
        return discoverer.Discover(new DefaultDiscoveryOptions(), testMethod, attribute).ToList();
    }

    /// <summary>Not public, so xunit does not run it; the tests above discover it by hand.</summary>
    private sealed class UnavailableFixture : KernelConformanceTests
    {
        protected override IBackend CreateBackend() => new UnavailableBackend();
    }

    private sealed class UnavailableBackend : IBackend
    {
        public string Name => "absent";

        public BackendProbe Probe() => BackendProbe.Unavailable(Name, Reason);

        public IDevice Open(int index) => throw new BackendUnavailableException(Name, Reason);
    }

    private sealed class NullMessageSink : LongLivedMarshalByRefObject, IMessageSink
    {
        public bool OnMessage(IMessageSinkMessage message) => true;
    }

    /// <summary>Discovery options with every value at its default.</summary>
    private sealed class DefaultDiscoveryOptions : LongLivedMarshalByRefObject, ITestFrameworkDiscoveryOptions
    {
        public TValue GetValue<TValue>(string name) => default!;

        public void SetValue<TValue>(string name, TValue value)
        {
        }
    }
}
