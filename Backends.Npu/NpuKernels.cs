using Hal.Backends.Npu.Onnx;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace Hal.Backends.Npu;

/// <summary>
/// The NPU backend's kernels. Each kernel is a small ONNX graph built once per (op, dtypes, attributes, ranks),
/// compiled into a session by <see cref="NpuSessionCache"/>, and run on OrtValues that wrap the device buffers in
/// place (no copies). 16-bit float dtypes are cast to F32 inside the graph and rounded back at its end.
/// Kernels that ONNX has no operator for (Philox random numbers, saturating casts) run through the host fallback.
/// Split by concern over NpuKernels.*.cs files.
/// </summary>
internal sealed unsafe partial class NpuKernels : IKernels, IFusedKernels, IDisposable
{
    private readonly NpuDevice _device;
    private readonly Lazy<NpuHostFallback> _host;

    internal NpuKernels(NpuDevice device, string provider)
    {
        _device = device;
        Cache = new NpuSessionCache(provider);
        _host = new Lazy<NpuHostFallback>(() => new NpuHostFallback());
    }

    internal NpuSessionCache Cache { get; }

    private NpuHostFallback Host => _host.Value;

    public void Dispose()
    {
        Cache.Dispose();
        if (_host.IsValueCreated)
        {
            _host.Value.Dispose();
        }
    }

    /// <summary>The dtype a graph computes in: F32 for 16-bit storage types, the dtype itself otherwise.</summary>
    internal static DType ComputeType(DType dtype) => dtype.Is16Bit() ? DType.F32 : dtype;

    /// <summary>An operand: a tensor and the dims the graph sees it with (its own shape unless given).</summary>
    internal readonly record struct Operand(Tensor? Tensor, long[] Dims, long[]? HostInt64 = null, float[]? HostFloat32 = null, double[]? HostFloat64 = null)
    {
        public static implicit operator Operand(Tensor t) => new(t, DimsOf(t.Shape));
    }

    /// <summary>A tensor of <paramref name="dims"/> over <paramref name="t"/>'s elements (same count).</summary>
    internal static Operand As(Tensor t, params long[] dims) => new(t, dims);

    /// <summary>A 1-D I64 input held in managed memory (shapes, axes).</summary>
    internal static Operand HostInt64s(long[] values) => new(null, [values.Length], values);

    /// <summary>A 1-D F32 input held in managed memory (hyper-parameters that change between calls).</summary>
    internal static Operand HostFloats(float[] values) => new(null, [values.Length], null, values);

    /// <summary>A 1-D F64 input held in managed memory (F64 scale factors that must not become F32 attributes).</summary>
    internal static Operand HostDoubles(double[] values) => new(null, [values.Length], null, null, values);

    internal static long[] DimsOf(Shape shape)
    {
        var dims = new long[shape.Rank];
        for (int i = 0; i < dims.Length; i++)
        {
            dims[i] = shape[i];
        }
        return dims;
    }

    /// <summary>
    /// Runs the kernel <paramref name="key"/> (built by <paramref name="build"/> on first use) on the operands, or the
    /// host fallback when no provider has an implementation of its graph. Outputs that overlap an input's bytes are
    /// written to a temporary first, since ONNX Runtime kernels may read inputs after writing outputs.
    /// </summary>
    private void Run(string key, Func<OnnxGraph> build, Operand[] inputs, Operand[] outputs, Action? hostFallback = null)
    {
        var kernel = Cache.Get(key, build);
        if (kernel.UsesHostFallback)
        {
            if (hostFallback is null)
            {
                throw new OnnxRuntimeKernelException(key, Cache.Provider, "no provider has an implementation of this graph and the kernel has no host fallback");
            }
            hostFallback();
            return;
        }
        var temps = new Tensor?[outputs.Length];
        try
        {
            var bound = new Operand[outputs.Length];
            for (int i = 0; i < outputs.Length; i++)
            {
                bound[i] = outputs[i];
                var t = outputs[i].Tensor!;
                if (inputs.Any(x => x.Tensor is not null && Overlaps(x.Tensor, t)))
                {
                    temps[i] = new Tensor(_device.Allocator.Allocate(t.SizeInBytes), 0, t.Shape, t.DType, ownsBuffer: true);
                    bound[i] = new Operand(temps[i]!, outputs[i].Dims);
                }
            }
            RunSession(kernel, inputs, bound);
            for (int i = 0; i < outputs.Length; i++)
            {
                if (temps[i] is { } t)
                {
                    _device.CopyDeviceToDevice(t.Buffer, 0, outputs[i].Tensor!.Buffer, outputs[i].Tensor!.OffsetBytes, t.SizeInBytes);
                }
            }
        }
        finally
        {
            foreach (var t in temps)
            {
                t?.Dispose();
            }
        }
    }

