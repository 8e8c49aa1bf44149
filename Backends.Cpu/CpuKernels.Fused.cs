using System.Runtime.CompilerServices;
using Hal.Numerics;

namespace Hal.Backends.Cpu;

// Shared plumbing of the fused (tier-2) kernels: which ops are fused, raw element access, the chunked parallel-for,
// and the 16-bit path (F16/BF16 tensors are widened to F32 temporaries, computed in F32 and rounded back RNE).
internal sealed partial class CpuKernels
{
    /// <summary>Below this many elements of work a kernel stays on the calling thread: forking costs more than it saves.</summary>
    internal const long ParallelThresholdElements = CpuParallel.MinElementsPerThread;

    /// <summary>True for every fused op at F32, F64, F16 and BF16 (for the int8 ops, the float dtype of x or y).</summary>
    public bool Supports(FusedOp op, DType dtype) =>
        dtype.IsFloatingPoint() && op is >= FusedOp.Softmax and <= FusedOp.DequantizeInt8;

    /// <summary>Address of a tensor's first element.</summary>
    /// <summary>Element i of an I32 or I64 index tensor.</summary>
    internal static unsafe long ReadIndex(Tensor t, long i) => LoadIndex(Ptr(t), t.DType, i);

    /// <summary>
    /// Checks every index before a kernel dereferences it (an index outside the table would read or write memory
    /// outside the tensor). Negative indices pass when <paramref name="negativeIgnored"/> (cross-entropy's ignored targets).
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">an index is ≥ <paramref name="limit"/>, or negative where not ignored.</exception>
    internal static void CheckIndices(string op, Tensor indices, long limit, bool negativeIgnored, int? axis = null)
    {
        for (long i = 0; i < indices.ElementCount; i++)
        {
            long index = ReadIndex(indices, i);
            if (index >= limit || (index < 0 && !negativeIgnored))
            {
                throw new ArgumentOutOfRangeException(nameof(indices), index,
                    $"{op}: index {index} at position {i} is outside the valid range [{(negativeIgnored ? "negative = ignored, " : "")}0, {limit})" +
                    (axis is { } a ? $" of axis {a}" : ""));
            }
        }
    }

    /// <summary>Element i of a float tensor (any float dtype) as double.</summary>
    internal static unsafe double ReadFloat(Tensor t, long i) => t.DType switch
    {
        DType.F32 => ((float*)Ptr(t))[i],
        DType.F64 => ((double*)Ptr(t))[i],
        DType.F16 => HalfConvert.F16ToFloat(((ushort*)Ptr(t))[i]),
        DType.BF16 => HalfConvert.Bf16ToFloat(((ushort*)Ptr(t))[i]),
        _ => throw new NotSupportedException($"{t.DType.Name()} is not a float dtype"),
    };

    /// <summary>Writes element i of a float tensor, rounding to its dtype.</summary>
    internal static unsafe void WriteFloat(Tensor t, long i, double value)
    {
        switch (t.DType)
        {
            case DType.F32:
                ((float*)Ptr(t))[i] = (float)value;
                break;
            case DType.F64:
                ((double*)Ptr(t))[i] = value;
                break;
            case DType.F16:
                ((ushort*)Ptr(t))[i] = HalfConvert.FloatToF16((float)value);
                break;
            case DType.BF16:
                ((ushort*)Ptr(t))[i] = HalfConvert.FloatToBf16((float)value);
                break;
            default:
                throw new NotSupportedException($"{t.DType.Name()} is not a float dtype");
        }
    }

    /// <summary>Runs body(start, end) over [0, count) through <see cref="CpuParallel.For"/>, an item weighing <paramref name="workPerItem"/> elements.</summary>
    internal void ParallelFor(long count, long workPerItem, Action<long, long> body) =>
        CpuParallel.For(Threads, count, (start, end) => body(start, end), workPerItem);

    /// <summary>How many chunks <see cref="ParallelForChunks"/> splits count items into.</summary>
    internal int ChunkCount(long count, long workPerItem) =>
        count <= 0 ? 0 : count * Math.Max(1, workPerItem) < ParallelThresholdElements ? 1 : (int)Math.Min(Threads, count);

