namespace Hal.Backends.OpenCL;

// IndexSelect, IndexAdd, Gather, ScatterAdd (index.cl). Legend: data [outer, S, inner] around the axis, index
// length L (IndexSelect/IndexAdd) or index [outer, L, inner] (Gather/ScatterAdd). Indices are read back and
// range-checked before anything is written. F16/BF16 accumulate in F32 and round once (destination-parallel kernels).
internal sealed partial class OpenClKernels
{
    private const string IndexFile = "index.cl";

    public void IndexSelect(Tensor src, int axis, Tensor index, Tensor dst)
    {
        var (outer, s, inner) = Split(src.Shape, axis);
        CheckIndices("index-select", index, s, negativeIgnored: false, axis);
        long len = index.ElementCount;
        Launch1D(IndexFile, Options(src.DType, IndexOption(index)), "index_select", outer * len * inner,
            Mem(src), Off(src), Mem(index), Off(index), Mem(dst), Off(dst), KArg.I64(outer), KArg.I64(s), KArg.I64(len), KArg.I64(inner));
    }

    public void IndexAdd(Tensor src, int axis, Tensor index, Tensor dst)
    {
        var (outer, s, inner) = Split(dst.Shape, axis);
        CheckIndices("index-add", index, s, negativeIgnored: false, axis);
        long len = index.ElementCount;
        if (len == 0)
        {
            return;
        }
        // 16-bit dtypes accumulate in F32 and round once per destination element.
        bool once = src.DType.Is16Bit();
        Launch1D(IndexFile, Options(src.DType, IndexOption(index)), once ? "index_add_once" : "index_add", once ? outer * s * inner : outer * inner,
            Mem(src), Off(src), Mem(index), Off(index), Mem(dst), Off(dst), KArg.I64(outer), KArg.I64(s), KArg.I64(len), KArg.I64(inner));
    }

    public void Gather(Tensor src, int axis, Tensor index, Tensor dst)
    {
        var (outer, s, inner) = Split(src.Shape, axis);
        CheckIndices("gather", index, s, negativeIgnored: false, axis);
        long len = index.Shape[axis];
        Launch1D(IndexFile, Options(src.DType, IndexOption(index)), "gather", index.ElementCount,
            Mem(src), Off(src), Mem(index), Off(index), Mem(dst), Off(dst), KArg.I64(outer), KArg.I64(s), KArg.I64(len), KArg.I64(inner));
    }

    public void ScatterAdd(Tensor src, int axis, Tensor index, Tensor dst)
    {
        var (outer, s, inner) = Split(dst.Shape, axis);
        CheckIndices("scatter-add", index, s, negativeIgnored: false, axis);
        long len = index.Shape[axis];
        if (len == 0)
        {
            return;
        }
        bool once = src.DType.Is16Bit();
        Launch1D(IndexFile, Options(src.DType, IndexOption(index)), once ? "scatter_add_once" : "scatter_add", once ? outer * s * inner : outer * inner,
            Mem(src), Off(src), Mem(index), Off(index), Mem(dst), Off(dst), KArg.I64(outer), KArg.I64(s), KArg.I64(len), KArg.I64(inner));
    }
}
