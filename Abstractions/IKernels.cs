namespace Hal;

/// <summary>
/// Tier 1: the kernels every backend must implement. These are hooks: <see cref="Ops"/> has already checked that
/// every tensor is on this device, not disposed, of a supported dtype, and of the shapes documented here,
/// so implementations trust their inputs. Tensors are contiguous row-major views; outputs never alias inputs
/// unless stated. 16-bit float dtypes compute and accumulate in F32; F64 computes in F64.
/// Integer-to-float casts round to nearest even; float-to-integer casts truncate toward zero and saturate, NaN → 0;
/// integer-to-narrower-integer casts saturate (300 → i8 is 127); anything to Bool is (x != 0); Bool to anything is 0 or 1.
/// Integer Div truncates toward zero and a division by zero gives 0. Index kernels raise
/// <see cref="ArgumentOutOfRangeException"/> naming the index, its position and the valid range before writing anything.
/// Freeing a buffer waits for queued work that uses it, so temporaries may be disposed right after queuing.
/// </summary>
public interface IKernels
{
    /// <summary>dst[i] = value, converted to dst's dtype as a cast would.</summary>
    void Fill(Tensor dst, double value);

    /// <summary>dst = src; same dtype and element count (shapes may differ). src and dst may be the same view.</summary>
    void Copy(Tensor src, Tensor dst);

    /// <summary>dst = (dst dtype) src; same element count.</summary>
    void Cast(Tensor src, Tensor dst);

    /// <summary>y = op(x); same shape and dtype; y may be x (in place).</summary>
    void Unary(UnaryOp op, Tensor x, Tensor y);

    /// <summary>y = a op b with NumPy broadcasting; y's shape is the broadcast shape; one dtype; y may be a or b when it has their shape.</summary>
    void Binary(BinaryOp op, Tensor a, Tensor b, Tensor y);

    /// <summary>y = reduce of x along <paramref name="axis"/> (0..rank-1); y has x's shape with that axis set to 1. Mean of an empty axis is NaN; Max/Min of one is −Inf/+Inf; Sum is 0.</summary>
    void Reduce(ReduceOp op, Tensor x, int axis, Tensor y);

    /// <summary>indices = argmax of x along <paramref name="axis"/> (first index of the maximum; a NaN counts as the maximum); indices is I64 with x's shape and that axis set to 1. The axis is not empty.</summary>
    void ArgMax(Tensor x, int axis, Tensor indices);

    /// <summary>
    /// Batched GEMM: c[b] = alpha · op(a[b]) · op(b[b]) + beta · c[b] (+ bias broadcast over rows).
    /// a is [..., M, K] ([..., K, M] when transA), b is [..., K, N] ([..., N, K] when transB), c is [..., M, N];
    /// batch = product of c's leading dims; a's or b's batch is either c's or 1 (broadcast). bias, when given, is [N].
    /// beta = 0 ignores c's previous contents (NaN included). One dtype; 16-bit inputs accumulate in F32.
    /// </summary>
    void Gemm(Tensor a, Tensor b, Tensor c, bool transA, bool transB, double alpha, double beta, Tensor? bias);

    /// <summary>
    /// dst = src.index_select(axis, index): dst has src's shape with dimension <paramref name="axis"/> = index length;
    /// index is 1-D I32/I64 with values in [0, src.Shape[axis]).
    /// </summary>
    void IndexSelect(Tensor src, int axis, Tensor index, Tensor dst);

    /// <summary>dst.index_add_(axis, index, src): for each i, the slice i of src along axis is added into slice index[i] of dst. Repeated indices accumulate.</summary>
    void IndexAdd(Tensor src, int axis, Tensor index, Tensor dst);

    /// <summary>
    /// dst = src.gather(axis, index) (PyTorch semantics): index has src's rank and shape except along axis;
    /// dst has index's shape; dst[..., j, ...] = src[..., index[..., j, ...], ...].
    /// </summary>
    void Gather(Tensor src, int axis, Tensor index, Tensor dst);

    /// <summary>dst.scatter_add_(axis, index, src) (PyTorch semantics): index and src have one shape; repeated indices accumulate.</summary>
    void ScatterAdd(Tensor src, int axis, Tensor index, Tensor dst);

    /// <summary>
    /// Fills dst with Philox4x32-10 numbers (see <see cref="Numerics.Philox"/> for the exact stream):
    /// element i uses global counter <paramref name="offset"/> + i. Uniform in [a, b); Normal with mean a, std b. Float dtypes.
    /// </summary>
    void Random(RandomDistribution distribution, Tensor dst, ulong seed, ulong offset, double a, double b);
}