    /// <summary>
    /// Like <see cref="ParallelFor"/> but passes the chunk index in [0, <see cref="ChunkCount"/>), so reductions can keep
    /// one partial per chunk and combine them in a fixed order (the same bits on every run).
    /// </summary>
    internal void ParallelForChunks(long count, long workPerItem, Action<int, long, long> body)
    {
        int chunks = ChunkCount(count, workPerItem);
        if (chunks == 0)
        {
            return;
        }
        if (chunks == 1)
        {
            body(0, 0, count);
            return;
        }
        long size = (count + chunks - 1) / chunks;
        Parallel.For(0, chunks, new ParallelOptions { MaxDegreeOfParallelism = chunks }, w =>
        {
            long start = w * size;
            long end = Math.Min(count, start + size);
            if (start < end)
            {
                body(w, start, end);
            }
        });
    }

    /// <summary>A new F32 tensor on <paramref name="like"/>'s device with <paramref name="like"/>'s shape, uninitialised.</summary>
    internal static Tensor TempF32Like(Tensor like) => TempF32(like.Device, like.Shape);

    /// <summary>A new F32 tensor on <paramref name="device"/>, uninitialised; disposing it frees the memory.</summary>
    internal static Tensor TempF32(IDevice device, Shape shape)
    {
        var buffer = device.Allocator.Allocate(shape.ElementCount * sizeof(float));
        return new Tensor(buffer, 0, shape, DType.F32, ownsBuffer: true);
    }

    /// <summary>An F32 copy of a 16-bit tensor (exact: every F16/BF16 value is an F32 value), converted in parallel blocks.</summary>
    internal unsafe Tensor Widen(Tensor t)
    {
        var f = TempF32Like(t);
        nint src = (nint)Ptr(t), dst = (nint)Ptr(f);
        DType dtype = t.DType;
        ParallelFor((t.ElementCount + ConvertBlock - 1) / ConvertBlock, ConvertBlock, (start, end) =>
        {
            long first = start * ConvertBlock;
            long count = Math.Min(t.ElementCount, end * ConvertBlock) - first;
            CpuConvert.Load16(dtype, (ushort*)src + first, (float*)dst + first, count);
        });
        return f;
    }

    /// <summary>Rounds an F32 tensor into a 16-bit tensor of the same element count (round to nearest even).</summary>
    internal unsafe void Narrow(Tensor f32, Tensor dst)
    {
        nint s = (nint)Ptr(f32), d = (nint)Ptr(dst);
        DType dtype = dst.DType;
        long n = dst.ElementCount;
        ParallelFor((n + ConvertBlock - 1) / ConvertBlock, ConvertBlock, (start, end) =>
        {
            long first = start * ConvertBlock;
            long count = Math.Min(n, end * ConvertBlock) - first;
            CpuConvert.Store16(dtype, (float*)s + first, (ushort*)d + first, count);
        });
    }

    /// <summary>Elements per block of a parallel 16-bit conversion (a multiple of every vector width).</summary>
    private const long ConvertBlock = 4096;

    /// <summary>
    /// Runs <paramref name="body"/> with every 16-bit tensor among <paramref name="inputs"/> and <paramref name="outputs"/>
    /// replaced by an F32 copy (outputs are copied too, so in-place updates read the old values), then rounds the
    /// F32 outputs back into their 16-bit tensors. Tensors of other dtypes (and nulls) pass through unchanged.
    /// </summary>
    internal void ViaF32(Tensor?[] inputs, Tensor?[] outputs, Action<Tensor?[], Tensor?[]> body)
    {
        var ins = new Tensor?[inputs.Length];
        var outs = new Tensor?[outputs.Length];
        try
        {
            for (int i = 0; i < inputs.Length; i++)
            {
                ins[i] = inputs[i] is { } t && t.DType.Is16Bit() ? Widen(t) : inputs[i];
            }
            for (int i = 0; i < outputs.Length; i++)
            {
                outs[i] = outputs[i] is { } t && t.DType.Is16Bit() ? Widen(t) : outputs[i];
            }
            body(ins, outs);
            for (int i = 0; i < outputs.Length; i++)
            {
                if (outputs[i] is { } t && !ReferenceEquals(t, outs[i]))
                {
                    Narrow(outs[i]!, t);
                }
            }
        }
        finally
        {
            for (int i = 0; i < inputs.Length; i++)
            {
                if (!ReferenceEquals(ins[i], inputs[i]))
                {
                    ins[i]?.Dispose();
                }
            }
            for (int i = 0; i < outputs.Length; i++)
            {
                if (!ReferenceEquals(outs[i], outputs[i]))
                {
                    outs[i]?.Dispose();
                }
            }
        }
    }

