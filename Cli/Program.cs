namespace Hal.Cli;

internal static class Program
{
    private static int Main(string[] args) => HalApp.Run(args, Console.Out, Console.Error);
}
