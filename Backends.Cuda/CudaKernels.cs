using Hal.Backends.Cuda.Kernels;
using Hal.Backends.Cuda.Native;
using ILGPU;
using ILGPU.Runtime;

namespace Hal.Backends.Cuda;

// Host side of the kernels: turns tensors into DeviceTensor arguments, loads each ILGPU kernel once per device
// (compiling it on first use) and launches element kernels in chunks so element counts beyond 2³¹ work.
internal sealed partial class CudaKernels : IKernels, IFusedKernels, IDisposable
{
    /// <summary>Elements per launch of an element-wise kernel (keeps the grid index within int).</summary>
    private const long LaunchChunk = 1L << 30;

    private readonly CudaDevice _device;
    private readonly Accelerator _accelerator;
    private readonly Cublas? _cublas;
    private readonly Dictionary<string, Delegate> _loaded = [];
    private readonly Lock _loadLock = new();

    public CudaKernels(CudaDevice device, Cublas? cublas)
    {
        _device = device;
        _accelerator = device.Accelerator;
        _cublas = cublas;
        // Row kernels use one group per row; the emulator runs each group thread as a host thread, so it gets fewer.
        RowGroupSize = device.IsEmulator ? 32 : 256;
    }

    /// <summary>True when GEMM goes through cuBLAS.</summary>
    public bool UsesCublas => _cublas is not null;

    /// <summary>Threads per group of the row kernels (softmax, norms, cross-entropy).</summary>
    internal int RowGroupSize { get; }

    private static DeviceTensor Arg(Tensor t) => new(((CudaBuffer)t.Buffer).Bytes, t.OffsetElements, (int)t.DType);

    /// <summary>A placeholder argument for an absent optional tensor (never read).</summary>
    private DeviceTensor NoTensor(Tensor like) => Arg(like);

    private T Load<T>(string name, Func<Accelerator, T> load)
        where T : Delegate
    {
        lock (_loadLock)
        {
            if (!_loaded.TryGetValue(name, out var kernel))
            {
                try
                {
                    kernel = load(_accelerator);
                }
                catch (ILGPU.Runtime.Cuda.CudaException e)
                {
                    throw CudaException.FromIlgpu(e, $"loading kernel {name}");
                }
                catch (NotSupportedException e) when (!_device.IsEmulator)
                {
                    throw new HalException(
                        $"cuda: kernel {name} does not compile for this GPU ({e.Message}); math functions come from " +
                        $"{CudaDevice.MathLibrary}. Install the CUDA toolkit (or the nvidia-cuda-nvcc wheel) and set CUDA_PATH.", e);
                }
                _loaded[name] = kernel;
            }
            return (T)kernel;
        }
    }

    /// <summary>Runs <paramref name="launch"/>(extent, start) over [0, n) in chunks of at most 2³⁰ threads.</summary>
    private static void Chunked(long n, Action<int, long> launch)
    {
        for (long start = 0; start < n; start += LaunchChunk)
        {
            launch((int)Math.Min(LaunchChunk, n - start), start);
        }
    }

    private void Run(Action launch, string what)
    {
        try
        {
            launch();
        }
        catch (ILGPU.Runtime.Cuda.CudaException e)
        {
            throw CudaException.FromIlgpu(e, what);
        }
    }

    /// <summary>Copies a small device tensor to the host as longs (index validation, which must happen before any write).</summary>
    private long[] DownloadIndices(Tensor index)
    {
        var bytes = new byte[index.SizeInBytes];
        _device.CopyToHost(index.Buffer, index.OffsetBytes, bytes);
        var values = new long[index.ElementCount];
        for (int i = 0; i < values.Length; i++)
        {
            values[i] = index.DType == DType.I64 ? BitConverter.ToInt64(bytes, i * 8) : BitConverter.ToInt32(bytes, i * 4);
        }
        return values;
    }

    /// <summary>Raises the contract's <see cref="ArgumentOutOfRangeException"/> for the first index outside [0, limit).</summary>
    private static void CheckIndices(string op, long[] values, long limit)
    {
        for (long i = 0; i < values.Length; i++)
        {
            if (values[i] < 0 || values[i] >= limit)
            {
                throw new ArgumentOutOfRangeException("index", values[i], $"{op}: index {values[i]} at position {i} is outside [0, {limit})");
            }
        }
    }

    public void Dispose() => _cublas?.Dispose();

    /// <summary>(outer, n, inner) of a shape around one axis.</summary>
    private static (long Outer, long N, long Inner) Split(Shape shape, int axis) =>
        (shape.Product(0, axis), shape[axis], shape.Product(axis + 1, shape.Rank));
}