    /// <summary>Elements of F32 scratch per tensor in one slab of <see cref="ViaF32Rows"/>: 512 KiB, so a slab's
    /// widened inputs and outputs stay in cache between the conversion and the kernel.</summary>
    private const long SlabElements = 1 << 17;

    /// <summary>
    /// The 16-bit path of a row-wise kernel, slab by slab: <paramref name="rowwise"/> tensors share their leading row
    /// count (each may have its own row length: a [N] statistic has length 1); per slab of rows, each is viewed, 16-bit
    /// ones are widened into reused F32 scratch (outputs get scratch of their own, which the kernel writes whole), the kernel runs,
    /// and 16-bit outputs are rounded back. <paramref name="shared"/> tensors (weights) are widened once. Unlike
    /// <see cref="ViaF32"/>, nothing the size of the whole tensor is allocated.
    /// </summary>
    internal void ViaF32Rows(Tensor?[] shared, Tensor[] rowwise, bool[] isOutput, long rows, Action<Tensor?[], Tensor[]> body)
    {
        var sharedF32 = new Tensor?[shared.Length];
        var scratch = new Tensor?[rowwise.Length];
        var rowLength = new long[rowwise.Length];
        long maxLength = 1;
        for (int t = 0; t < rowwise.Length; t++)
        {
            rowLength[t] = rows == 0 ? 0 : rowwise[t].ElementCount / rows;
            maxLength = Math.Max(maxLength, rowLength[t]);
        }
        long slabRows = Math.Max(1, SlabElements / maxLength);
        try
        {
            for (int t = 0; t < shared.Length; t++)
            {
                sharedF32[t] = shared[t] is { } w && w.DType.Is16Bit() ? Widen(w) : shared[t];
            }
            for (int t = 0; t < rowwise.Length; t++)
            {
                if (rowwise[t].DType.Is16Bit())
                {
                    scratch[t] = TempF32(rowwise[t].Device, new Shape(checked((int)(Math.Min(slabRows, rows) * rowLength[t]))));
                }
            }
            var views = new Tensor[rowwise.Length];
            for (long start = 0; start < rows; start += slabRows)
            {
                long count = Math.Min(slabRows, rows - start);
                for (int t = 0; t < rowwise.Length; t++)
                {
                    var shape = new Shape(checked((int)count), checked((int)rowLength[t]));
                    var view = rowwise[t].View(start * rowLength[t], shape);
                    views[t] = view;
                    if (scratch[t] is { } f)
                    {
                        var f32 = f.View(0, shape);
                        views[t] = f32;
                        if (!isOutput[t])
                        {
                            unsafe
                            {
                                CpuConvert.Load16(view.DType, (ushort*)Ptr(view), (float*)Ptr(f32), view.ElementCount);
                            }
                        }
                    }
                }
                body(sharedF32, views);
                for (int t = 0; t < rowwise.Length; t++)
                {
                    if (isOutput[t] && scratch[t] is not null)
                    {
                        var view = rowwise[t].View(start * rowLength[t], views[t].Shape);
                        unsafe
                        {
                            CpuConvert.Store16(view.DType, (float*)Ptr(views[t]), (ushort*)Ptr(view), view.ElementCount);
                        }
                    }
                }
            }
        }
        finally
        {
            for (int t = 0; t < shared.Length; t++)
            {
                if (!ReferenceEquals(sharedF32[t], shared[t]))
                {
                    sharedF32[t]?.Dispose();
                }
            }
            foreach (var f in scratch)
            {
                f?.Dispose();
            }
        }
    }

    /// <summary>Rows (product of all axes but the last) and the last-axis length.</summary>
    internal static (long Rows, int Cols) RowsCols(Tensor t)
    {
        int cols = t.Rank == 0 ? 1 : t.Shape[t.Rank - 1];
        long rows = t.Rank == 0 ? 1 : t.Shape.Product(0, t.Rank - 1);
        return (rows, cols);
    }
}
