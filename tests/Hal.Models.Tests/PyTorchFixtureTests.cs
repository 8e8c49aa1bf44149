using System.Text.Json;
using Hal.Models.Transformer;
using static Hal.Models.Tests.GradientCheck;

namespace Hal.Models.Tests;

// Hal against an independent float64 PyTorch implementation (fixtures/generate_gpt2_fixture.py): weights loaded by
// Hugging Face name, then logits, loss, every gradient by name, and the losses of 5 AdamW steps.
// Legend: B batch, T time, V vocabulary.
public sealed class PyTorchFixtureTests
{
    private sealed record Fixture(ModelConfig Config, int Batch, int Time, double[] Ids, double[] Targets,
        Dictionary<string, double[]> Weights, double[] Logits, double Loss, Dictionary<string, double[]> Grads,
        double[] Losses, AdamWConfig AdamW);

    private static Fixture Load(string file)
    {
        string path = Path.Combine(AppContext.BaseDirectory, "fixtures", file);
        using var doc = JsonDocument.Parse(File.ReadAllText(path));
        var root = doc.RootElement;
        var c = root.GetProperty("config");
        static double[] Array(JsonElement e) => [.. e.EnumerateArray().Select(x => x.GetDouble())];
        static Dictionary<string, double[]> Map(JsonElement e) => e.EnumerateObject().ToDictionary(p => p.Name, p => Array(p.Value));
        var config = new ModelConfig
        {
            Name = file,
            Family = c.GetProperty("family").GetString() == "gpt2" ? ModelFamily.Gpt2 : ModelFamily.Llama,
            Layers = c.GetProperty("layers").GetInt32(),
            Heads = c.GetProperty("heads").GetInt32(),
            KvHeads = c.GetProperty("kv_heads").GetInt32(),
            Channels = c.GetProperty("channels").GetInt32(),
            Hidden = c.GetProperty("hidden").GetInt32(),
            VocabSize = c.GetProperty("vocab").GetInt32(),
            ContextLength = c.GetProperty("context").GetInt32(),
            NormEps = c.GetProperty("eps").GetDouble(),
            RopeTheta = c.GetProperty("rope_theta").GetDouble(),
            TieEmbeddings = c.GetProperty("tie").GetBoolean(),
        };
        var a = root.GetProperty("adamw");
        var adamw = new AdamWConfig(a.GetProperty("lr").GetDouble(), a.GetProperty("beta1").GetDouble(), a.GetProperty("beta2").GetDouble(),
            a.GetProperty("eps").GetDouble(), a.GetProperty("weight_decay").GetDouble());
        return new Fixture(config, root.GetProperty("batch").GetInt32(), root.GetProperty("time").GetInt32(),
            Array(root.GetProperty("ids")), Array(root.GetProperty("targets")), Map(root.GetProperty("weights")),
            Array(root.GetProperty("logits")), root.GetProperty("loss").GetDouble(), Map(root.GetProperty("grads")),
            Array(root.GetProperty("losses")), adamw);
    }

    /// <summary>
    /// Bounds per compute dtype: (loss, tensors relative to their largest magnitude, losses of the AdamW steps).
    /// F64: the kernels keep softmax statistics (attention and cross-entropy lse) and the rotary tables in F32 by
    /// contract, ≈6e-8 relative in probabilities and rotations; measured worst 1.0e-7 of the scale on gradients and
    /// logits, 4e-10 on the loss, 1e-9 on the step losses (the fixture's 10 significant digits add 5e-11); bounds
    /// are ~20× those. F32: every activation rounds to 2⁻²⁴ and errors grow through two blocks; measured worst
    /// 6.6e-7 of the scale and 7.4e-8 on the losses; bounds ~15-25× those.
    /// </summary>
    private static (double Loss, double Scale, double Steps) Bounds(DType dtype) => dtype == DType.F64 ? (1e-8, 2e-6, 2e-8) : (2e-6, 1e-5, 2e-6);

