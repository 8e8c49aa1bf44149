using Hal.Conformance.Kernels;

namespace Hal.Conformance.Tests;

/// <summary>
/// The kernel conformance suite as xunit tests: one test per op (a theory over the catalogue's op names), each running
/// that op's cases on the fixture's backend and failing with the runner's messages when a case fails unexpectedly,
/// so a CI log names the op that broke. A backend fixture is a small subclass that says how to create its backend
/// (and may choose the quick subset or an expectations file); when the backend is unavailable here, every test is
/// reported skipped with the probe's reason (see <see cref="BackendTheoryAttribute"/>).
/// </summary>
public abstract class KernelConformanceTests
{
    private IBackend? _backend;

    /// <summary>The backend under test, created once per test-class instance.</summary>
    public IBackend Backend => _backend ??= CreateBackend();

    /// <summary>Creates the backend (cheap: nothing native before Probe or Open).</summary>
    protected abstract IBackend CreateBackend();

    /// <summary>Run only the quick subset (for slow backends); the default is the whole catalogue.</summary>
    protected virtual bool QuickOnly => false;

    /// <summary>Known failures of this backend, each with a reason; none by default.</summary>
    protected virtual Expectations Expectations => Expectations.None;

    /// <summary>The device index to test.</summary>
    protected virtual int DeviceIndex => 0;

    /// <summary>Every op in the catalogue, in catalogue order.</summary>
    public static TheoryData<string> OpNames()
    {
        var data = new TheoryData<string>();
        foreach (string op in KernelCatalogue.All().Select(c => c.Op).Distinct(StringComparer.Ordinal))
        {
            data.Add(op);
        }
        return data;
    }

    /// <summary>Runs the cases of <paramref name="op"/> and asserts that none failed unexpectedly.</summary>
    [BackendTheory]
    [MemberData(nameof(OpNames), MemberType = typeof(KernelConformanceTests))]
    public void Op(string op)
    {
        using var device = Backend.Open(DeviceIndex);
        var options = new KernelConformanceOptions
        {
            Quick = QuickOnly,
            Filter = c => c.Op == op,
            Expectations = Expectations,
        };
        var results = KernelConformance.Run(device, options);
        Assert.True(results.Count > 0, $"{op}: no case ran{(QuickOnly ? " in the quick subset" : "")}");
        var failures = results.Where(r => r.IsUnexpectedFailure).ToList();
        Assert.True(failures.Count == 0,
            $"{op} on {device.Id}: {failures.Count} of {results.Count} cases failed\n" + string.Join("\n", failures.Take(20).Select(r => r.Message)));
    }
}
