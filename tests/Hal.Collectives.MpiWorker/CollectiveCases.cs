using Hal.Collectives.Mpi;
using Hal.Numerics;

namespace Hal.Collectives.MpiWorker;

/// <summary>
/// Every collective × dtype × reduction × size, checked against plain double loops. Inputs are small integers in
/// [−30, 30] (nccl-tests' idea): any sum over up to 8 ranks is at most 240 in magnitude, exact in every dtype
/// (BF16 holds integers up to 256 exactly), so sum, max and min must match bit for bit whatever the reduction order.
/// Mean is the exact sum divided by Size: floats within 2 ULP (one rounding of the division, plus one more for the
/// 16-bit round trip through F32), integers truncate toward zero exactly.
/// Shapes: n = elements per rank, S = ranks; reduce-scatter/all-to-all send [S·n], all-gather recv [S·n].
/// </summary>
internal sealed class CollectiveCases(MpiCommunicator comm, IDevice device)
{
    private static readonly DType[] DTypes = [DType.F32, DType.F64, DType.F16, DType.BF16, DType.I32, DType.I64];
    private static readonly ReduceOp[] Reductions = [ReduceOp.Sum, ReduceOp.Mean, ReduceOp.Max, ReduceOp.Min];

    private readonly Ops _ops = new(device);
    private int _cases;
    private int _failures;

    /// <summary>Stage every tensor through host buffers (the path of devices without host pointers).</summary>
    public bool Staged { get; init; }

    private int Rank => comm.Rank;

    private int Size => comm.Size;

    public bool Run()
    {
        comm.StageThroughHost = Staged;
        // 0, 1, odd, odd and prime (not divisible by 2 or 4 ranks): every variant.
        foreach (DType dtype in DTypes)
        {
            foreach (int n in (int[])[0, 1, 7, 13])
            {
                int salt = _cases;
                foreach (ReduceOp op in Reductions)
                {
                    AllReduce(dtype, n, op, inPlace: false, salt);
                    AllReduce(dtype, n, op, inPlace: true, salt);
                    ReduceScatter(dtype, n, op, salt);
                }
                AllReduceAsync(dtype, n, salt);
                Broadcast(dtype, n, root: 0, salt);
                Broadcast(dtype, n, root: Size - 1, salt);
                AllGather(dtype, n, salt);
                AllToAll(dtype, n, salt);
                SendRecvPairs(dtype, n, salt);
            }
        }

        // One large message per collective and dtype: 1M elements in the largest tensor of the call (64K when staged,
        // which only adds two copies). The small sizes above already cover every variant; this covers MPI's
        // large-message algorithms (segmented, pipelined) and the 16-bit ops over many elements.
        int large = Staged ? 1 << 16 : 1 << 20;
        foreach (DType dtype in DTypes)
        {
            int salt = _cases;
            foreach (ReduceOp op in Reductions)
            {
                AllReduce(dtype, large, op, inPlace: op == ReduceOp.Mean, salt);
            }
            ReduceScatter(dtype, large / Size, ReduceOp.Sum, salt);
            Broadcast(dtype, large, root: Size - 1, salt);
            AllGather(dtype, large / Size, salt);
            AllToAll(dtype, large / Size, salt);
            SendRecvPairs(dtype, large, salt);
        }
        comm.Barrier();
        Case("barrier", () => null);
        using var failures = _ops.FromArray(new double[] { _failures }, new Shape(1), DType.I32);
        comm.AllReduce(failures, failures, ReduceOp.Sum);
        int total = (int)_ops.ToDoubleArray(failures)[0];
        if (Rank == 0)
        {
            Console.WriteLine(total == 0 ? $"OK {_cases}" : $"FAIL {total} failed checks over {Size} ranks, {_cases} cases");
        }
        return total == 0;
    }

    /// <summary>The input value of element <paramref name="i"/> on rank <paramref name="rank"/>: an integer in [−30, 30].</summary>
    private static double Value(int rank, long i, int salt) => ((i * 7) + (rank * 13) + (salt * 5)) % 61 - 30;

    private Tensor Make(DType dtype, long count, Func<long, double> value)
    {
        var values = new double[count];
        for (long i = 0; i < count; i++)
        {
            values[i] = value(i);
        }
        return _ops.FromArray(values, new Shape(checked((int)count)), dtype);
    }

    private double Reduce(ReduceOp op, Func<int, double> valueOfRank, DType dtype)
    {
        double acc = valueOfRank(0);
        for (int r = 1; r < Size; r++)
        {
            double v = valueOfRank(r);
            acc = op switch
            {
                ReduceOp.Max => Math.Max(acc, v),
                ReduceOp.Min => Math.Min(acc, v),
                _ => acc + v,
            };
        }
        if (op != ReduceOp.Mean)
        {
            return acc;
        }
        // + 0.0 turns the −0 of a truncated small negative mean into the integer 0.
        return dtype is DType.I32 or DType.I64 ? Math.Truncate(acc / Size) + 0.0 : acc / Size;
    }

    private void AllReduce(DType dtype, int n, ReduceOp op, bool inPlace, int salt)
    {
        string name = $"all-reduce {(inPlace ? "in-place" : "out-of-place")} {dtype.Name()} {op} n={n}";
        Case(name, () =>
        {
            using var send = Make(dtype, n, i => Value(Rank, i, salt));
            using var recv = inPlace ? null : Make(dtype, n, _ => 99);
            var target = recv ?? send;
            comm.AllReduce(send, target, op);
            return Compare(_ops.ToDoubleArray(target), i => Reduce(op, r => Value(r, i, salt), dtype), dtype, op == ReduceOp.Mean);
        });
    }

