using Hal.Backends.Cuda.Native;
using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using ILGPU.Runtime.Cuda;

namespace Hal.Backends.Cuda;

/// <summary>
/// One CUDA GPU (or, for tests, ILGPU's CPU emulator) as a Hal device. Asynchronous: kernels and copies are queued
/// on the accelerator's default stream in order; host reads wait for them.
/// </summary>
public sealed class CudaDevice : DeviceBase
{
    /// <summary>Memory the emulator device reports (1 GiB: tests stay tiny).</summary>
    internal const long EmulatorMemoryBytes = 1L << 30;

    private readonly Context _context;
    private readonly CudaAllocator _allocator;
    private readonly CudaKernels _kernels;
    private readonly CudaStreamAdapter _stream;

    private CudaDevice(DeviceId id, Context context, Accelerator accelerator, CudaBackendOptions options, bool emulator)
        : base(id, new DeviceCapabilities(accelerator.Name, MemoryOf(accelerator, emulator), MemoryOf(accelerator, emulator), CudaBackend.SupportedDTypes, IsAsync: true))
    {
        _context = context;
        Accelerator = accelerator;
        IsEmulator = emulator;
        _allocator = new CudaAllocator(this, accelerator, MemoryOf(accelerator, emulator), options.DeviceMemoryBytes);
        _stream = new CudaStreamAdapter(accelerator);
        Cublas? cublas = null;
        if (!emulator && options.UseCublas)
        {
            accelerator.Bind();
            cublas = Cublas.TryCreate();
            cublas?.SetStream(((CudaStream)accelerator.DefaultStream).StreamPtr);
        }
        _kernels = new CudaKernels(this, cublas);
    }

    /// <summary>The ILGPU accelerator behind this device.</summary>
    internal Accelerator Accelerator { get; }

    /// <summary>True when kernels run on ILGPU's CPU emulator (tests).</summary>
    internal bool IsEmulator { get; }

    /// <summary>True when GEMM goes through cuBLAS.</summary>
    public bool UsesCublas => _kernels.UsesCublas;

    /// <summary>The caching allocator (with <see cref="CudaAllocator.EmptyCache"/> and cache counters).</summary>
    public CudaAllocator CachingAllocator => _allocator;

    /// <inheritdoc />
    public override IAllocator Allocator => _allocator;

    /// <inheritdoc />
    public override IStream DefaultStream => _stream;

    /// <inheritdoc />
    public override IKernels Kernels => _kernels;

    /// <summary>The GPUs ILGPU sees, as probe entries.</summary>
    internal static List<DeviceInfo> ListDevices()
    {
        CudaLibraries.InstallIlgpuResolver();
        using var context = Context.Create(b => b.Cuda());
        var list = new List<DeviceInfo>();
        int i = 0;
        foreach (var d in context.GetCudaDevices())
        {
            list.Add(new DeviceInfo(new DeviceId("cuda", i++), $"{d.Name} (sm_{d.Architecture?.Major}{d.Architecture?.Minor})", d.MemorySize, CudaBackend.SupportedDTypes));
        }
        return list;
    }

    internal static CudaDevice OpenEmulator(DeviceId id, CudaBackendOptions options)
    {
        // The Nvidia kind emulates 32-wide warps and groups up to 1024 threads, like the GPUs the kernels target.
        var context = Context.Create(b => b.CPU(CPUDeviceKind.Nvidia).Optimize(OptimizationLevel.O1));
        var accelerator = context.CreateCPUAccelerator(0, CPUAcceleratorMode.Parallel);
        return new CudaDevice(id, context, accelerator, options, emulator: true);
    }

    internal static CudaDevice OpenGpu(DeviceId id, int index, CudaBackendOptions options)
    {
        CudaLibraries.InstallIlgpuResolver();
        var context = CreateGpuContext(out string mathLibrary);
        MathLibrary = mathLibrary;
        try
        {
            var accelerator = context.CreateCudaAccelerator(index);
            return new CudaDevice(id, context, accelerator, options, emulator: false);
        }
        catch (ILGPU.Runtime.Cuda.CudaException e)
        {
            context.Dispose();
            throw CudaException.FromIlgpu(e, $"opening {id}");
        }
        catch
        {
            context.Dispose();
            throw;
        }
    }

