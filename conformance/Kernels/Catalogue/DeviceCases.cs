using Hal.Conformance.Oracle;

namespace Hal.Conformance.Kernels.Catalogue;

/// <summary>RNG streams and memory semantics. Shape legend: n elements of a Philox stream starting at a global offset.</summary>
public static partial class DeviceCases
{
    /// <summary>All RNG and memory cases.</summary>
    public static IEnumerable<KernelCase> All() => Random().Concat(Memory());

    private static readonly ulong[] RandomSeeds = [0, 1, ulong.MaxValue, 0x123456789ABCDEF0];

    /// <summary>Offsets inside a block, at block starts, past 2³² elements, and past 2³² blocks (the counter's high word).</summary>
    private static readonly ulong[] RandomOffsets = [0, 1, 3, 5, (1UL << 32) + 7, (((1UL << 32) + 3) * 4) + 1];

    private static readonly int[] RandomLengths = [0, 1, 3, 4, 5, 1023];

    private static IEnumerable<KernelCase> Random()
    {
        foreach (var distribution in Enum.GetValues<RandomDistribution>())
        {
            string name = KernelNames.Of(distribution);
            foreach (var dtype in Tier1Cases.FloatDTypes)
            {
                for (int s = 0; s < RandomSeeds.Length; s++)
                {
                    ulong seed = RandomSeeds[s];
                    // Alternate the parameters with the seed: the standard ones and a shifted, scaled pair.
                    (double a, double b) = s % 2 == 0 ? (distribution == RandomDistribution.Uniform ? (0.0, 1.0) : (0.0, 1.0)) : (distribution == RandomDistribution.Uniform ? (-2.0, 3.0) : (1.5, 0.25));
                    foreach (ulong offset in RandomOffsets)
                    {
                        foreach (int n in RandomLengths)
                        {
                            yield return new KernelCase
                            {
                                Id = $"{name}/{dtype.Name()}/[{n}]/seed{seed}-offset{offset}",
                                Op = name,
                                DType = dtype,
                                Shape = $"[{n}]",
                                Seed = seed,
                                Quick = n == 5 && s < 3 && offset is 0 or 3,
                                Description = $"Philox4x32-10 {distribution} (a = {a}, b = {b}) from element {offset} of seed {seed}",
                                Run = ctx => RunRandom(ctx, distribution, dtype, seed, offset, n, a, b),
                            };
                        }
                    }
                }
            }
        }
    }

    private static IReadOnlyList<CaseOutput> RunRandom(CaseContext ctx, RandomDistribution distribution, DType dtype, ulong seed, ulong offset, int n, double a, double b)
    {
        var t = ctx.Output(new Shape(n), dtype);
        if (distribution == RandomDistribution.Uniform)
        {
            ctx.Ops.RandomUniform(t, seed, offset, a, b);
        }
        else
        {
            ctx.Ops.RandomNormal(t, seed, offset, a, b);
        }
        var expected = new double[n];
        double[]? scale = distribution == RandomDistribution.Normal ? new double[n] : null;
        for (int i = 0; i < n; i++)
        {
            ulong g = offset + (ulong)i;
            if (distribution == RandomDistribution.Uniform)
            {
                expected[i] = RefPhilox.Uniform(dtype, seed, g, a, b);
            }
            else
            {
                expected[i] = RefPhilox.Normal(seed, g, a, b, out double radius);
                // The tolerance row's scale: |std|·r·(1 + 2π) + |mean| (see ToleranceTable "random.normal").
                scale![i] = radius * (1 + 2 * Math.PI) + Math.Abs(a);
            }
        }
        string name = KernelNames.Of(distribution);
        var rule = ToleranceTable.For(name);
        return [new CaseOutput("dst", dtype, ctx.Download(t), expected, rule, 0, scale)];
    }
}