    private static void RunSession(CompiledKernel kernel, Operand[] inputs, Operand[] outputs)
    {
        var values = new List<OrtValue>(inputs.Length + outputs.Length);
        try
        {
            var inputValues = new OrtValue[inputs.Length];
            for (int i = 0; i < inputs.Length; i++)
            {
                inputValues[i] = Wrap(inputs[i]);
                values.Add(inputValues[i]);
            }
            var outputValues = new OrtValue[outputs.Length];
            for (int i = 0; i < outputs.Length; i++)
            {
                outputValues[i] = Wrap(outputs[i]);
                values.Add(outputValues[i]);
            }
            using var runOptions = new RunOptions();
            kernel.Session!.Run(runOptions, kernel.InputNames, inputValues, kernel.OutputNames, outputValues);
        }
        catch (OnnxRuntimeException e)
        {
            throw new OnnxRuntimeKernelException(kernel.Key, kernel.Provider, e.Message.ReplaceLineEndings(" ").Trim(), e);
        }
        finally
        {
            foreach (var v in values)
            {
                v.Dispose();
            }
        }
    }

    /// <summary>An OrtValue over the operand's bytes in place.</summary>
    private static OrtValue Wrap(Operand operand)
    {
        if (operand.HostInt64 is { } host)
        {
            return OrtValue.CreateTensorValueFromMemory(host, operand.Dims);
        }
        if (operand.HostFloat64 is { } doubles)
        {
            return OrtValue.CreateTensorValueFromMemory(doubles, operand.Dims);
        }
        if (operand.HostFloat32 is { } floats)
        {
            return OrtValue.CreateTensorValueFromMemory(floats, operand.Dims);
        }
        var t = operand.Tensor!;
        var pointer = ((HostBuffer)t.Buffer).Pointer + (nint)t.OffsetBytes;
        return OrtValue.CreateTensorValueWithData(OrtMemoryInfo.DefaultInstance, ElementType(t.DType), operand.Dims, pointer, t.SizeInBytes);
    }

    private static bool Overlaps(Tensor a, Tensor b) =>
        ReferenceEquals(a.Buffer, b.Buffer) && a.SizeInBytes > 0 && b.SizeInBytes > 0 &&
        a.OffsetBytes < b.OffsetBytes + b.SizeInBytes && b.OffsetBytes < a.OffsetBytes + a.SizeInBytes;

    internal static TensorElementType ElementType(DType dtype) => dtype switch
    {
        DType.F32 => TensorElementType.Float,
        DType.F64 => TensorElementType.Double,
        DType.F16 => TensorElementType.Float16,
        DType.BF16 => TensorElementType.BFloat16,
        DType.I32 => TensorElementType.Int32,
        DType.I64 => TensorElementType.Int64,
        DType.I8 => TensorElementType.Int8,
        DType.U8 => TensorElementType.UInt8,
        DType.Bool => TensorElementType.Bool,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "unknown dtype"),
    };

    /// <summary>Short dtype names joined for cache keys: <c>f32.i64</c>.</summary>
    private static string Key(params object[] parts) => string.Join('.', parts.Select(p => p is DType d ? d.Name() : p.ToString()));
}
