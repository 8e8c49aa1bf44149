namespace Hal.Backends.OpenCL;

/// <summary>One kernel argument: a memory object, a scalar, a long8 vector, or a local-memory size.</summary>
internal readonly struct KArg
{
    private KArg(int size, long bits, long[]? vector = null, bool local = false)
    {
        Size = size;
        Bits = bits;
        Vector = vector;
        IsLocal = local;
    }

    internal int Size { get; }

    internal long Bits { get; }

    internal long[]? Vector { get; }

    internal bool IsLocal { get; }

    internal static KArg Mem(nint memory) => new(IntPtr.Size, memory);

    internal static KArg I32(int v) => new(4, v);

    internal static KArg I64(long v) => new(8, v);

    internal static KArg U64(ulong v) => new(8, unchecked((long)v));

    internal static KArg F32(float v) => new(4, BitConverter.SingleToInt32Bits(v));

    internal static KArg F64(double v) => new(8, BitConverter.DoubleToInt64Bits(v));

    /// <summary>A long8 argument (8 values, padded by the caller).</summary>
    internal static KArg Long8(long[] values) => new(64, 0, values);

    /// <summary>Dynamic local memory of <paramref name="bytes"/> bytes.</summary>
    internal static KArg Local(int bytes) => new(bytes, 0, local: true);
}

/// <summary>
/// The OpenCL backend's kernels: every tier-1 kernel and the fused tier-2 kernels softmax (and log-softmax), layer
/// norm, RMS norm, softmax cross-entropy, activation gradients, embedding, rotary and AdamW (IFusedKernels), each
/// forward and backward. Split by concern over OpenClKernels.*.cs; sources in Kernels/*.cl.
/// Every call queues work on the device's in-order queue and returns; index kernels first read the indices back
/// to check their range (a synchronisation).
/// </summary>
internal sealed unsafe partial class OpenClKernels : IKernels, IFusedKernels
{
    private readonly OpenClDevice _device;
    private readonly Lock _launchLock = new();

    internal OpenClKernels(OpenClDevice device, GemmTiling? tiling)
    {
        _device = device;
        var info = device.Info;
        // Element-wise work-group size: 128 where the device allows it.
        ElementGroup = (int)Math.Min(128, PowerOfTwoAtMost(info.MaxWorkGroupSize));
        RowGroupMax = (int)Math.Min(256, PowerOfTwoAtMost(info.MaxWorkGroupSize));
        Tiling = ChooseTiling(info, tiling);
        string? kernel = Environment.GetEnvironmentVariable("HAL_OPENCL_GEMM_KERNEL");
        UseDirectGemm = kernel switch
        {
            "direct" => true,
            "tiled" => false,
            _ => info.IsCpu && tiling is null,
        };
    }

    /// <summary>Work-items per group of the 1-D element-wise kernels.</summary>
    internal int ElementGroup { get; }

    /// <summary>Largest work-group of the row kernels (one group per row).</summary>
    internal int RowGroupMax { get; }

    private static long PowerOfTwoAtMost(long v)
    {
        long p = 1;
        while (p * 2 <= v)
        {
            p *= 2;
        }
        return p;
    }

    /// <summary>The -D options that select a dtype (and fp64 where the device has it).</summary>
    internal string Options(DType dtype, string extra = "")
    {
        string dt = dtype switch
        {
            DType.F32 => "F32",
            DType.F64 => "F64",
            DType.F16 => "F16",
            DType.BF16 => "BF16",
            DType.I32 => "I32",
            DType.I64 => "I64",
            DType.I8 => "I8",
            DType.U8 => "U8",
            _ => "BOOL",
        };
        string o = "-DDT_" + dt + (_device.Info.HasFp64 ? " -DHAS_FP64" : "");
        return extra.Length == 0 ? o : o + " " + extra;
    }

    /// <summary>A tensor as two arguments: its memory object and its offset in elements.</summary>
    private static KArg Mem(Tensor t) => KArg.Mem(((OpenClBuffer)t.Buffer).Memory);

    private static KArg Off(Tensor t) => KArg.I64(t.OffsetElements);

    /// <summary>A scalar argument of the program's SCALAR type (double for F64, float for other floats, long for integers).</summary>
    private static KArg Scalar(DType dtype, double v) => dtype switch
    {
        DType.F64 => KArg.F64(v),
        DType.F32 or DType.F16 or DType.BF16 => KArg.F32((float)v),
        _ => KArg.I64((long)v),
    };

