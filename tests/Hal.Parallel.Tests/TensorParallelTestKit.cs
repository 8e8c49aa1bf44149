using System.Collections.Concurrent;

namespace Hal.Parallel.Tests;

// Legend: host matrices are row-major double arrays [rows, cols]; N rows, In/Out features, p tp ranks.

/// <summary>A communicator that counts the collectives passed through it (and forwards them unchanged).</summary>
internal sealed class CountingCommunicator(ICommunicator inner) : ICommunicator
{
    public int AllReduces { get; private set; }

    public int AllGathers { get; private set; }

    public int ReduceScatters { get; private set; }

    public int Others { get; private set; }

    public int Rank => inner.Rank;

    public int Size => inner.Size;

    public string Kind => inner.Kind;

    public IDevice Device => inner.Device;

    public TimeSpan Timeout
    {
        get => inner.Timeout;
        set => inner.Timeout = value;
    }

    public (int AllReduces, int AllGathers, int ReduceScatters, int Others) TakeCounts()
    {
        var counts = (AllReduces, AllGathers, ReduceScatters, Others);
        AllReduces = AllGathers = ReduceScatters = Others = 0;
        return counts;
    }

    public void AllReduce(Tensor send, Tensor recv, ReduceOp op)
    {
        AllReduces++;
        inner.AllReduce(send, recv, op);
    }

    public void AllGather(Tensor send, Tensor recv)
    {
        AllGathers++;
        inner.AllGather(send, recv);
    }

    public void ReduceScatter(Tensor send, Tensor recv, ReduceOp op)
    {
        ReduceScatters++;
        inner.ReduceScatter(send, recv, op);
    }

    public void Broadcast(Tensor tensor, int root)
    {
        Others++;
        inner.Broadcast(tensor, root);
    }

    public void AllToAll(Tensor send, Tensor recv)
    {
        Others++;
        inner.AllToAll(send, recv);
    }

    public void Send(Tensor tensor, int peer, int tag = 0)
    {
        Others++;
        inner.Send(tensor, peer, tag);
    }

    public void Recv(Tensor tensor, int peer, int tag = 0)
    {
        Others++;
        inner.Recv(tensor, peer, tag);
    }

    public void Barrier()
    {
        Others++;
        inner.Barrier();
    }

    public ICollectiveRequest AllReduceAsync(Tensor send, Tensor recv, ReduceOp op)
    {
        AllReduces++;
        return inner.AllReduceAsync(send, recv, op);
    }

    public ICollectiveRequest AllGatherAsync(Tensor send, Tensor recv)
    {
        AllGathers++;
        return inner.AllGatherAsync(send, recv);
    }

    public ICollectiveRequest ReduceScatterAsync(Tensor send, Tensor recv, ReduceOp op)
    {
        ReduceScatters++;
        return inner.ReduceScatterAsync(send, recv, op);
    }

    public ICommunicator? Split(int color, int key)
    {
        Others++;
        return inner.Split(color, key);
    }

    /// <summary>The inner communicator belongs to the caller.</summary>
    public void Dispose()
    {
    }
}

/// <summary>Host-side reference math in double, written as plain loops, and comparisons.</summary>
internal static class HostMath
{
    public static double[] Normal(Random random, int count, double scale = 1)
    {
        var values = new double[count];
        for (int i = 0; i < count; i++)
        {
            double u = 1 - random.NextDouble(), w = random.NextDouble();
            values[i] = scale * Math.Sqrt(-2 * Math.Log(u)) * Math.Cos(2 * Math.PI * w);
        }
        return values;
    }

    /// <summary>c [m, n] = a [m, k]·b [k, n].</summary>
    public static double[] MatMul(double[] a, double[] b, int m, int k, int n)
    {
        var c = new double[m * n];
        for (int i = 0; i < m; i++)
        {
            for (int j = 0; j < n; j++)
            {
                double sum = 0;
                for (int t = 0; t < k; t++)
                {
                    sum += a[(i * k) + t] * b[(t * n) + j];
                }
                c[(i * n) + j] = sum;
            }
        }
        return c;
    }

    /// <summary>[cols, rows] transpose of a [rows, cols].</summary>
    public static double[] Transpose(double[] a, int rows, int cols)
    {
        var t = new double[a.Length];
        for (int i = 0; i < rows; i++)
        {
            for (int j = 0; j < cols; j++)
            {
                t[(j * rows) + i] = a[(i * cols) + j];
            }
        }
        return t;
    }

    /// <summary>Columns [start, start + count) of a [rows, cols].</summary>
    public static double[] Columns(double[] a, int rows, int cols, int start, int count)
    {
        var c = new double[rows * count];
        for (int i = 0; i < rows; i++)
        {
            for (int j = 0; j < count; j++)
            {
                c[(i * count) + j] = a[(i * cols) + start + j];
            }
        }
        return c;
    }

    /// <summary>Rows [start, start + count) of a [rows, cols].</summary>
    public static double[] Rows(double[] a, int cols, int start, int count) => a.AsSpan(start * cols, count * cols).ToArray();

    /// <summary>Σ over rows of a [rows, cols] → [cols].</summary>
    public static double[] ColumnSums(double[] a, int rows, int cols)
    {
        var s = new double[cols];
        for (int i = 0; i < rows; i++)
        {
            for (int j = 0; j < cols; j++)
            {
                s[j] += a[(i * cols) + j];
            }
        }
        return s;
    }

    public static double[] Add(double[] a, double[] b) => a.Zip(b, (x, y) => x + y).ToArray();

    /// <summary>y [rows, cols] = a + bias broadcast over rows.</summary>
    public static double[] AddRow(double[] a, double[] bias, int rows, int cols)
    {
        var y = (double[])a.Clone();
        for (int i = 0; i < rows; i++)
        {
            for (int j = 0; j < cols; j++)
            {
                y[(i * cols) + j] += bias[j];
            }
        }
        return y;
    }

    /// <summary>
    /// Reports actual against expected when ‖actual − expected‖ / max(‖expected‖, normFloor) (Frobenius) exceeds
    /// tolerance. normFloor is for results that are sums of unit-scale terms and may cancel to near zero (a bias gradient
    /// of one element): their rounding error follows the terms' scale, not the result's.
    /// </summary>
    public static void Compare(ConcurrentQueue<string> failures, string what, double[] actual, double[] expected, double tolerance, double normFloor = 0)
    {
        if (actual.Length != expected.Length)
        {
            failures.Enqueue($"{what}: {actual.Length} elements, expected {expected.Length}");
            return;
        }
        double difference = 0, norm = 0;
        int worst = -1;
        double worstError = -1;
        for (int i = 0; i < actual.Length; i++)
        {
            double d = actual[i] - expected[i];
            difference += d * d;
            norm += expected[i] * expected[i];
            if (!(Math.Abs(d) <= worstError))
            {
                worstError = Math.Abs(d);
                worst = i;
            }
        }
        double relative = Math.Sqrt(difference) / Math.Max(Math.Max(Math.Sqrt(norm), normFloor), 1e-300);
        if (!(relative <= tolerance))
        {
            failures.Enqueue($"{what}: relative Frobenius error {relative:E3} > {tolerance:E1}; worst element {worst} is {actual[worst]}, expected {expected[worst]}");
        }
    }
}
