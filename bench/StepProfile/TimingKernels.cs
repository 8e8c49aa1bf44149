using System.Diagnostics;
using System.Reflection;
using System.Text;

namespace Hal.StepProfile;

// Legend: every hook of IKernels and IFusedKernels is timed; a row is keyed by kernel name, operand shapes and flags.

/// <summary>Both kernel tiers, so one proxy can stand for the device's kernels in <c>new Ops(device, proxy)</c>.</summary>
public interface IAllKernels : IKernels, IFusedKernels
{
}

/// <summary>One row of the profile: calls, wall seconds and the multiply-add FLOPs the calls did (0 when not counted).</summary>
public sealed class KernelStat
{
    /// <summary>Number of calls.</summary>
    public int Calls { get; set; }

    /// <summary>Total wall-clock seconds.</summary>
    public double Seconds { get; set; }

    /// <summary>Total FLOPs (2 per multiply-add), 0 for kernels whose FLOPs are not modelled.</summary>
    public double Flops { get; set; }

    /// <summary>Total elements of the largest tensor argument per call (for ns/element of memory-bound kernels).</summary>
    public double Elements { get; set; }
}

/// <summary>
/// A timing decorator built with <see cref="DispatchProxy"/>: forwarding each hook by reflection costs about a
/// microsecond, which is noise against the millisecond kernels of a training step.
/// </summary>
public class TimingKernels : DispatchProxy
{
    private object _inner = null!;

    /// <summary>Per-row statistics, keyed by kernel and shapes.</summary>
    public Dictionary<string, KernelStat> Stats { get; } = new(StringComparer.Ordinal);

    /// <summary>When false, calls are forwarded but not recorded (warm-up).</summary>
    public bool Recording { get; set; }

    /// <summary>Wraps <paramref name="inner"/> (a device's kernels).</summary>
    public static IAllKernels Create(IKernels inner)
    {
        var proxy = Create<IAllKernels, TimingKernels>();
        ((TimingKernels)(object)proxy)._inner = inner;
        return proxy;
    }

    /// <inheritdoc/>
    protected override object? Invoke(MethodInfo? method, object?[]? args)
    {
        ArgumentNullException.ThrowIfNull(method);
        long start = Stopwatch.GetTimestamp();
        try
        {
            return method.Invoke(_inner, args);
        }
        catch (TargetInvocationException e) when (e.InnerException is not null)
        {
            throw e.InnerException;
        }
        finally
        {
            double seconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
            if (Recording && method.ReturnType == typeof(void))
            {
                Record(method.Name, args ?? [], seconds);
            }
        }
    }

    private void Record(string name, object?[] args, double seconds)
    {
        var key = new StringBuilder(name);
        long maxElements = 0;
        foreach (object? arg in args)
        {
            if (arg is Tensor t)
            {
                key.Append(' ').Append(t.DType).Append(t.Shape);
                maxElements = Math.Max(maxElements, t.Shape.ElementCount);
            }
            else if (arg is bool or Enum)
            {
                key.Append(' ').Append(arg);
            }
        }
        string k = key.ToString();
        if (!Stats.TryGetValue(k, out var stat))
        {
            stat = new KernelStat();
            Stats[k] = stat;
        }
        stat.Calls++;
        stat.Seconds += seconds;
        stat.Flops += FlopsOf(name, args);
        stat.Elements += maxElements;
    }

    /// <summary>GEMM: 2·batch·M·N·K; attention: 4·B·H·Tq·Tk·D halved by the causal mask (backward 2.5× forward).</summary>
    private static double FlopsOf(string name, object?[] args)
    {
        if (name == "Gemm" && args[0] is Tensor a && args[2] is Tensor c && args[3] is bool transA)
        {
            long k = transA ? a.Shape[-2] : a.Shape[-1];
            return 2.0 * c.Shape.ElementCount * k;
        }
        if (name.StartsWith("Attention", StringComparison.Ordinal) && args[0] is Tensor q && args[1] is Tensor kk)
        {
            double forward = 4.0 * q.Shape.ElementCount * kk.Shape[-2] / 2;
            return name == "Attention" ? forward : 2.5 * forward;
        }
        return 0;
    }
}