    /// <summary>Queues a 1-D kernel over <paramref name="n"/> work-items (rounded up to the group size; kernels bound-check).</summary>
    private void Launch1D(string file, string options, string name, long n, params ReadOnlySpan<KArg> args)
    {
        if (n <= 0)
        {
            return;
        }
        long g = (n + ElementGroup - 1) / ElementGroup * ElementGroup;
        Launch(file, options, name, [(nuint)g], [(nuint)ElementGroup], args);
    }

    /// <summary>Queues a row kernel: one work-group per row, <paramref name="group"/> work-items each.</summary>
    private void LaunchRows(string file, string options, string name, long rows, int group, params ReadOnlySpan<KArg> args)
    {
        if (rows <= 0)
        {
            return;
        }
        Launch(file, options, name, [(nuint)(rows * group)], [(nuint)group], args);
    }

    /// <summary>Work-items per row for a row of <paramref name="cols"/> elements: a power of two up to <see cref="RowGroupMax"/>.</summary>
    private int RowGroup(long cols)
    {
        int g = 1;
        while (g < cols && g < RowGroupMax)
        {
            g *= 2;
        }
        return g;
    }

    internal void Launch(string file, string options, string name, ReadOnlySpan<nuint> global, ReadOnlySpan<nuint> local, ReadOnlySpan<KArg> args)
    {
        nint kernel = _device.Programs.Kernel(file, options, name);
        var api = _device.Api;
        lock (_launchLock)
        {
            for (int i = 0; i < args.Length; i++)
            {
                var a = args[i];
                int status;
                if (a.IsLocal)
                {
                    status = api.SetKernelArg(kernel, (uint)i, (nuint)a.Size, null);
                }
                else if (a.Vector is { } vec)
                {
                    fixed (long* v = vec)
                    {
                        status = api.SetKernelArg(kernel, (uint)i, (nuint)a.Size, v);
                    }
                }
                else
                {
                    long bits = a.Bits;
                    status = api.SetKernelArg(kernel, (uint)i, (nuint)a.Size, &bits);
                }
                if (status != 0)
                {
                    throw new OpenClException(status, $"setting argument {i} of kernel '{name}' ({file} [{options}]) on {_device.Id}");
                }
            }
            nuint* g = stackalloc nuint[3];
            nuint* l = stackalloc nuint[3];
            for (int d = 0; d < global.Length; d++)
            {
                g[d] = global[d];
                l[d] = local.IsEmpty ? 0 : local[d];
            }
            int st = api.EnqueueNdrangeKernel(_device.Queue, kernel, (uint)global.Length, null, g, local.IsEmpty ? null : l, 0, null, null);
            if (st != 0)
            {
                throw new OpenClException(st, $"queuing kernel '{name}' ({file} [{options}]) with {global.Length}-D global size {string.Join("x", global.ToArray())} on {_device.Id}");
            }
        }
    }

    /// <summary>Reads an I32/I64 tensor back to the host (waits for queued work).</summary>
    private long[] ReadIndices(Tensor index)
    {
        var bytes = new byte[index.SizeInBytes];
        _device.CopyToHost(index.Buffer, index.OffsetBytes, bytes);
        var values = new long[index.ElementCount];
        if (index.DType == DType.I64)
        {
            Buffer.BlockCopy(bytes, 0, values, 0, bytes.Length);
        }
        else
        {
            for (int i = 0; i < values.Length; i++)
            {
                values[i] = BitConverter.ToInt32(bytes, i * 4);
            }
        }
        return values;
    }

    /// <summary>Raises the contract's <see cref="ArgumentOutOfRangeException"/> for the first index outside [0, limit).</summary>
    private void CheckIndices(string op, Tensor index, long limit, bool negativeIgnored, int? axis = null)
    {
        if (index.ElementCount == 0)
        {
            return;
        }
        var values = ReadIndices(index);
        for (int i = 0; i < values.Length; i++)
        {
            long v = values[i];
            if (v >= limit || (v < 0 && !negativeIgnored))
            {
                throw new ArgumentOutOfRangeException(nameof(index), v,
                    $"{op}: index {v} at position {i} is outside the valid range [{(negativeIgnored ? "negative = ignored, " : "")}0, {limit})" +
                    (axis is { } a ? $" of axis {a}" : ""));
            }
        }
    }

    private static string IndexOption(Tensor index) => index.DType == DType.I64 ? "-DIDX_I64" : "";

    /// <summary>[outer, axis, inner] view of a shape around <paramref name="axis"/>.</summary>
    private static (long Outer, long Axis, long Inner) Split(Shape shape, int axis) =>
        (shape.Product(0, axis), shape[axis], shape.Product(axis + 1, shape.Rank));
}
