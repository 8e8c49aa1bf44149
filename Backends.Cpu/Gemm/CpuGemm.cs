using System.Numerics;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;

namespace Hal.Backends.Cpu.Gemm;

// Legend: C[M, N] = alpha · A[M, K] · B[K, N] + beta · C + bias[N] for one matrix of a batch.
// Loop nest: jc over N in nc panels (pack all K of the B panel, shared by all workers) → ic over M in row chunks of
// about mc rows (taken by workers) → pc over K in kc blocks (each worker packs its own A block) → jr over NR strips →
// ir over MR strips → micro-kernel.

/// <summary>Cache-blocking sizes, in elements.</summary>
/// <param name="Kc">Depth of a packed block: one kc × NR B strip should stay in L1.</param>
/// <param name="Mc">Rows of a packed A block (a multiple of MR): the mc × kc block should stay in L2.</param>
/// <param name="Nc">Columns of a packed B panel (a multiple of NR): the K × nc panel (all k blocks) lives in L3.</param>
internal readonly record struct GemmBlocking(int Kc, int Mc, int Nc);

/// <summary>The packed, register-tiled, multithreaded GEMM engine for one matrix.</summary>
internal static unsafe class CpuGemm
{
    /// <summary>Below this many multiply-adds a plain loop beats packing.</summary>
    internal const long SmallWork = 16 * 16 * 16;

    /// <summary>Below this many multiply-adds one thread does the whole matrix (thread hand-off costs more).</summary>
    internal const long SerialWork = 64 * 64 * 64;

    private const int Alignment = 64;

    /// <summary>Largest packed B panel (all of K × nc), in bytes; it lives in L3 either way.</summary>
    private const long PanelBytes = 32L << 20;

    /// <summary>When non-zero, replaces <see cref="PanelBytes"/> for calls made on this thread (tests use it to reach the K-span path with small shapes).</summary>
    [ThreadStatic]
    internal static long PanelBytesOverride;

    /// <summary>Computes one matrix product; beta = 0 never reads C; <paramref name="bias"/> is null or [N].</summary>
    public static void Run<T, TKernel, TLoad>(
        GemmOperand a, GemmOperand b, T* c, long ldc, int m, int n, int k,
        T alpha, T beta, T* bias, int threads, GemmBlocking blocking)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
        where TKernel : IGemmMicroKernel<T>
        where TLoad : IElementLoader<T>
    {
        if (m == 0 || n == 0)
        {
            return;
        }
        if (k == 0)
        {
            ScaleAndBias(c, ldc, m, n, beta, bias);
            return;
        }
        long work = (long)m * n * k;
        if (m == 1 && (typeof(TLoad) == typeof(F32Loader) || typeof(TLoad) == typeof(F64Loader)))
        {
            RowTimesMatrix(a, b, c, n, k, alpha, beta, bias);
            return;
        }
        if (work <= SmallWork)
        {
            Naive<T, TLoad>(a, b, c, ldc, m, n, k, alpha, beta, bias);
            return;
        }
        if (work <= SerialWork)
        {
            threads = 1;
        }

        int mr = TKernel.Mr;
        int nr = TKernel.Nr;
        // A depth up to 1.5 kc runs as one block: a second block would read and write all of C once more, which costs
        // more than the B strip spilling from L1 to L2 (the LM head's [1024, 50257] C is 200 MB; K there is 384).
        int kcMax = k <= blocking.Kc + (blocking.Kc / 2) ? k : blocking.Kc;
        int ncMax = Math.Min(RoundUp(blocking.Nc, nr), RoundUp(n, nr));
        // The B panel holds every k block of a K span, so workers never wait on each other between k blocks. When
        // K is so deep that the K × nc panel would pass PanelBytes, K runs in spans (a multiple of kc) that each
        // accumulate into C, rather than narrowing nc, which would pack all of A once per narrow panel.
        long spanRows = (PanelBytesOverride > 0 ? PanelBytesOverride : PanelBytes) / sizeof(T) / ncMax / kcMax * kcMax;
        int kSpan = (int)Math.Max(kcMax, Math.Min(k, spanRows));
        T* panelB = (T*)NativeMemory.AlignedAlloc((nuint)((long)kSpan * ncMax * sizeof(T)), Alignment);
        try
        {
            for (int kk = 0; kk < k; kk += kSpan)
            {
                int kLen = Math.Min(kSpan, k - kk);
                bool firstSpan = kk == 0;
                RunSpan<T, TKernel, TLoad>(a, b, c, ldc, m, n, kk, kLen, alpha, firstSpan ? beta : T.One, firstSpan ? bias : null, threads, blocking, kcMax, ncMax, panelB);
            }
        }
        finally
        {
            NativeMemory.AlignedFree(panelB);
        }
    }

