using Xunit.Abstractions;
using Xunit.Sdk;

namespace Hal.Conformance.Tests;

/// <summary>
/// A theory that runs only where its fixture's backend is available: at discovery, <see cref="BackendTheoryDiscoverer"/>
/// creates the test class (a <see cref="KernelConformanceTests"/>), probes its backend, and when the probe says
/// unavailable marks every row skipped with the probe's reason, so the CI line counts the skips and says why.
/// </summary>
[XunitTestCaseDiscoverer("Hal.Conformance.Tests.BackendTheoryDiscoverer", "Hal.Conformance.Tests")]
[AttributeUsage(AttributeTargets.Method)]
public sealed class BackendTheoryAttribute : TheoryAttribute;

/// <summary>Discovers a <see cref="BackendTheoryAttribute"/> theory: the ordinary rows, or the same rows skipped with the probe's reason.</summary>
public sealed class BackendTheoryDiscoverer(IMessageSink diagnosticMessageSink) : TheoryDiscoverer(diagnosticMessageSink)
{
    /// <inheritdoc />
    public override IEnumerable<IXunitTestCase> Discover(ITestFrameworkDiscoveryOptions discoveryOptions, ITestMethod testMethod, IAttributeInfo theoryAttribute)
    {
        ArgumentNullException.ThrowIfNull(discoveryOptions);
        ArgumentNullException.ThrowIfNull(testMethod);
        var cases = base.Discover(discoveryOptions, testMethod, theoryAttribute);
        if (UnavailableReason(testMethod) is not { } reason)
        {
            return cases;
        }
        return cases.Select(c => (IXunitTestCase)new BackendSkippedTestCase(
            DiagnosticMessageSink, discoveryOptions.MethodDisplayOrDefault(), discoveryOptions.MethodDisplayOptionsOrDefault(),
            testMethod, $"backend unavailable: {reason}", c.TestMethodArguments)).ToList();
    }

    /// <summary>The probe's reason when the test class's backend cannot run here; null when it can (or the class is not a backend fixture).</summary>
    internal static string? UnavailableReason(ITestMethod testMethod)
    {
        var type = testMethod.TestClass.Class.ToRuntimeType();
        if (type is null || type.IsAbstract || !typeof(KernelConformanceTests).IsAssignableFrom(type))
        {
            return null;
        }
        var fixture = (KernelConformanceTests)Activator.CreateInstance(type)!;
        // A fixture that cannot even create its backend (a plugin that did not build) is a failure, not a skip:
        // the tests run and report the exception.
        BackendProbe probe;
        try
        {
            probe = fixture.Backend.Probe();
        }
        catch (Exception)
        {
            return null;
        }
        return probe.Available && probe.Devices.Count > 0 ? null : probe.Reason ?? "it has no devices";
    }
}

/// <summary>A test case skipped with a reason known only at discovery (the backend's probe).</summary>
public sealed class BackendSkippedTestCase : XunitTestCase
{
    private string _reason = "";

    /// <summary>For the deserializer.</summary>
    [Obsolete("Called by the de-serializer; should only be called by deriving classes for de-serialization purposes")]
    public BackendSkippedTestCase()
    {
    }

    /// <summary>Creates the case, skipped with <paramref name="reason"/>.</summary>
    public BackendSkippedTestCase(IMessageSink diagnosticMessageSink, TestMethodDisplay defaultMethodDisplay, TestMethodDisplayOptions defaultMethodDisplayOptions,
        ITestMethod testMethod, string reason, object[]? testMethodArguments)
        : base(diagnosticMessageSink, defaultMethodDisplay, defaultMethodDisplayOptions, testMethod, testMethodArguments)
    {
        _reason = reason;
    }

    /// <inheritdoc />
    protected override string GetSkipReason(IAttributeInfo factAttribute) => _reason;

    /// <inheritdoc />
    public override void Serialize(IXunitSerializationInfo data)
    {
        ArgumentNullException.ThrowIfNull(data);
        base.Serialize(data);
        data.AddValue("BackendSkipReason", _reason);
    }

    /// <inheritdoc />
    public override void Deserialize(IXunitSerializationInfo data)
    {
        ArgumentNullException.ThrowIfNull(data);
        _reason = data.GetValue<string>("BackendSkipReason");
        base.Deserialize(data);
    }
}