    /// <summary>Which math functions GPU kernels use: LibDevice (with its path) or ILGPU's own.</summary>
    internal static string MathLibrary { get; private set; } = "not opened";

    /// <summary>
    /// A CUDA context with LibDevice (the CUDA toolkit's accurate math functions) when its NVVM library and bitcode are
    /// found, else ILGPU's automatic LibDevice detection, else none (ILGPU's built-in math functions).
    /// </summary>
    private static Context CreateGpuContext(out string mathLibrary)
    {
        if (CudaLibraries.FindLibDevice() is { } found)
        {
            try
            {
                mathLibrary = $"LibDevice {found.LibDevicePath}";
                return Context.Create(b => b.Cuda().LibDevice(found.NvvmPath, found.LibDevicePath).Optimize(OptimizationLevel.O2));
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                // Fall through to ILGPU's own detection.
            }
        }
        try
        {
            mathLibrary = "LibDevice (detected by ILGPU)";
            return Context.Create(b => b.Cuda().LibDevice().Optimize(OptimizationLevel.O2));
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            mathLibrary = "ILGPU built-in math (no CUDA toolkit with LibDevice found)";
            return Context.Create(b => b.Cuda().Optimize(OptimizationLevel.O2));
        }
    }

    private static long MemoryOf(Accelerator accelerator, bool emulator) => emulator ? EmulatorMemoryBytes : accelerator.MemorySize;

    protected override void CopyFromHostCore(ReadOnlySpan<byte> src, DeviceBuffer dst, long dstOffsetBytes)
    {
        var view = ((CudaBuffer)dst).Bytes.SubView(dstOffsetBytes, src.Length);
        // Queued on the default stream after earlier kernels; waiting for it keeps the caller's span free to reuse
        // whatever the driver does with pageable memory.
        view.CopyFromCPU(Accelerator.DefaultStream, src);
        Accelerator.DefaultStream.Synchronize();
    }

    protected override void CopyToHostCore(DeviceBuffer src, long srcOffsetBytes, Span<byte> dst)
    {
        var view = ((CudaBuffer)src).Bytes.SubView(srcOffsetBytes, dst.Length);
        view.CopyToCPU(Accelerator.DefaultStream, dst);
        Accelerator.DefaultStream.Synchronize();
    }

    protected override void CopyDeviceToDeviceCore(DeviceBuffer src, long srcOffsetBytes, DeviceBuffer dst, long dstOffsetBytes, long sizeInBytes)
    {
        var from = ((CudaBuffer)src).Bytes.SubView(srcOffsetBytes, sizeInBytes);
        var to = ((CudaBuffer)dst).Bytes.SubView(dstOffsetBytes, sizeInBytes);
        from.CopyTo(Accelerator.DefaultStream, to);
    }

    protected override void SynchronizeCore() => Accelerator.Synchronize();

    protected override void DisposeCore()
    {
        Accelerator.Synchronize();
        _kernels.Dispose();
        _allocator.Dispose();
        _allocator.EmptyCache();
        Accelerator.Dispose();
        _context.Dispose();
    }
}

/// <summary>
/// The device's default stream as an <see cref="IStream"/>. Events are recorded by synchronising (ILGPU exposes no
/// event objects), so an event is always complete when returned and waiting on it is free.
/// </summary>
internal sealed class CudaStreamAdapter(Accelerator accelerator) : IStream
{
    /// <inheritdoc />
    public void Synchronize() => accelerator.DefaultStream.Synchronize();

    /// <inheritdoc />
    public IEvent RecordEvent()
    {
        accelerator.DefaultStream.Synchronize();
        return CompletedEvent.Instance;
    }

    /// <inheritdoc />
    public void Wait(IEvent evt) => evt.Synchronize();

    private sealed class CompletedEvent : IEvent
    {
        public static readonly CompletedEvent Instance = new();

        public bool IsCompleted => true;

        public void Synchronize()
        {
        }

        public void Dispose()
        {
        }
    }
}
