using Hal.Backends.Cpu;

namespace Hal.Models.Tests;

/// <summary>One tensor whose gradient is checked: its device values and the analytical gradient read back after backward.</summary>
internal sealed record GradientTarget(string Name, Tensor Value, double[] Analytic);

/// <summary>
/// Central finite differences in F64 against analytical gradients. For each target a seeded sample of elements is
/// nudged by ±h on the device and the scalar loss re-evaluated: (L(θ+h) − L(θ−h)) / 2h.
/// Bound: truncation O(h²·L‴) ≈ 1e-12 and rounding ε·|L|/h ≈ 2e-9 for h = 1e-6 are small; the floor is set by the
/// kernels' contract, which keeps the softmax statistics (attention and cross-entropy lse) in F32 even at F64, so
/// backward rebuilds probabilities with relative error up to ~2⁻²⁴·|logit| ≈ 1e-7. Hence 1e-6 absolute plus 1e-5
/// relative: ~10× above that floor and far below the error of any real gradient bug (≥ 1e-3).
/// </summary>
internal static class GradientCheck
{
    public const double Step = 1e-6;
    public const double AbsoluteBound = 1e-6;
    public const double RelativeBound = 1e-5;

    public static Ops CpuOps() => new(new CpuBackend().Open(0));

    /// <summary>Checks <paramref name="samples"/> seeded elements of every target (all of them when smaller).</summary>
    public static int Check(Ops ops, IReadOnlyList<GradientTarget> targets, Func<double> loss, int seed, int samples = 12)
    {
        var rng = new Random(seed);
        int checkedCount = 0;
        foreach (var target in targets)
        {
            double[] values = ops.ToDoubleArray(target.Value);
            Assert.Equal(values.Length, target.Analytic.Length);
            IEnumerable<int> indices = values.Length <= samples
                ? Enumerable.Range(0, values.Length)
                : Enumerable.Range(0, samples).Select(_ => rng.Next(values.Length)).Distinct();
            foreach (int i in indices)
            {
                double saved = values[i];
                values[i] = saved + Step;
                ops.Upload(values, target.Value);
                double plus = loss();
                values[i] = saved - Step;
                ops.Upload(values, target.Value);
                double minus = loss();
                values[i] = saved;
                ops.Upload(values, target.Value);
                double numeric = (plus - minus) / (2 * Step);
                double analytic = target.Analytic[i];
                double error = Math.Abs(numeric - analytic);
                Assert.True(error <= AbsoluteBound + (RelativeBound * Math.Abs(numeric)),
                    $"{target.Name}[{i}]: analytic {analytic:R} vs numeric {numeric:R} (error {error:E2}, seed {seed})");
                checkedCount++;
            }
        }
        return checkedCount;
    }

    /// <summary>Seeded normal values, a fixed test input.</summary>
    public static double[] Normal(int count, int seed, double std = 1)
    {
        var rng = new Random(seed);
        var v = new double[count];
        for (int i = 0; i < count; i++)
        {
            double u1 = 1 - rng.NextDouble(), u2 = rng.NextDouble();
            v[i] = std * Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2);
        }
        return v;
    }

    /// <summary>Fills every parameter of the store with seeded values (norm weights near 1, the rest around 0).</summary>
    public static void Randomize(Ops ops, Nn.ParameterStore store, int seed, double std = 0.3)
    {
        for (int i = 0; i < store.Infos.Count; i++)
        {
            var info = store.Infos[i];
            var v = Normal((int)info.ElementCount, seed + i, std);
            if (info.Shape.Rank == 1 && !info.Name.EndsWith("bias", StringComparison.Ordinal))
            {
                for (int j = 0; j < v.Length; j++)
                {
                    v[j] += 1;
                }
            }
            ops.Upload(v, store.Param(i));
        }
    }

    /// <summary>Σ w ⊙ y on the host: the scalar loss whose gradient with respect to y is w.</summary>
    public static double Dot(Ops ops, Tensor y, double[] w)
    {
        double[] values = ops.ToDoubleArray(y);
        double sum = 0;
        for (int i = 0; i < values.Length; i++)
        {
            sum += values[i] * w[i];
        }
        return sum;
    }

    /// <summary>Parameter targets of the store with the gradients currently in it.</summary>
    public static List<GradientTarget> ParameterTargets(Ops ops, Nn.ParameterStore store) =>
        [.. store.Infos.Select((info, i) => new GradientTarget(info.Name, store.Param(i), ops.ToDoubleArray(store.Grad(i))))];
}
