using System.Runtime.InteropServices;
using Hal.Numerics;

namespace Hal;

public sealed partial class Ops
{
    /// <summary>A new tensor of <paramref name="dtype"/> holding <paramref name="values"/> converted with the cast rules.</summary>
    /// <exception cref="ShapeMismatchException">the value count is not the shape's element count.</exception>
    public Tensor FromArray(ReadOnlySpan<double> values, Shape shape, DType dtype = DType.F32)
    {
        if (values.Length != shape.ElementCount)
        {
            throw new ShapeMismatchException("from-array", shape, new Shape(values.Length), "value count must equal the element count");
        }
        var t = Empty(shape, dtype);
        try
        {
            Upload(values, t);
        }
        catch
        {
            t.Dispose();
            throw;
        }
        return t;
    }

    /// <summary>A new tensor from floats (converted to <paramref name="dtype"/>).</summary>
    public Tensor FromArray(ReadOnlySpan<float> values, Shape shape, DType dtype = DType.F32)
    {
        var d = new double[values.Length];
        for (int i = 0; i < d.Length; i++)
        {
            d[i] = values[i];
        }
        return FromArray(d, shape, dtype);
    }

    /// <summary>A new I32 or I64 tensor from integers.</summary>
    public Tensor FromArray(ReadOnlySpan<long> values, Shape shape, DType dtype = DType.I64)
    {
        if (dtype != DType.I64)
        {
            var d = new double[values.Length];
            for (int i = 0; i < d.Length; i++)
            {
                d[i] = values[i];
            }
            return FromArray(d, shape, dtype);
        }
        if (values.Length != shape.ElementCount)
        {
            throw new ShapeMismatchException("from-array", shape, new Shape(values.Length), "value count must equal the element count");
        }
        var t = Empty(shape, DType.I64);
        Device.CopyFromHost(MemoryMarshal.AsBytes(values), t.Buffer, t.OffsetBytes);
        return t;
    }

    /// <summary>Writes <paramref name="values"/> (converted to the tensor's dtype) into <paramref name="dst"/>.</summary>
    public void Upload(ReadOnlySpan<double> values, Tensor dst)
    {
        Check("upload", dst);
        if (values.Length != dst.ElementCount)
        {
            throw new ShapeMismatchException("upload", dst.Shape, new Shape(values.Length), "value count must equal the element count");
        }
        var bytes = new byte[dst.SizeInBytes];
        HostConvert.FromDoubles(values, dst.DType, bytes);
        Device.CopyFromHost(bytes, dst.Buffer, dst.OffsetBytes);
    }

    /// <summary>The tensor's values as doubles (waits for queued work).</summary>
    public double[] ToDoubleArray(Tensor src)
    {
        Check("download", src);
        var bytes = new byte[src.SizeInBytes];
        Device.CopyToHost(src.Buffer, src.OffsetBytes, bytes);
        var values = new double[src.ElementCount];
        HostConvert.ToDoubles(bytes, src.DType, values);
        return values;
    }

    /// <summary>The tensor's values as floats (waits for queued work).</summary>
    public float[] ToFloatArray(Tensor src) => Array.ConvertAll(ToDoubleArray(src), v => (float)v);

    /// <summary>The tensor's raw elements; <typeparamref name="T"/> must have the dtype's size.</summary>
    public T[] ToArray<T>(Tensor src)
        where T : unmanaged
    {
        Check("download", src);
        if (Marshal.SizeOf<T>() != src.DType.SizeInBytes())
        {
            throw new ArgumentException($"{typeof(T).Name} has {Marshal.SizeOf<T>()} bytes; {src.DType.Name()} elements have {src.DType.SizeInBytes()}");
        }
        var values = new T[src.ElementCount];
        Device.CopyToHost(src.Buffer, src.OffsetBytes, MemoryMarshal.AsBytes(values.AsSpan()));
        return values;
    }
}
