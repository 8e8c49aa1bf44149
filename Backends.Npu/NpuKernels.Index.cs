using Hal.Backends.Npu.Onnx;

namespace Hal.Backends.Npu;

// Index kernels. Shapes: IndexSelect/IndexAdd index [L] along axis; Gather/ScatterAdd index shaped like dst/src.
// Index values are checked on the host (device memory is host memory) before any graph runs, so errors write nothing.
internal sealed unsafe partial class NpuKernels
{
    public void IndexSelect(Tensor src, int axis, Tensor index, Tensor dst)
    {
        CheckIndices("index-select", index, src.Shape[axis], axis);
        if (dst.ElementCount == 0)
        {
            return;
        }
        var (outer, n, inner) = Split(src.Shape, axis);
        string key = Key("index_select", src.DType, index.DType);
        Run(key, () =>
        {
            var g = new OnnxGraph();
            string x = g.Input("x", src.DType, 3);
            string i = g.Input("i", index.DType, 1);
            g.Output("y", g.Node("Gather", [x, i], Attr.Int("axis", 1)), src.DType, 3);
            return g;
        }, [As(src, outer, n, inner), index], [As(dst, outer, index.ElementCount, inner)],
            () => Host.Run([src, index, dst], [dst], (k, m) => k.IndexSelect(m(src)!, axis, m(index)!, m(dst)!)));
    }

    public void IndexAdd(Tensor src, int axis, Tensor index, Tensor dst)
    {
        CheckIndices("index-add", index, dst.Shape[axis], axis);
        if (src.ElementCount == 0 || dst.ElementCount == 0)
        {
            return;
        }
        var (outer, n, inner) = Split(dst.Shape, axis);
        long length = index.ElementCount;
        DType dtype = dst.DType;
        string key = Key("index_add", dtype, index.DType);
        Run(key, () =>
        {
            // The index [L] becomes [1, L, 1] and is expanded to src's [outer, L, inner], so index-add is a scatter-add.
            var g = new OnnxGraph();
            DType ct = ComputeType(dtype);
            string d = g.Cast(g.Input("dst", dtype, 3), dtype, ct);
            string i = g.Input("i", index.DType, 1);
            string s = g.Cast(g.Input("src", dtype, 3), dtype, ct);
            string i3 = g.Node("Unsqueeze", [i, g.Int64s(0, 2)]);
            string expanded = g.Node("Expand", [i3, g.Node("Shape", [s])]);
            string y = g.Node("ScatterElements", [d, expanded, s], Attr.Int("axis", 1), Attr.String("reduction", "add"));
            g.Output("y", g.Cast(y, ct, dtype), dtype, 3);
            return g;
        }, [As(dst, outer, n, inner), index, As(src, outer, length, inner)], [As(dst, outer, n, inner)],
            () => Host.Run([src, index, dst], [dst], (k, m) => k.IndexAdd(m(src)!, axis, m(index)!, m(dst)!)));
    }

    public void Gather(Tensor src, int axis, Tensor index, Tensor dst)
    {
        CheckIndices("gather", index, src.Shape[axis], axis);
        if (dst.ElementCount == 0)
        {
            return;
        }
        string key = Key("gather", src.DType, index.DType, $"r{src.Rank}", $"axis{axis}");
        Run(key, () =>
        {
            var g = new OnnxGraph();
            string x = g.Input("x", src.DType, src.Rank);
            string i = g.Input("i", index.DType, src.Rank);
            g.Output("y", g.Node("GatherElements", [x, i], Attr.Int("axis", axis)), src.DType, src.Rank);
            return g;
        }, [src, index], [dst], () => Host.Run([src, index, dst], [dst], (k, m) => k.Gather(m(src)!, axis, m(index)!, m(dst)!)));
    }

    public void ScatterAdd(Tensor src, int axis, Tensor index, Tensor dst)
    {
        CheckIndices("scatter-add", index, dst.Shape[axis], axis);
        if (src.ElementCount == 0 || dst.ElementCount == 0)
        {
            return;
        }
        DType dtype = dst.DType;
        string key = Key("scatter_add", dtype, index.DType, $"r{dst.Rank}", $"axis{axis}");
        Run(key, () =>
        {
            var g = new OnnxGraph();
            DType ct = ComputeType(dtype);
            string d = g.Cast(g.Input("dst", dtype, dst.Rank), dtype, ct);
            string i = g.Input("i", index.DType, dst.Rank);
            string s = g.Cast(g.Input("src", dtype, dst.Rank), dtype, ct);
            string y = g.Node("ScatterElements", [d, i, s], Attr.Int("axis", axis), Attr.String("reduction", "add"));
            g.Output("y", g.Cast(y, ct, dtype), dtype, dst.Rank);
            return g;
        }, [dst, index, src], [dst], () => Host.Run([src, index, dst], [dst], (k, m) => k.ScatterAdd(m(src)!, axis, m(index)!, m(dst)!)));
    }

    public void Random(RandomDistribution distribution, Tensor dst, ulong seed, ulong offset, double a, double b)
    {
        // Philox4x32-10 has no ONNX operator (RandomUniform's stream is the runtime's own): the host fallback writes it.
        if (dst.ElementCount > 0)
        {
            Host.Run([dst], [dst], (k, m) => k.Random(distribution, m(dst)!, seed, offset, a, b));
        }
    }

    /// <summary>Raises <see cref="ArgumentOutOfRangeException"/> for the first index outside [0, n).</summary>
    private static void CheckIndices(string op, Tensor index, long n, int axis)
    {
        byte* p = (byte*)((HostBuffer)index.Buffer).Pointer + index.OffsetBytes;
        long count = index.ElementCount;
        for (long i = 0; i < count; i++)
        {
            long k = index.DType == DType.I32 ? ((int*)p)[i] : ((long*)p)[i];
            if (k < 0 || k >= n)
            {
                throw new ArgumentOutOfRangeException(nameof(index), k,
                    $"{op}: index {k} at position {i} is outside [0, {n}) along axis {axis}");
            }
        }
    }
}
