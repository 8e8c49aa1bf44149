using Hal.Conformance.Kernels;
using Hal.Conformance.Kernels.Catalogue;

namespace Hal.Conformance.Tests;

/// <summary>The shape of the GEMM and tier-2 catalogue: unique ids, both paths, error cases and quick coverage per op.</summary>
public sealed class Tier2CatalogueTests
{
    private static readonly IReadOnlyList<KernelCase> Cases = Tier2Cases.All().ToList();

    [Fact]
    public void IdsAreUniqueAndTier2IdsNameTheirPath()
    {
        var duplicates = Cases.GroupBy(c => c.Id).Where(g => g.Count() > 1).Select(g => g.Key).ToList();
        Assert.True(duplicates.Count == 0, "duplicate ids: " + string.Join(", ", duplicates.Take(10)));
        Assert.All(Cases.Where(c => c.Fused is not null), c =>
            Assert.EndsWith(c.Path == KernelPath.Fused ? "@fused" : "@composite", c.Id, StringComparison.Ordinal));
    }

    [Fact]
    public void EveryFusedOpHasBothPathsAtEveryFloatDTypeAndAnErrorCase()
    {
        foreach (var op in Enum.GetValues<FusedOp>())
        {
            foreach (var dtype in Tier2Cases.FloatDTypes)
            {
                foreach (var path in new[] { KernelPath.Fused, KernelPath.Composite })
                {
                    Assert.True(Cases.Any(c => c.Fused == op && c.DType == dtype && c.Path == path && !c.IsErrorCase),
                        $"{op} has no {path} value case at {dtype.Name()}");
                    Assert.True(Cases.Any(c => c.Fused == op && c.DType == dtype && c.Path == path && c.Quick && !c.IsErrorCase),
                        $"{op} has no quick {path} value case at {dtype.Name()}");
                }
            }
            Assert.True(Cases.Any(c => c.Fused == op && c.IsErrorCase), $"{op} has no error case");
        }
    }

    [Fact]
    public void EveryFusedPairOfCasesSharesItsSeed()
    {
        // @fused and @composite see the same inputs, so the two paths of one backend compare like for like.
        var bases = Cases.Where(c => c.Fused is not null).GroupBy(c => c.Id[..c.Id.LastIndexOf('@')]);
        Assert.All(bases, g =>
        {
            Assert.Equal(2, g.Count());
            Assert.Single(g.Select(c => c.Seed).Distinct());
        });
    }

    [Fact]
    public void GemmCoversEveryFloatDTypeTransposesAndErrors()
    {
        var gemm = Cases.Where(c => c.Op == KernelNames.Gemm).ToList();
        foreach (var dtype in Tier2Cases.FloatDTypes)
        {
            foreach (string t in new[] { "/nn", "/nt", "/tn", "/tt" })
            {
                Assert.Contains(gemm, c => c.DType == dtype && c.Id.EndsWith(t, StringComparison.Ordinal));
            }
            Assert.Contains(gemm, c => c.DType == dtype && c.Quick);
        }
        Assert.Contains(gemm, c => c.Expects == typeof(ShapeMismatchException));
        Assert.Contains(gemm, c => c.Expects == typeof(DTypeMismatchException));
        Assert.Contains(gemm, c => c.Expects == typeof(DeviceMismatchException));
        // K = 2048: a reduction long enough that accumulating in a 16-bit type shows.
        Assert.Contains(gemm, c => c.Shape.Contains("2048", StringComparison.Ordinal));
    }
}