    public static TheoryData<string, DType> Cases => new()
    {
        { "gpt2_tiny.json", DType.F64 },
        { "llama_tiny.json", DType.F64 },
        { "gpt2_tiny.json", DType.F32 },
        { "llama_tiny.json", DType.F32 },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void LogitsLossGradientsAndAdamWStepsMatchPyTorch(string file, DType dtype)
    {
        var f = Load(file);
        var bounds = Bounds(dtype);
        var ops = CpuOps();
        using var model = new TransformerModel(ops, f.Config, new TransformerOptions { ComputeDType = dtype });
        Assert.Equal(f.Weights.Keys.Order(StringComparer.Ordinal), model.Parameters.Infos.Select(i => i.Name).Order(StringComparer.Ordinal));
        foreach (var (name, values) in f.Weights)
        {
            ops.Upload(values, model.Parameters.Param(name));
        }
        var shape = new Shape(f.Batch, f.Time);
        using var ids = ops.FromArray(f.Ids, shape, DType.I32);
        using var targets = ops.FromArray(f.Targets, shape, DType.I32);

        using (var logits = model.Logits(ids))
        {
            AssertClose($"{file} {dtype} logits", f.Logits, ops.ToDoubleArray(logits), bounds.Scale);
        }
        double loss = model.Forward(ids, targets);
        Assert.True(Math.Abs(loss - f.Loss) <= bounds.Loss, $"{file} {dtype}: loss {loss:R} vs PyTorch {f.Loss:R}");
        model.Backward();
        foreach (var (name, expected) in f.Grads)
        {
            AssertClose($"{file} {dtype} grad {name}", expected, ops.ToDoubleArray(model.Parameters.Grad(name)), bounds.Scale);
        }

        // Five AdamW steps, decay on the tensors the store marks (rank ≥ 2), as the fixture's optimizer groups do.
        var stateDType = dtype == DType.F64 ? DType.F64 : DType.F32;
        var m = model.Parameters.Infos.Select(i => ops.Zeros(i.Shape, stateDType)).ToArray();
        var v = model.Parameters.Infos.Select(i => ops.Zeros(i.Shape, stateDType)).ToArray();
        try
        {
            var losses = new List<double>();
            for (int step = 1; step <= 5; step++)
            {
                model.Parameters.ZeroGrads(ops);
                losses.Add(model.Forward(ids, targets));
                model.Backward();
                for (int i = 0; i < model.Parameters.Infos.Count; i++)
                {
                    var config = f.AdamW with { WeightDecay = model.Parameters.Infos[i].Decay ? f.AdamW.WeightDecay : 0 };
                    ops.AdamW(model.Parameters.Param(i), model.Parameters.Grad(i), m[i], v[i], config, step);
                }
            }
            losses.Add(model.Forward(ids, targets));
            for (int s = 0; s < losses.Count; s++)
            {
                Assert.True(Math.Abs(losses[s] - f.Losses[s]) <= bounds.Steps, $"{file} {dtype}: loss after {s} AdamW steps {losses[s]:R} vs PyTorch {f.Losses[s]:R}");
            }
            Assert.True(losses[^1] < losses[0] - 0.1, $"{file} {dtype}: AdamW did not lower the loss ({losses[0]} → {losses[^1]})");
        }
        finally
        {
            foreach (var t in m.Concat(v))
            {
                t.Dispose();
            }
        }
    }

    private static void AssertClose(string what, double[] expected, double[] actual, double relativeToScale)
    {
        Assert.Equal(expected.Length, actual.Length);
        double scale = expected.Max(Math.Abs);
        double worst = 0;
        int at = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            double e = Math.Abs(actual[i] - expected[i]);
            if (e > worst)
            {
                worst = e;
                at = i;
            }
        }
        Assert.True(worst <= relativeToScale * scale, $"{what}: [{at}] {actual[at]:R} vs PyTorch {expected[at]:R} (error {worst:E2}, scale {scale:E2})");
    }
}
