using Hal.Models.Optim;
using Hal.Models.Training;

namespace Hal.Models.Tests;

// Shapes: w1 [4, 3] (decayed), b1 [3] (not decayed, starts at zero so LAMB/LARS take the ‖p‖ = 0 branch),
// w2 [3, 4] (decayed). References are per-tensor double loops of the published formulas (the Ops XML docs).

/// <summary>LAMB, LARS and AdamW against plain double loops of their formulas.</summary>
public sealed class OptimReferenceTests
{
    private static readonly (string, int[])[] Parameters = [("w1", [4, 3]), ("b1", [3]), ("w2", [3, 4])];
    private const double LearningRate = 0.05;
    private const double WeightDecay = 0.1;

    [Theory]
    [InlineData(OptimizerKind.Lamb, 11)]
    [InlineData(OptimizerKind.Lars, 12)]
    [InlineData(OptimizerKind.AdamW, 13)]
    [InlineData(OptimizerKind.Sgd, 14)]
    public void FiveStepsMatchTheFormulasInFloat32(OptimizerKind kind, int seed) => Run(kind, seed, DType.F32);

    [Theory]
    [InlineData(OptimizerKind.Lamb, 21)]
    [InlineData(OptimizerKind.Lars, 22)]
    [InlineData(OptimizerKind.AdamW, 23)]
    [InlineData(OptimizerKind.Sgd, 24)]
    public void FiveStepsMatchTheFormulasInFloat64(OptimizerKind kind, int seed) => Run(kind, seed, DType.F64);

    private static void Run(OptimizerKind kind, int seed, DType dtype)
    {
        var options = new OptimizerOptions
        {
            Kind = kind,
            WeightDecay = WeightDecay,
            Beta1 = 0.9,
            Beta2 = 0.99,
            Eps = 1e-6,
            Momentum = 0.8,
            TrustCoefficient = 0.02,
            Clip = 0,
        };
        var random = new Random(seed);
        using var h = new OptimHarness(Parameters, dtype);
        bool f32 = dtype == DType.F32;
        double[] Stored(double[] v) => f32 ? OptimTestData.AsFloat(v) : v;
        var reference = Parameters.Select(p => new ReferenceTensor(
            p.Item1 == "b1" ? new double[3] : Stored(OptimTestData.Normal(random, p.Item2.Aggregate(1, (a, b) => a * b))),
            p.Item2.Length >= 2)).ToArray();
        h.SetParams(reference.Select(r => r.Param).ToArray());
        using var optimizer = new Optimizer(h.Ops, h.Store, options);
        for (int step = 1; step <= 5; step++)
        {
            var grads = reference.Select(r => Stored(OptimTestData.Normal(random, r.Param.Length, 0.5))).ToArray();
            h.SetGrads(grads);
            var outcome = optimizer.Step(LearningRate, step);
            Assert.False(outcome.Skipped);
            double expectedNorm = OptimTestData.Norm(grads.SelectMany(g => g).ToArray());
            // float32: a sum of 27 squares rounded per addition (≈ 27 × 6e-8 relative at worst); float64: 1e-12.
            Assert.True(Math.Abs(outcome.GradNorm - expectedNorm) <= (f32 ? 2e-6 : 1e-12) * expectedNorm,
                $"seed {seed} {kind} step {step}: norm {outcome.GradNorm:R} vs {expectedNorm:R}");
            for (int i = 0; i < reference.Length; i++)
            {
                reference[i].Step(kind, options, grads[i], LearningRate, step);
                // float32 state and update carry a few ULP (1.2e-7) of O(1) values per step; five steps stay under
                // 2e-6. float64 differs from the reference only by operation order: 1e-12.
                double tolerance = f32 ? 2e-6 : 1e-12;
                OptimTestData.AssertClose(reference[i].Param, h.Param(i), tolerance, tolerance,
                    $"seed {seed} {kind} {dtype.Name()} step {step} {Parameters[i].Item1}");
            }
        }
    }

    /// <summary>One parameter tensor and its state, updated by the textbook formulas in double.</summary>
    private sealed class ReferenceTensor(double[] param, bool decay)
    {
        public double[] Param { get; } = param;

        private readonly double[] _first = new double[param.Length];
        private readonly double[] _second = new double[param.Length];

        public void Step(OptimizerKind kind, OptimizerOptions o, double[] g, double lr, int step)
        {
            double wd = decay ? o.WeightDecay : 0;
            int n = Param.Length;
            switch (kind)
            {
                case OptimizerKind.AdamW:
                case OptimizerKind.Lamb:
                    {
                        var u = new double[n];
                        for (int i = 0; i < n; i++)
                        {
                            _first[i] = (o.Beta1 * _first[i]) + ((1 - o.Beta1) * g[i]);
                            _second[i] = (o.Beta2 * _second[i]) + ((1 - o.Beta2) * g[i] * g[i]);
                            double mHat = _first[i] / (1 - Math.Pow(o.Beta1, step));
                            double vHat = _second[i] / (1 - Math.Pow(o.Beta2, step));
                            u[i] = (mHat / (Math.Sqrt(vHat) + o.Eps)) + (wd * Param[i]);
                        }
                        double ratio = 1;
                        if (kind == OptimizerKind.Lamb)
                        {
                            double pNorm = OptimTestData.Norm(Param), uNorm = OptimTestData.Norm(u);
                            ratio = pNorm > 0 && uNorm > 0 ? pNorm / uNorm : 1;
                        }
                        for (int i = 0; i < n; i++)
                        {
                            Param[i] -= lr * ratio * u[i];
                        }
                        break;
                    }
                case OptimizerKind.Lars:
                    {
                        double pNorm = OptimTestData.Norm(Param), gNorm = OptimTestData.Norm(g);
                        double local = pNorm > 0 && gNorm > 0 ? o.TrustCoefficient * pNorm / (gNorm + (wd * pNorm) + o.Eps) : 1;
                        for (int i = 0; i < n; i++)
                        {
                            _first[i] = (o.Momentum * _first[i]) + (local * (g[i] + (wd * Param[i])));
                            Param[i] -= lr * _first[i];
                        }
                        break;
                    }
                case OptimizerKind.Sgd:
                    for (int i = 0; i < n; i++)
                    {
                        _first[i] = (o.Momentum * _first[i]) + g[i] + (wd * Param[i]);
                        Param[i] -= lr * _first[i];
                    }
                    break;
                default:
                    throw new ArgumentOutOfRangeException(nameof(kind));
            }
        }
    }
}