    /// <summary>C = alpha · A[:, k0 .. k0+kLen] · B[k0 .. k0+kLen, :] + beta · C + bias, through a panel of kLen × ncMax.</summary>
    private static void RunSpan<T, TKernel, TLoad>(
        GemmOperand a, GemmOperand b, T* c, long ldc, int m, int n, int k0, int kLen,
        T alpha, T beta, T* bias, int threads, GemmBlocking blocking, int kcMax, int ncMax, T* panelB)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
        where TKernel : IGemmMicroKernel<T>
        where TLoad : IElementLoader<T>
    {
        int mr = TKernel.Mr;
        int nr = TKernel.Nr;
        int mcMax = Math.Min(RoundUp(blocking.Mc, mr), RoundUp(m, mr));
        int stripsPerBlock = mcMax / mr;
        for (int jc = 0; jc < n; jc += ncMax)
        {
            int nb = Math.Min(ncMax, n - jc);
            int strips = (nb + nr - 1) / nr;
            // k block pc starts at panelB + pc · ncMax, so a block of kb ≤ kc rows never overlaps the next.
            ForRange(strips, threads, 1, (s0, s1) =>
            {
                for (int pc = 0; pc < kLen; pc += kcMax)
                {
                    GemmPacking.PackB<T, TLoad>(b, k0 + pc, Math.Min(kcMax, kLen - pc), jc, nb, nr, s0, s1, panelB + ((long)pc * ncMax));
                }
            });

            // Workers take row chunks of about mc rows from a shared counter and run every k block of a chunk:
            // balanced when the cores are free, a descheduled worker simply takes fewer chunks, and the chunk's
            // rows of C stay in L2 between k blocks.
            int mStrips = (m + mr - 1) / mr;
            int chunks = Math.Max(1, (mStrips + stripsPerBlock - 1) / stripsPerBlock);
            chunks = RoundUp(chunks, Math.Min(threads, chunks));
            int stripsPerChunk = (mStrips + chunks - 1) / chunks;
            int nextChunk = 0;
            RunWorkers(Math.Min(threads, chunks), () =>
            {
                T* packA = (T*)NativeMemory.AlignedAlloc((nuint)((long)kcMax * stripsPerChunk * mr * sizeof(T)), Alignment);
                try
                {
                    for (int chunk = Interlocked.Increment(ref nextChunk) - 1; chunk < chunks; chunk = Interlocked.Increment(ref nextChunk) - 1)
                    {
                        int ic = chunk * stripsPerChunk * mr;
                        int mb = Math.Min(stripsPerChunk * mr, m - ic);
                        if (mb <= 0)
                        {
                            continue;
                        }
                        for (int pc = 0; pc < kLen; pc += kcMax)
                        {
                            int kb = Math.Min(kcMax, kLen - pc);
                            // Only the first k block applies beta and the bias; later blocks accumulate into C.
                            bool first = pc == 0;
                            T betaBlock = first ? beta : T.One;
                            T* biasBlock = first && bias != null ? bias + jc : null;
                            GemmPacking.PackA<T, TLoad>(a, ic, mb, k0 + pc, kb, mr, packA);
                            MacroKernel<T, TKernel>(packA, panelB + ((long)pc * ncMax), c + (ic * ldc) + jc, ldc, mb, nb, kb, alpha, betaBlock, biasBlock);
                        }
                    }
                }
                finally
                {
                    NativeMemory.AlignedFree(packA);
                }
            });
        }
    }

    /// <summary>All micro-tiles of one packed A block against one packed B panel.</summary>
    private static void MacroKernel<T, TKernel>(T* packA, T* panelB, T* c, long ldc, int mb, int nb, int kb, T alpha, T beta, T* bias)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
        where TKernel : IGemmMicroKernel<T>
    {
        int mr = TKernel.Mr;
        int nr = TKernel.Nr;
        int stripsA = (mb + mr - 1) / mr;
        long stripBytes = (long)kb * nr * sizeof(T);
        // Cache lines of the next B strip to prefetch into L2 per A strip, so that the whole next strip arrives
        // while the current one is in use rather than on the first tile that reads it (the panel itself lives in L3).
        // Measured at 2048³ on the AVX-512 machine of docs/performance.md: 219 against 186 GFLOP/s (medians of five
        // interleaved runs).
        long linesPerA = ((stripBytes / 64) + stripsA - 1) / stripsA;
        for (int jr = 0; jr < nb; jr += nr)
        {
            int cols = Math.Min(nr, nb - jr);
            T* stripB = panelB + ((long)jr * kb);
            byte* nextB = jr + nr < nb && Sse.IsSupported ? (byte*)(stripB + ((long)nr * kb)) : null;
            T* biasTile = bias != null ? bias + jr : null;
            long line = 0;
            for (int ir = 0; ir < mb; ir += mr)
            {
                int rows = Math.Min(mr, mb - ir);
                if (nextB != null)
                {
                    long end = Math.Min(line + linesPerA, stripBytes / 64);
                    for (; line < end; line++)
                    {
                        Sse.Prefetch1(nextB + (line * 64));
                    }
                }
                TKernel.Run(kb, packA + ((long)ir * kb), stripB, c + (ir * ldc) + jr, ldc, rows, cols, alpha, beta, biasTile);
            }
        }
    }

