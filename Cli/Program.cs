namespace Hal.Cli;

internal static class Program
{
    private static int Main(string[] args)
    {
        // Under mpirun each rank's stdout is a pseudo-terminal, and .NET would then switch it to keypad mode with an
        // escape sequence written before anything else, corrupting --json output. A dumb terminal has no such mode;
        // this must happen before the first use of Console.
        if (Environment.GetEnvironmentVariable("OMPI_COMM_WORLD_SIZE") is not null)
        {
            Environment.SetEnvironmentVariable("TERM", "dumb");
        }
        return HalApp.Run(args, Console.Out, Console.Error);
    }
}