    private void AllReduceAsync(DType dtype, int n, int salt)
    {
        Case($"all-reduce async {dtype.Name()} Sum n={n}", () =>
        {
            using var send = Make(dtype, n, i => Value(Rank, i, salt));
            using var recv = Make(dtype, n, _ => 99);
            comm.AllReduceAsync(send, recv, ReduceOp.Sum).Wait();
            return Compare(_ops.ToDoubleArray(recv), i => Reduce(ReduceOp.Sum, r => Value(r, i, salt), dtype), dtype, mean: false);
        });
    }

    private void ReduceScatter(DType dtype, int n, ReduceOp op, int salt)
    {
        Case($"reduce-scatter {dtype.Name()} {op} n={n}", () =>
        {
            using var send = Make(dtype, (long)Size * n, j => Value(Rank, j, salt));
            using var recv = Make(dtype, n, _ => 99);
            comm.ReduceScatter(send, recv, op);
            return Compare(_ops.ToDoubleArray(recv), i => Reduce(op, r => Value(r, ((long)Rank * n) + i, salt), dtype), dtype, op == ReduceOp.Mean);
        });
    }

    private void Broadcast(DType dtype, int n, int root, int salt)
    {
        Case($"broadcast {dtype.Name()} root={root} n={n}", () =>
        {
            using var t = Make(dtype, n, i => Rank == root ? Value(root, i, salt) : 99);
            comm.Broadcast(t, root);
            return Compare(_ops.ToDoubleArray(t), i => Value(root, i, salt), dtype, mean: false);
        });
    }

    private void AllGather(DType dtype, int n, int salt)
    {
        Case($"all-gather {dtype.Name()} n={n}", () =>
        {
            using var send = Make(dtype, n, i => Value(Rank, i, salt));
            using var recv = Make(dtype, (long)Size * n, _ => 99);
            comm.AllGather(send, recv);
            return Compare(_ops.ToDoubleArray(recv), j => Value((int)(j / n), j % n, salt), dtype, mean: false);
        });
    }

    private void AllToAll(DType dtype, int n, int salt)
    {
        Case($"all-to-all {dtype.Name()} block={n}", () =>
        {
            using var send = Make(dtype, (long)Size * n, j => Value(Rank, j, salt));
            using var recv = Make(dtype, (long)Size * n, _ => 99);
            comm.AllToAll(send, recv);
            // Block j of recv is block Rank of rank j's send.
            return Compare(_ops.ToDoubleArray(recv), j => Value((int)(j / n), ((long)Rank * n) + (j % n), salt), dtype, mean: false);
        });
    }

    private void SendRecvPairs(DType dtype, int n, int salt)
    {
        if (Size % 2 != 0)
        {
            return;
        }
        // Pairs (0,1), (2,3), …: the even rank sends first, the odd one receives first, so large messages cannot deadlock.
        int peer = Rank % 2 == 0 ? Rank + 1 : Rank - 1;
        Case($"send-recv {dtype.Name()} n={n} tag={salt % 100}", () =>
        {
            using var mine = Make(dtype, n, i => Value(Rank, i, salt));
            using var theirs = Make(dtype, n, _ => 99);
            if (Rank % 2 == 0)
            {
                comm.Send(mine, peer, salt % 100);
                comm.Recv(theirs, peer, salt % 100);
            }
            else
            {
                comm.Recv(theirs, peer, salt % 100);
                comm.Send(mine, peer, salt % 100);
            }
            return Compare(_ops.ToDoubleArray(theirs), i => Value(peer, i, salt), dtype, mean: false);
        });
    }

    private void Case(string name, Func<string?> body)
    {
        _cases++;
        string? failure;
        try
        {
            failure = body();
        }
        catch (HalException e)
        {
            failure = $"{e.GetType().Name}: {e.Message}";
        }
        if (failure is null)
        {
            if (Rank == 0)
            {
                Console.WriteLine($"ok {name}");
            }
            return;
        }
        _failures++;
        Console.WriteLine($"FAIL rank {Rank} {name}: {failure}");
    }

    /// <summary>Null when every element matches (bit for bit, or within 2 ULP of the dtype for a float mean).</summary>
    private static string? Compare(double[] got, Func<long, double> expected, DType dtype, bool mean)
    {
        bool isFloat = dtype is DType.F32 or DType.F64 or DType.F16 or DType.BF16;
        for (long i = 0; i < got.Length; i++)
        {
            double want = expected(i);
            bool match = mean && isFloat
                ? Math.Abs(got[i] - want) <= 2 * Ulp(want, dtype)
                : BitConverter.DoubleToInt64Bits(got[i]) == BitConverter.DoubleToInt64Bits(want);
            if (!match)
            {
                return $"element {i}: got {got[i]:R}, expected {want:R}{(mean && isFloat ? " within 2 ULP" : " exactly")}";
            }
        }
        return null;
    }

    /// <summary>The spacing of <paramref name="dtype"/> at |v| (v rounded to the dtype first).</summary>
    private static double Ulp(double v, DType dtype)
    {
        double a = Math.Abs(v);
        switch (dtype)
        {
            case DType.F64:
                return Math.BitIncrement(a) - a;
            case DType.F32:
                float f = (float)a;
                return MathF.BitIncrement(f) - f;
            case DType.F16:
                ushort h = HalfConvert.FloatToF16((float)a);
                return HalfConvert.F16ToFloat((ushort)(h + 1)) - HalfConvert.F16ToFloat(h);
            default:
                ushort b = HalfConvert.FloatToBf16((float)a);
                return HalfConvert.Bf16ToFloat((ushort)(b + 1)) - HalfConvert.Bf16ToFloat(b);
        }
    }
}
