namespace Hal.Backends.Cpu;

/// <summary>
/// Chunked parallel loops over index ranges. Work below <see cref="MinElementsPerThread"/> per thread stays on the
/// calling thread, because waking workers costs more than small kernels take.
/// </summary>
internal static class CpuParallel
{
    /// <summary>Below this many elements a kernel runs single-threaded; also the smallest chunk handed to a worker.</summary>
    internal const long MinElementsPerThread = 32 * 1024;

    /// <summary>A body that processes items [start, end).</summary>
    internal delegate void RangeBody(long start, long end);

    /// <summary>
    /// Runs <paramref name="body"/> over [0, <paramref name="count"/>) split into at most <paramref name="threads"/> chunks.
    /// <paramref name="elementsPerItem"/> weighs an item against the threshold (a row of 100 elements counts 100);
    /// chunk starts are multiples of <paramref name="alignItems"/> (16 floats = one 64-byte line).
    /// </summary>
    internal static void For(int threads, long count, RangeBody body, long elementsPerItem = 1, long alignItems = 1)
    {
        if (count <= 0)
        {
            return;
        }
        long totalElements = count * Math.Max(1, elementsPerItem);
        long chunks = Math.Min(threads, totalElements / MinElementsPerThread);
        chunks = Math.Min(chunks, count);
        if (chunks <= 1)
        {
            body(0, count);
            return;
        }
        long perChunk = (count + chunks - 1) / chunks;
        perChunk = (perChunk + alignItems - 1) / alignItems * alignItems;
        int n = (int)((count + perChunk - 1) / perChunk);
        if (n <= 1)
        {
            body(0, count);
            return;
        }
        Parallel.For(0, n, new ParallelOptions { MaxDegreeOfParallelism = threads }, c =>
        {
            long start = c * perChunk;
            long end = Math.Min(count, start + perChunk);
            if (start < end)
            {
                body(start, end);
            }
        });
    }

    /// <summary>The alignment, in elements, that puts chunk starts on 64-byte lines for an element of <paramref name="elementBytes"/>.</summary>
    internal static long LineItems(int elementBytes) => Math.Max(1, 64 / elementBytes);
}
