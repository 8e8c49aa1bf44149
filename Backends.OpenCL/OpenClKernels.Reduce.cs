namespace Hal.Backends.OpenCL;

// Reduce and ArgMax over x[outer, n, inner] → y[outer, 1, inner]. inner == 1: one work-group per output row
// (local-memory tree); inner > 1: one work-item per output walking the axis.
internal sealed partial class OpenClKernels
{
    private const string RowsFile = "rows.cl";

    public void Reduce(ReduceOp op, Tensor x, int axis, Tensor y)
    {
        var (outer, n, inner) = Split(x.Shape, axis);
        if (y.ElementCount == 0)
        {
            return;
        }
        string options = Options(x.DType);
        if (inner == 1)
        {
            int group = RowGroup(n);
            LaunchRows(RowsFile, options, "reduce_rows", outer, group, KArg.I32((int)op), Mem(x), Off(x), Mem(y), Off(y), KArg.I64(n),
                KArg.Local(group * AccSize(x.DType)));
            return;
        }
        Launch1D(RowsFile, options, "reduce_strided", outer * inner, KArg.I32((int)op), Mem(x), Off(x), Mem(y), Off(y),
            KArg.I64(outer), KArg.I64(n), KArg.I64(inner));
    }

    public void ArgMax(Tensor x, int axis, Tensor indices)
    {
        var (outer, n, inner) = Split(x.Shape, axis);
        Launch1D(RowsFile, Options(x.DType), "argmax", outer * inner, Mem(x), Off(x), Mem(indices), Off(indices),
            KArg.I64(outer), KArg.I64(n), KArg.I64(inner));
    }

    /// <summary>Bytes of the ACC type of a program (the local-memory slot of one work-item).</summary>
    private static int AccSize(DType dtype) => dtype switch
    {
        DType.F16 or DType.BF16 => 4,
        _ => dtype.SizeInBytes(),
    };
}
