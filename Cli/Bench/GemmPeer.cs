using System.Diagnostics;

namespace Hal.Cli.Bench;

// Legend: C[size, size] = A[size, size] · B[size, size], the same Philox host values on the measured device and the peer.

/// <summary>
/// What <c>hal bench gemm --peer</c> times beside the measured device: a reference library (OpenBLAS) or another
/// registered backend's device 0, running the same GEMMs on the same values.
/// </summary>
internal abstract class GemmPeer : IDisposable
{
    /// <summary>The name reported in the <c>peer</c> JSON field: <c>openblas</c>, or a backend name.</summary>
    public abstract string Name { get; }

    /// <summary>One progress line saying what the peer is.</summary>
    public abstract string Description { get; }

    /// <summary>Whether the peer can run a GEMM of <paramref name="dtype"/>.</summary>
    public abstract bool Supports(DType dtype);

    /// <summary>Prepares one size: the returned timer runs one GEMM and returns its seconds; dispose it after the size.</summary>
    public abstract IGemmTimer Prepare(float[] hostA, float[] hostB, int size, DType dtype);

    public virtual void Dispose()
    {
    }
}

/// <summary>Times one prepared GEMM per call.</summary>
internal interface IGemmTimer : IDisposable
{
    /// <summary>Runs the GEMM once and returns its wall time in seconds.</summary>
    double Time();
}

/// <summary>The system OpenBLAS's SGEMM on host arrays.</summary>
internal sealed class OpenBlasGemmPeer(OpenBlasPeer library) : GemmPeer
{
    public override string Name => "openblas";

    public override string Description => $"peer OpenBLAS ({library.Library}), core {library.CoreName}, {library.Threads} threads";

    public OpenBlasPeer Library => library;

    public override bool Supports(DType dtype) => dtype == DType.F32;

    public override IGemmTimer Prepare(float[] hostA, float[] hostB, int size, DType dtype) => new Timer(library, hostA, hostB, size);

    private sealed class Timer(OpenBlasPeer library, float[] a, float[] b, int size) : IGemmTimer
    {
        private readonly float[] _c = new float[size * size];

        public unsafe double Time()
        {
            fixed (float* pa = a, pb = b, pc = _c)
            {
                long start = Stopwatch.GetTimestamp();
                library.Sgemm(pa, pb, pc, size, size, size);
                return Stopwatch.GetElapsedTime(start).TotalSeconds;
            }
        }

        public void Dispose()
        {
        }
    }
}

/// <summary>Another registered backend's device 0 (owned here), through <see cref="Ops.Gemm"/>.</summary>
internal sealed class DeviceGemmPeer(IDevice device) : GemmPeer
{
    private readonly Ops _ops = new(device);

    public override string Name => device.Id.Backend;

    public override string Description => $"peer {device.Id} ({device.Capabilities.Name})";

    public override bool Supports(DType dtype) => device.Capabilities.DTypes.Contains(dtype);

    public override IGemmTimer Prepare(float[] hostA, float[] hostB, int size, DType dtype) =>
        new Timer(_ops, _ops.FromArray(hostA, new Shape(size, size), dtype), _ops.FromArray(hostB, new Shape(size, size), dtype), _ops.Empty(new Shape(size, size), dtype));

    public override void Dispose() => device.Dispose();

    private sealed class Timer(Ops ops, Tensor a, Tensor b, Tensor c) : IGemmTimer
    {
        public double Time()
        {
            long start = Stopwatch.GetTimestamp();
            ops.Gemm(a, b, c);
            ops.Device.Synchronize();
            return Stopwatch.GetElapsedTime(start).TotalSeconds;
        }

        public void Dispose()
        {
            a.Dispose();
            b.Dispose();
            c.Dispose();
        }
    }
}
