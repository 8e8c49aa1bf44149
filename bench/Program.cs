using BenchmarkDotNet.Running;

namespace Hal.Bench;

internal static class Program
{
    /// <summary>Runs the benchmarks chosen on the command line (e.g. <c>--filter *Gemm*</c>).</summary>
    private static void Main(string[] args) => BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
}
