using System.Text.Json;
using Hal.Models.Optim;
using Hal.Models.Training;

namespace Hal.Models.Tests;

// Shapes: w1 [3, 5] (decayed), b1 [5] (not decayed), w2 [2, 3] (decayed): the decayed tensors are not neighbours,
// so AdamW runs over three slab runs. Fixture: fixtures/optim_fixture.json from generate_optim_fixture.py (PyTorch).

/// <summary>AdamW and SGD with momentum, with and without global-norm clipping, against PyTorch's optimizers.</summary>
public sealed class OptimPyTorchTests
{
    [Theory]
    [InlineData("adamw")]
    [InlineData("adamw_clip")]
    [InlineData("sgd")]
    [InlineData("sgd_clip")]
    public void FiveStepsMatchPyTorch(string caseName)
    {
        using var json = JsonDocument.Parse(File.ReadAllText(OptimTestData.FixturePath("optim_fixture.json")));
        var root = json.RootElement;
        var parameters = root.GetProperty("parameters").EnumerateArray()
            .Select(p => (p.GetProperty("name").GetString()!, p.GetProperty("shape").EnumerateArray().Select(d => d.GetInt32()).ToArray()))
            .ToArray();
        var fixtureCase = root.GetProperty("cases").EnumerateArray().Single(c => c.GetProperty("name").GetString() == caseName);
        bool isAdam = caseName.StartsWith("adamw", StringComparison.Ordinal);
        var hyper = root.GetProperty(isAdam ? "adamw" : "sgd");
        var options = isAdam
            ? new OptimizerOptions
            {
                Kind = OptimizerKind.AdamW,
                Beta1 = hyper.GetProperty("beta1").GetDouble(),
                Beta2 = hyper.GetProperty("beta2").GetDouble(),
                Eps = hyper.GetProperty("eps").GetDouble(),
                WeightDecay = hyper.GetProperty("weight_decay").GetDouble(),
                Clip = fixtureCase.GetProperty("clip").GetDouble(),
            }
            : new OptimizerOptions
            {
                Kind = OptimizerKind.Sgd,
                Momentum = hyper.GetProperty("momentum").GetDouble(),
                WeightDecay = hyper.GetProperty("weight_decay").GetDouble(),
                Clip = fixtureCase.GetProperty("clip").GetDouble(),
            };

        using var h = new OptimHarness(parameters);
        Assert.Equal([true, false, true], h.Store.Infos.Select(i => i.Decay));
        h.SetParams(Arrays(fixtureCase.GetProperty("initial")));
        using var optimizer = new Optimizer(h.Ops, h.Store, options);
        var rates = fixtureCase.GetProperty("learning_rates").EnumerateArray().Select(r => r.GetDouble()).ToArray();
        int step = 0;
        foreach (var expected in fixtureCase.GetProperty("steps").EnumerateArray())
        {
            step++;
            h.SetGrads(Arrays(expected.GetProperty("grads")));
            var outcome = optimizer.Step(rates[step - 1], step);
            Assert.False(outcome.Skipped);
            Assert.Equal(1.0, outcome.LossScale);
            // Both norms are float32 sums of 38 squares: they agree to a few float32 ULP (2^-23 ≈ 1.2e-7 relative).
            double norm = expected.GetProperty("grad_norm").GetDouble();
            Assert.True(Math.Abs(outcome.GradNorm - norm) <= 1e-6 * norm, $"{caseName} step {step}: norm {outcome.GradNorm:R} vs PyTorch {norm:R}");
            var after = Arrays(expected.GetProperty("params_after"));
            for (int i = 0; i < after.Length; i++)
            {
                // Parameters are O(1) in float32 (ULP ≈ 1.2e-7); five steps each round p, m, v and the update a few
                // times in a different order than PyTorch: 2e-6 absolute covers that with margin, and is well below
                // the smallest update (lr 0.01 × O(1)).
                OptimTestData.AssertClose(after[i], h.Param(i), 2e-6, 2e-6, $"{caseName} step {step} {parameters[i].Item1}");
            }
        }
        Assert.Equal(5, step);
    }

    private static double[][] Arrays(JsonElement element) =>
        element.EnumerateArray().Select(a => a.EnumerateArray().Select(v => v.GetDouble()).ToArray()).ToArray();
}
