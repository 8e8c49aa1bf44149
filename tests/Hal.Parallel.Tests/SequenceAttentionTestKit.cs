using System.Collections.Concurrent;
using Hal.Backends.Cpu;

namespace Hal.Parallel.Tests;

// Legend: B batch, H query heads, Hkv key/value heads, T full length, Tl = T/sp local tokens, D head size.
// Full tensors [B, H, T, D] (k, v [B, Hkv, T, D]) live on the host as double arrays; rank r's local tensors hold the
// tokens at positions[i] (zig-zag or contiguous) in local order i.

/// <summary>
/// The single-device reference for the sequence-parallel attentions: fused Attention and AttentionBackward over the
/// whole sequence on one CPU device, and the host-side slicing of full tensors into each rank's tokens.
/// </summary>
internal sealed class SequenceAttentionCase
{
    public SequenceAttentionCase(int batch, int heads, int kvHeads, int time, int headSize, bool causal, DType dtype, int seed)
    {
        Batch = batch;
        Heads = heads;
        KvHeads = kvHeads;
        Time = time;
        HeadSize = headSize;
        Causal = causal;
        DType = dtype;
        Seed = seed;
        Scale = 1 / Math.Sqrt(headSize);
        var random = new Random(seed);
        Q = Normal(random, batch * heads * time * headSize);
        K = Normal(random, batch * kvHeads * time * headSize);
        V = Normal(random, batch * kvHeads * time * headSize);
        DOutput = Normal(random, batch * heads * time * headSize);

        using var device = new CpuBackend().Open(0);
        var ops = new Ops(device);
        using var q = ops.FromArray(Q, QShape(time), dtype);
        using var k = ops.FromArray(K, KvShape(time), dtype);
        using var v = ops.FromArray(V, KvShape(time), dtype);
        using var dOut = ops.FromArray(DOutput, QShape(time), dtype);
        using var output = ops.Empty(QShape(time), dtype);
        using var lse = ops.Empty(new Shape(batch, heads, time), DType.F32);
        using var dq = ops.Empty(QShape(time), dtype);
        using var dk = ops.Empty(KvShape(time), dtype);
        using var dv = ops.Empty(KvShape(time), dtype);
        ops.Attention(q, k, v, causal, Scale, output, lse);
        ops.AttentionBackward(q, k, v, output, lse, dOut, causal, Scale, dq, dk, dv);
        Output = ops.ToDoubleArray(output);
        Lse = ops.ToDoubleArray(lse);
        Dq = ops.ToDoubleArray(dq);
        Dk = ops.ToDoubleArray(dk);
        Dv = ops.ToDoubleArray(dv);
    }

    public int Batch { get; }
    public int Heads { get; }
    public int KvHeads { get; }
    public int Time { get; }
    public int HeadSize { get; }
    public bool Causal { get; }
    public DType DType { get; }
    public int Seed { get; }
    public double Scale { get; }
    public double[] Q { get; }
    public double[] K { get; }
    public double[] V { get; }
    public double[] DOutput { get; }
    public double[] Output { get; }
    public double[] Lse { get; }
    public double[] Dq { get; }
    public double[] Dk { get; }
    public double[] Dv { get; }

    public Shape QShape(int time) => new(Batch, Heads, time, HeadSize);

    public Shape KvShape(int time) => new(Batch, KvHeads, time, HeadSize);

    /// <summary>Rows [B, H, positions.Length, rowLength] of full [B, H, T, rowLength] at the given token positions.</summary>
    public double[] Take(double[] full, int heads, int rowLength, int[] positions)
    {
        var local = new double[Batch * heads * positions.Length * rowLength];
        for (int bh = 0; bh < Batch * heads; bh++)
        {
            for (int i = 0; i < positions.Length; i++)
            {
                Array.Copy(full, ((long)bh * Time + positions[i]) * rowLength, local, ((long)bh * positions.Length + i) * rowLength, rowLength);
            }
        }
        return local;
    }

    /// <summary>
    /// Reports (into failures) elements of a rank's local result that differ from the reference at its positions by more
    /// than tolerance · max|reference| (the error is measured against the tensor's scale, since gradients have
    /// elements near zero where a per-element relative bound means nothing).
    /// </summary>
    public void Compare(ConcurrentQueue<string> failures, string what, double[] actual, double[] fullReference, int heads, int rowLength, int[] positions, double tolerance)
    {
        var expected = Take(fullReference, heads, rowLength, positions);
        double scale = Math.Max(1e-30, fullReference.Max(Math.Abs));
        double worst = 0;
        long worstAt = -1;
        for (long i = 0; i < expected.Length; i++)
        {
            double error = Math.Abs(actual[i] - expected[i]);
            if (!(error <= worst))
            {
                worst = error;
                worstAt = i;
            }
        }
        if (!(worst <= tolerance * scale))
        {
            failures.Enqueue($"{what} (seed {Seed}): element {worstAt} is {actual[worstAt]}, expected {expected[worstAt]}; " +
                $"error {worst:E3} > {tolerance:E1} × max|ref| {scale:E3}");
        }
    }

    private static double[] Normal(Random random, int count)
    {
        var values = new double[count];
        for (int i = 0; i < count; i++)
        {
            // Box–Muller; inputs of unit scale give scores of order 1 after the 1/√D scale.
            double u = 1 - random.NextDouble(), w = random.NextDouble();
            values[i] = Math.Sqrt(-2 * Math.Log(u)) * Math.Cos(2 * Math.PI * w);
        }
        return values;
    }
}
