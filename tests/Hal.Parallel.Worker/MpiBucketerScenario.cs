namespace Hal.Parallel.Worker;

// Shape legend: count = slab elements; e = elements per bucket.

/// <summary>
/// GradientBucketer over MPI: each rank fills its slab with small integers (|v| ≤ 5, so sums and the mean over 2 or
/// 4 ranks are exact in F32 and BF16), reports readiness its own way, and checks the averaged slab against the
/// plain-loop mean. Prints one PASS or FAIL line per rank and case.
/// </summary>
internal static class MpiBucketerScenario
{
    public static bool Run(ICommunicator comm, Ops ops)
    {
        bool ok = true;
        (long Count, long Elements)[] cases = [(1, 1), (1_001, 37), (20_000, 9_000)];
        foreach (var dtype in (DType[])[DType.F32, DType.BF16])
        {
            foreach (var (count, e) in cases)
            {
                ok &= RunCase(comm, ops, dtype, count, e);
            }
        }
        return ok;
    }

    private static double Value(int rank, long i, int step) => ((rank * 7 + i * 3 + step * 5 + 1) % 11) - 5;

    private static bool RunCase(ICommunicator comm, Ops ops, DType dtype, long count, long bucketElements)
    {
        string what = $"rank {comm.Rank}/{comm.Size} {dtype.Name()} count {count} e {bucketElements}";
        try
        {
            using var slab = ops.Zeros(new Shape((int)count), dtype);
            using var bucketer = new GradientBucketer(comm, slab, bucketElements * dtype.SizeInBytes());
            for (int step = 0; step < 2; step++)
            {
                var values = new double[count];
                for (long i = 0; i < count; i++)
                {
                    values[i] = Value(comm.Rank, i, step);
                }
                ops.Upload(values, slab);
                bucketer.BeginBackward();
                // Rank 0 reports nothing (all in FinishBackward); the others in eight steps.
                if (comm.Rank != 0)
                {
                    for (int k = 7; k >= 0; k--)
                    {
                        bucketer.GradientsReadyFrom(count * k / 8);
                    }
                }
                bucketer.FinishBackward();
                var actual = ops.ToDoubleArray(slab);
                for (long i = 0; i < count; i++)
                {
                    double sum = 0;
                    for (int r = 0; r < comm.Size; r++)
                    {
                        sum += Value(r, i, step);
                    }
                    double expected = sum / comm.Size;
                    if (actual[i] != expected)
                    {
                        Console.WriteLine($"FAIL {what} step {step}: element {i} is {actual[i]}, expected {expected}");
                        return false;
                    }
                }
            }
            if (bucketer.BytesReduced != 2 * count * dtype.SizeInBytes())
            {
                Console.WriteLine($"FAIL {what}: {bucketer.BytesReduced} bytes reduced, expected {2 * count * dtype.SizeInBytes()}");
                return false;
            }
            Console.WriteLine($"PASS {what}");
            return true;
        }
        catch (HalException e)
        {
            Console.WriteLine($"FAIL {what}: {e.GetType().Name}: {e.Message}");
            return false;
        }
    }
}
