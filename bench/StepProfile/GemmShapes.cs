using System.Diagnostics;

namespace Hal.StepProfile;

// Legend: x [N, C] activations, w [V, C] tied embedding, logits/dlogits [N, V]; N = B·T tokens.

/// <summary>Times the three LM-head GEMMs of a GPT-2 step alone (forward logits, dx, dW) and the MLP's first product, best of several repeats.</summary>
public static class GemmShapes
{
    /// <summary>Runs each shape <paramref name="repeats"/> times after one warm-up and prints the best GFLOP/s.</summary>
    public static void Run(Ops ops, int tokens, int repeats)
    {
        const int Channels = 384;
        const int Vocab = 50257;
        var rng = new Random(3);
        Tensor Random(params int[] dims)
        {
            var shape = new Shape(dims);
            double[] data = new double[shape.ElementCount];
            for (int i = 0; i < data.Length; i++)
            {
                data[i] = rng.NextDouble() - 0.5;
            }
            return ops.FromArray(data, shape, DType.F32);
        }
        var x = Random(tokens, Channels);
        var w = Random(Vocab, Channels);
        var logits = Random(tokens, Vocab);
        var dx = Random(tokens, Channels);
        var dw = Random(Vocab, Channels);
        double flops = 2.0 * tokens * Channels * Vocab;
        Measure("logits = x·wᵀ   ", () => ops.Gemm(x, w, logits, transB: true));
        Measure("dx = dlogits·w  ", () => ops.Gemm(logits, w, dx));
        Measure("dw = dlogitsᵀ·x ", () => ops.Gemm(logits, x, dw, transA: true));

        // The MLP's c_fc at the same token count: forward with bias, and the same product with W transposed.
        const int Hidden = 4 * Channels;
        var wfc = Random(Channels, Hidden);
        var wfcT = Random(Hidden, Channels);
        var bfc = Random(Hidden);
        var h = Random(tokens, Hidden);
        flops = 2.0 * tokens * Channels * Hidden;
        Measure("h = x·W + b     ", () => ops.Gemm(x, wfc, h, bias: bfc));
        Measure("h = x·W         ", () => ops.Gemm(x, wfc, h));
        Measure("h = x·(Wᵀ)ᵀ     ", () => ops.Gemm(x, wfcT, h, transB: true));

        void Measure(string label, Action gemm)
        {
            gemm();
            double best = double.MaxValue;
            for (int r = 0; r < repeats; r++)
            {
                long start = Stopwatch.GetTimestamp();
                gemm();
                best = Math.Min(best, Stopwatch.GetElapsedTime(start).TotalSeconds);
            }
            Console.WriteLine($"{label}: best {best * 1000:F1} ms, {flops / best / 1e9:F1} GFLOP/s");
        }
    }
}
