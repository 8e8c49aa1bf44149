using System.Text.RegularExpressions;

namespace Hal.Abstractions.Tests;

/// <summary>
/// The layering rule of the design: arrows point down only, a backend knows Abstractions (and, for a host fallback, the
/// CPU backend) and nothing above it, and
/// nothing above the backends names one. Checked on the project files and sources of this repository.
/// </summary>
public sealed partial class LayeringTests
{
    // Which projects each layer may reference (by folder). Cli, bench and tests sit on top and may reference anything.
    private static readonly Dictionary<string, string[]> Allowed = new()
    {
        ["Abstractions"] = [],
        ["Backends.Cpu"] = ["Abstractions"],
        ["Backends.OpenCL"] = ["Abstractions"],
        // The npu backend runs what ONNX Runtime cannot compute exactly (Philox streams, F64 sin/cos, …) on the
        // host through the CPU backend, the way ONNX Runtime itself falls back to its CPU provider.
        ["Backends.Npu"] = ["Abstractions", "Backends.Cpu"],
        ["Backends.Cuda"] = ["Abstractions"],
        ["Collectives"] = ["Abstractions"],
        ["Memory"] = ["Abstractions", "Collectives"],
        ["Parallel"] = ["Abstractions", "Collectives", "Memory"],
        ["Models"] = ["Abstractions", "Collectives", "Memory", "Parallel"],
        ["conformance"] = ["Abstractions", "Collectives"],
    };

    private static string RepoRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Hal.sln")))
        {
            dir = dir.Parent;
        }
        return dir?.FullName ?? throw new InvalidOperationException("Hal.sln not found above " + AppContext.BaseDirectory);
    }

    [GeneratedRegex(""""<ProjectReference\s+Include="([^"]+)"""")]
    private static partial Regex ProjectReference();

    private static List<string> UpwardReferences(string root)
    {
        var violations = new List<string>();
        foreach (var (folder, allowed) in Allowed)
        {
            string dir = Path.Combine(root, folder);
            if (!Directory.Exists(dir))
            {
                continue;
            }
            foreach (var csproj in Directory.GetFiles(dir, "*.csproj"))
            {
                foreach (Match m in ProjectReference().Matches(File.ReadAllText(csproj)))
                {
                    string target = Path.GetFileName(Path.GetDirectoryName(Path.GetFullPath(Path.Combine(dir, m.Groups[1].Value)))!);
                    if (!allowed.Contains(target))
                    {
                        violations.Add($"{folder} references {target}");
                    }
                }
            }
        }
        return violations;
    }

    [Fact]
    public void ProjectReferencesPointDownOnly()
    {
        string root = RepoRoot();
        Assert.True(Directory.GetFiles(Path.Combine(root, "Models"), "*.csproj").Length == 1);
        Assert.Empty(UpwardReferences(root));
    }

    [Fact]
    public void NothingAboveTheBackendsNamesOne()
    {
        string root = RepoRoot();
        var violations = new List<string>();
        foreach (string folder in new[] { "Abstractions", "Collectives", "Memory", "Parallel", "Models", "conformance" })
        {
            foreach (var file in Directory.EnumerateFiles(Path.Combine(root, folder), "*.cs", SearchOption.AllDirectories))
            {
                if (file.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}") || file.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}"))
                {
                    continue;
                }
                string text = File.ReadAllText(file);
                if (text.Contains("Hal.Backends.", StringComparison.Ordinal))
                {
                    violations.Add(Path.GetRelativePath(root, file));
                }
            }
        }
        Assert.Empty(violations);
    }

    [Fact]
    public void TheRuleCatchesAnUpwardReference()
    {
        // A throwaway tree where a backend references Models must be reported.
        string root = Path.Combine(Path.GetTempPath(), "hal-layering-" + Guid.NewGuid().ToString("N"));
        try
        {
            Directory.CreateDirectory(Path.Combine(root, "Backends.Cpu"));
            File.WriteAllText(Path.Combine(root, "Backends.Cpu", "Hal.Backends.Cpu.csproj"),
                """<Project><ItemGroup><ProjectReference Include="../Models/Hal.Models.csproj" /></ItemGroup></Project>""");
            Assert.Equal(["Backends.Cpu references Models"], UpwardReferences(root));
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }
}
