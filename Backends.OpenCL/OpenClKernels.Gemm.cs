namespace Hal.Backends.OpenCL;

// Batched GEMM (gemm.cl). Legend: c [batch, M, N]; a [batchA, M, K] or [batchA, K, M] (transA); b [batchB, K, N]
// or [batchB, N, K] (transB); batchA/batchB are 1 (broadcast, stride 0) or batch. Grid: (⌈N/TN⌉·WX, ⌈M/TM⌉·WY, batch).
internal sealed partial class OpenClKernels
{
    /// <summary>The tiling in use (from the options or the device's limits).</summary>
    internal GemmTiling Tiling { get; }

    /// <summary>
    /// True on CPU devices without a tiling override: there local memory is ordinary cache and work-group barriers
    /// make the implementation spill each work-item's registers, so the barrier-free kernel is used instead.
    /// HAL_OPENCL_GEMM_KERNEL=tiled|direct overrides the choice.
    /// </summary>
    internal bool UseDirectGemm { get; set; }

    /// <summary>
    /// A tiling that fits the device: the largest of 64×64, 32×32, 16×16 tiles with 4×4 register blocks whose
    /// work-group (tile / block) fits the maximum work-group size and whose two F64 tiles fit half the local memory;
    /// zero fields of <paramref name="requested"/> are filled from that choice.
    /// </summary>
    internal static GemmTiling ChooseTiling(OpenClDeviceInfo info, GemmTiling? requested)
    {
        GemmTiling chosen = new(16, 16, 16, 4, 4);
        foreach (var t in (ReadOnlySpan<GemmTiling>)[new(64, 64, 16, 4, 4), new(32, 32, 16, 4, 4), new(16, 16, 16, 4, 4)])
        {
            int group = t.TileM / t.BlockM * (t.TileN / t.BlockN);
            long local = (long)(t.TileM + t.TileN) * t.TileK * 8;
            if (group <= info.MaxWorkGroupSize && local <= info.LocalMemoryBytes / 2)
            {
                chosen = t;
                break;
            }
        }
        if (requested is not { } r)
        {
            return chosen;
        }
        var merged = new GemmTiling(
            r.TileM > 0 ? r.TileM : chosen.TileM,
            r.TileN > 0 ? r.TileN : chosen.TileN,
            r.TileK > 0 ? r.TileK : chosen.TileK,
            r.BlockM > 0 ? r.BlockM : chosen.BlockM,
            r.BlockN > 0 ? r.BlockN : chosen.BlockN);
        if (merged.TileM % merged.BlockM != 0 || merged.TileN % merged.BlockN != 0 || merged.TileK % 4 != 0 || merged.TileM % 4 != 0 || merged.TileN % 4 != 0)
        {
            throw new ArgumentException($"GEMM tiling {merged}: tiles must be multiples of their register blocks and of 4");
        }
        if (merged.TileM / merged.BlockM * (merged.TileN / merged.BlockN) > info.MaxWorkGroupSize)
        {
            throw new ArgumentException($"GEMM tiling {merged} needs a work-group larger than the device's {info.MaxWorkGroupSize}");
        }
        return merged;
    }

    public void Gemm(Tensor a, Tensor b, Tensor c, bool transA, bool transB, double alpha, double beta, Tensor? bias)
    {
        long m = c.Shape[-2], n = c.Shape[-1];
        long k = transA ? a.Shape[-2] : a.Shape[-1];
        long batch = c.Shape.Product(0, c.Rank - 2);
        if (c.ElementCount == 0)
        {
            return;
        }
        // K = 0 runs no tile step: c = beta·c (+ bias), an empty sum.
        long batchA = a.Shape.Product(0, a.Rank - 2), batchB = b.Shape.Product(0, b.Rank - 2);
        var t = Tiling;
        string options = Options(a.DType, $"-DTM={t.TileM} -DTN={t.TileN} -DTK={t.TileK} -DRM={t.BlockM} -DRN={t.BlockN}");
        int wx = t.TileN / t.BlockN, wy = t.TileM / t.BlockM;
        long gx = (n + t.TileN - 1) / t.TileN * wx, gy = (m + t.TileM - 1) / t.TileM * wy;
        var biasT = bias ?? c;
        if (UseDirectGemm)
        {
            // CPU devices: the barrier-free 4×8 register-block kernel; the runtime picks the work-group size.
            Launch("gemm.cl", options, "gemm_direct", [(nuint)((n + 7) / 8), (nuint)((m + 3) / 4), (nuint)batch], [],
                [Mem(a), Off(a), Mem(b), Off(b), Mem(c), Off(c), Mem(biasT), Off(biasT), KArg.I32(bias is null ? 0 : 1),
                 KArg.I32(transA ? 1 : 0), KArg.I32(transB ? 1 : 0), KArg.I64(m), KArg.I64(n), KArg.I64(k),
                 KArg.I64(batchA == 1 ? 0 : m * k), KArg.I64(batchB == 1 ? 0 : k * n), Scalar(a.DType, alpha), Scalar(a.DType, beta)]);
            return;
        }
        Launch("gemm.cl", options, "gemm", [(nuint)gx, (nuint)gy, (nuint)batch], [(nuint)wx, (nuint)wy, 1],
            [Mem(a), Off(a), Mem(b), Off(b), Mem(c), Off(c), Mem(biasT), Off(biasT), KArg.I32(bias is null ? 0 : 1),
             KArg.I32(transA ? 1 : 0), KArg.I32(transB ? 1 : 0), KArg.I64(m), KArg.I64(n), KArg.I64(k),
             KArg.I64(batchA == 1 ? 0 : m * k), KArg.I64(batchB == 1 ? 0 : k * n), Scalar(a.DType, alpha), Scalar(a.DType, beta)]);
    }
}