    /// <summary>
    /// One output row (M = 1, e.g. a bias gradient as onesᵀ·dY): packing B would cost as much as the product, so B is
    /// read once in place: rows of B accumulated into the row (row-major B) or one dot product per column (transposed B).
    /// </summary>
    private static void RowTimesMatrix<T>(GemmOperand a, GemmOperand b, T* c, int n, int k, T alpha, T beta, T* bias)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        T* aRow = (T*)a.Data;
        T* acc = (T*)NativeMemory.AlignedAlloc((nuint)((long)n * sizeof(T)), Alignment);
        try
        {
            int w = Vector<T>.Count;
            if (b.ColStride == 1)
            {
                new Span<T>(acc, n).Clear();
                for (int p = 0; p < k; p++)
                {
                    T ap = aRow[a.Index(0, p)];
                    T* bRow = (T*)b.Data + (p * b.RowStride);
                    var va = new Vector<T>(ap);
                    int j = 0;
                    for (; j + w <= n; j += w)
                    {
                        ((va * Vector.Load(bRow + j)) + Vector.Load(acc + j)).Store(acc + j);
                    }
                    for (; j < n; j++)
                    {
                        acc[j] = T.FusedMultiplyAdd(ap, bRow[j], acc[j]);
                    }
                }
            }
            else
            {
                for (int j = 0; j < n; j++)
                {
                    T* bCol = (T*)b.Data + (j * b.ColStride);
                    T sum = T.Zero;
                    if (a.ColStride == 1 && b.RowStride == 1)
                    {
                        var vs = Vector<T>.Zero;
                        int p = 0;
                        for (; p + w <= k; p += w)
                        {
                            vs += Vector.Load(aRow + p) * Vector.Load(bCol + p);
                        }
                        sum = Vector.Sum(vs);
                        for (; p < k; p++)
                        {
                            sum = T.FusedMultiplyAdd(aRow[p], bCol[p], sum);
                        }
                    }
                    else
                    {
                        for (int p = 0; p < k; p++)
                        {
                            sum = T.FusedMultiplyAdd(aRow[a.Index(0, p)], bCol[p * b.RowStride], sum);
                        }
                    }
                    acc[j] = sum;
                }
            }
            for (int j = 0; j < n; j++)
            {
                T v = alpha * acc[j];
                if (beta != T.Zero)
                {
                    v += beta * c[j];
                }
                c[j] = bias != null ? v + bias[j] : v;
            }
        }
        finally
        {
            NativeMemory.AlignedFree(acc);
        }
    }

    /// <summary>C = beta · C + bias: the whole product when K = 0.</summary>
    private static void ScaleAndBias<T>(T* c, long ldc, int m, int n, T beta, T* bias)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        for (int i = 0; i < m; i++)
        {
            T* row = c + (i * ldc);
            for (int j = 0; j < n; j++)
            {
                T v = beta == T.Zero ? T.Zero : beta * row[j];
                row[j] = bias != null ? v + bias[j] : v;
            }
        }
    }

    /// <summary>Unpacked triple loop for tiny products, accumulating in the compute type.</summary>
    private static void Naive<T, TLoad>(GemmOperand a, GemmOperand b, T* c, long ldc, int m, int n, int k, T alpha, T beta, T* bias)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
        where TLoad : IElementLoader<T>
    {
        for (int i = 0; i < m; i++)
        {
            T* row = c + (i * ldc);
            for (int j = 0; j < n; j++)
            {
                T acc = T.Zero;
                for (int p = 0; p < k; p++)
                {
                    acc += TLoad.Load(a.Data, a.Index(i, p)) * TLoad.Load(b.Data, b.Index(p, j));
                }
                T v = alpha * acc;
                if (beta != T.Zero)
                {
                    v += beta * row[j];
                }
                row[j] = bias != null ? v + bias[j] : v;
            }
        }
    }

    /// <summary>Splits [0, count) into one contiguous range per worker.</summary>
    private static void ForRange(int count, int workers, int minPerWorker, Action<int, int> body)
    {
        workers = Math.Max(1, Math.Min(workers, count / Math.Max(1, minPerWorker)));
        if (workers <= 1)
        {
            body(0, count);
            return;
        }
        Parallel.For(0, workers, new ParallelOptions { MaxDegreeOfParallelism = workers }, w =>
        {
            int s0 = (int)((long)count * w / workers);
            int s1 = (int)((long)count * (w + 1) / workers);
            body(s0, s1);
        });
    }

    /// <summary>Runs <paramref name="body"/> on <paramref name="workers"/> threads at once (the caller's among them).</summary>
    private static void RunWorkers(int workers, Action body)
    {
        if (workers <= 1)
        {
            body();
            return;
        }
        Parallel.For(0, workers, new ParallelOptions { MaxDegreeOfParallelism = workers }, _ => body());
    }

    private static int RoundUp(int value, int multiple) => (value + multiple - 1) / multiple * multiple;
}
