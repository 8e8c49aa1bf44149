namespace Hal.Cli;

internal static class Program
{
    private static int Main(string[] args)
    {
        Console.Error.WriteLine("hal: the command line is being assembled");
        return args.Length == 0 ? 1 : 1;
    }
}
