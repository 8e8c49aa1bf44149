using Hal;
using Hal.Numerics;

namespace Hal.Samples.VendorBackend;

// Shapes: index_select/index_add see src and dst as [outer, length along axis, inner] and index as [L];
// gather/scatter_add take index with the data's rank (PyTorch semantics).
internal sealed partial class VendorKernels
{
    /// <inheritdoc />
    public void IndexSelect(Tensor src, int axis, Tensor index, Tensor dst)
    {
        var s = new View(src);
        var d = new View(dst);
        var ids = ReadIndices(index, src.Shape[axis], "index_select");
        var (outer, _, inner) = Layout.Around(dst.Shape, axis);
        int srcLength = src.Shape[axis];
        for (long o = 0; o < outer; o++)
        {
            for (int j = 0; j < ids.Length; j++)
            {
                for (long r = 0; r < inner; r++)
                {
                    d.CopyFrom(s, (((o * srcLength) + ids[j]) * inner) + r, (((o * ids.Length) + j) * inner) + r);
                }
            }
        }
    }

    /// <inheritdoc />
    public void IndexAdd(Tensor src, int axis, Tensor index, Tensor dst)
    {
        var s = new View(src);
        var ids = ReadIndices(index, dst.Shape[axis], "index_add");
        var (outer, _, inner) = Layout.Around(src.Shape, axis);
        int dstLength = dst.Shape[axis];
        var acc = new Accumulator(dst);
        for (long o = 0; o < outer; o++)
        {
            for (int j = 0; j < ids.Length; j++)
            {
                for (long r = 0; r < inner; r++)
                {
                    acc.Add((((o * dstLength) + ids[j]) * inner) + r, s, (((o * ids.Length) + j) * inner) + r);
                }
            }
        }
        acc.Store();
    }

    /// <inheritdoc />
    public void Gather(Tensor src, int axis, Tensor index, Tensor dst)
    {
        var s = new View(src);
        var d = new View(dst);
        var targets = ScatterTargets(index, src.Shape, axis, "gather");
        for (long p = 0; p < targets.Length; p++)
        {
            d.CopyFrom(s, targets[p], p);
        }
    }

    /// <inheritdoc />
    public void ScatterAdd(Tensor src, int axis, Tensor index, Tensor dst)
    {
        var s = new View(src);
        var targets = ScatterTargets(index, dst.Shape, axis, "scatter_add");
        var acc = new Accumulator(dst);
        for (long p = 0; p < targets.Length; p++)
        {
            acc.Add(targets[p], s, p);
        }
        acc.Store();
    }

    /// <inheritdoc />
    public void Random(RandomDistribution distribution, Tensor dst, ulong seed, ulong offset, double a, double b)
    {
        var d = new View(dst);
        for (long i = 0; i < d.Count; i++)
        {
            ulong g = offset + (ulong)i;
            if (dst.DType != DType.F64)
            {
                // F32, and the 16-bit types rounded from it: the spec's F32 stream.
                d.Set(i, distribution == RandomDistribution.Uniform
                    ? Philox.Uniform(seed, g, (float)a, (float)b)
                    : Philox.Normal(seed, g, (float)a, (float)b));
                continue;
            }
            d.Set(i, distribution == RandomDistribution.Uniform ? UniformF64(seed, g, a, b) : NormalF64(seed, g, a, b));
        }
    }

    /// <summary>The spec's uniform evaluated in F64: the same u, low + (high − low)·u.</summary>
    private static double UniformF64(ulong seed, ulong g, double low, double high) =>
        low + ((high - low) * ((Philox.Raw(seed, g) >> 8) * (double)Philox.UnitScale));

    /// <summary>The spec's Box–Muller evaluated in F64 from the same lane pair.</summary>
    private static double NormalF64(ulong seed, ulong g, double mean, double std)
    {
        var (x0, x1, x2, x3) = Philox.Block(seed, g / 4);
        int lane = (int)(g % 4);
        (uint p, uint q) = lane < 2 ? (x0, x1) : (x2, x3);
        double u1 = ((p >> 8) + 1) * (double)Philox.UnitScale;
        double u2 = (q >> 8) * (double)Philox.UnitScale;
        double r = Math.Sqrt(-2 * Math.Log(u1));
        double theta = 2 * Math.PI * u2;
        return mean + (std * ((lane & 1) == 0 ? r * Math.Cos(theta) : r * Math.Sin(theta)));
    }

    /// <summary>A 1-D index tensor's values, all checked against [0, <paramref name="length"/>) before anything is written.</summary>
    private static long[] ReadIndices(Tensor index, int length, string op)
    {
        var v = new View(index);
        var ids = new long[v.Count];
        for (long i = 0; i < ids.Length; i++)
        {
            ids[i] = v.GetInt(i);
            if (ids[i] < 0 || ids[i] >= length)
            {
                throw new ArgumentOutOfRangeException(nameof(index), ids[i], $"{op}: index {ids[i]} at position {i} is outside [0, {length})");
            }
        }
        return ids;
    }

    /// <summary>
    /// For gather/scatter: for each position p of <paramref name="index"/>, the flat index into the data tensor
    /// (<paramref name="data"/>) with p's coordinates and index[p] along <paramref name="axis"/>. Checks every index first.
    /// </summary>
    private static long[] ScatterTargets(Tensor index, Shape data, int axis, string op)
    {
        var v = new View(index);
        var shape = index.Shape;
        var strides = shape.Strides();
        var dataStrides = data.Strides();
        var targets = new long[v.Count];
        for (long p = 0; p < targets.Length; p++)
        {
            long id = v.GetInt(p);
            if (id < 0 || id >= data[axis])
            {
                throw new ArgumentOutOfRangeException(nameof(index), id, $"{op}: index {id} at position {p} is outside [0, {data[axis]})");
            }
            long rest = p, at = 0;
            for (int d = 0; d < shape.Rank; d++)
            {
                long coordinate = rest / strides[d];
                rest -= coordinate * strides[d];
                at += (d == axis ? id : coordinate) * dataStrides[d];
            }
            targets[p] = at;
        }
        return targets;
    }

    /// <summary>
    /// Sums into a tensor with one rounding per element at the end (double for floats, wrapping long for
    /// integers), as the contract's "16-bit accumulates in F32" asks at least.
    /// </summary>
    private sealed class Accumulator
    {
        private readonly View _dst;
        private readonly double[]? _floats;
        private readonly long[]? _integers;

        public Accumulator(Tensor dst)
        {
            _dst = new View(dst);
            if (dst.DType.IsFloatingPoint())
            {
                _floats = new double[_dst.Count];
                for (long i = 0; i < _floats.Length; i++)
                {
                    _floats[i] = _dst.Get(i);
                }
            }
            else
            {
                _integers = new long[_dst.Count];
                for (long i = 0; i < _integers.Length; i++)
                {
                    _integers[i] = _dst.GetInt(i);
                }
            }
        }

        public void Add(long at, View src, long from)
        {
            if (_floats is not null)
            {
                _floats[at] += src.Get(from);
            }
            else
            {
                _integers![at] = unchecked(_integers[at] + src.GetInt(from));
            }
        }

        public void Store()
        {
            for (long i = 0; i < _dst.Count; i++)
            {
                if (_floats is not null)
                {
                    _dst.Set(i, _floats[i]);
                }
                else
                {
                    _dst.SetWrapped(i, _integers![i]);
                }
            }
        }
    }
}
